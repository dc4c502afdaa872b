"""Audio: probe, decode, validate, normalise, trim, split, fingerprint and encode; the pure core.

:func:`process_audio` turns the bytes of one file into training-ready clips
or raises :class:`AudioReject` with a reason (dead letter for broken input,
filtered for a rule). Decoding is FFmpeg's, through PyAV (FFmpeg ships inside
its wheel), so every container and codec FFmpeg reads is read: WAV, FLAC,
MP3, Ogg/Opus and Vorbis, M4A/AAC, and the audio track of video containers
(MKV, MP4, WebM). Nothing is fetched or executed: the bytes are handed to
FFmpeg's demuxers from memory.

1. **Probe** the container header (:func:`probe`): the first audio stream,
   its codec, channels and claimed duration. A file that claims more than
   ``max_input_seconds`` or more than ``max_channels`` channels is refused
   before a sample is decoded (``too_long_to_decode``, ``too_many_channels``):
   a header claiming ten hours cannot make the worker decode ten hours. While
   decoding, the same budget is enforced on the samples actually produced,
   in case the header understates. FFmpeg clamps a WAV data chunk that claims
   more than the file holds, so a WAV header is also read here: a claim over
   the limit is refused, and a file holding under 90% of its claim is
   ``truncated``.
2. **Decode** (FFmpeg). Broken input is a dead letter with FFmpeg's message:
   ``empty`` (0 bytes), ``not_audio`` (no audio stream: text, images),
   ``unsupported_codec``, ``corrupt``, ``truncated`` (decoding stopped before
   90% of the claimed duration), ``zero_duration`` (a valid header, no
   samples).
3. **Resample** to ``sample_rate`` with FFmpeg's resampler (libswresample),
   frame by frame while decoding: memory holds the mono output at the target
   rate (an hour at 16 kHz is 230 MB of float32), never the source at its own
   rate and channel count. Clipping is counted on each decoded frame, every
   channel, in its own sample format, before any conversion.
4. **Validate**, each rule its own ``filtered`` reason: ``silence`` (peak
   below ``silence_db``), ``clipping`` (more than ``max_clipped_fraction`` of
   the source samples at full scale), then after trimming ``too_short``.
5. **Exact hash** of the decoded 16-bit samples at ``sample_rate`` (before
   any level change): the same recording in two containers is one recording.
6. **Trim** leading and trailing silence (10 ms frames below ``silence_db``,
   keeping ``trim_margin`` seconds), then **split** a clip longer than
   ``max_seconds`` at its quietest frames into segments no longer than that
   (or filter it as ``too_long`` with ``split_long=False``). A split clip's
   transcript cannot be placed on its segments (no timestamps), so the
   segments carry none (counted as ``transcript_dropped_split``).
7. **Loudness** normalised to ``loudness_lufs`` (EBU R128 / ITU-R BS.1770
   integrated loudness, measured by ``pyloudnorm``), then peak-limited to
   ``max_peak`` so the gain never clips; clips shorter than one 400 ms
   gating block keep their level.
8. **Fingerprint** (:func:`fingerprint128`): a 128-bit spectral hash for
   near-duplicate removal by Hamming distance, as images' difference hash:
   band energies on 16 mel-spaced bands over 9 equal time spans of the
   trimmed clip, one bit per band and neighbouring span (is the next span
   louder?). Level changes cancel out; lossy re-encoding moves few bits.
9. **Encode** as 16-bit PCM WAV or FLAC bytes (``audio_format``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import wave
from typing import List, Optional, Tuple

import numpy as np

__all__ = ["AudioConfig", "AudioReject", "Clip", "probe", "decode", "process_audio",
           "fingerprint128", "encode", "trim_bounds", "split_points", "DEAD_REASONS",
           "FILTER_REASONS", "FORMATS"]

FORMATS = ("wav", "flac")
# reasons of broken input (dead letter) and of rules (filtered)
DEAD_REASONS = ("empty", "not_audio", "unsupported_codec", "corrupt", "truncated",
                "zero_duration", "too_long_to_decode", "too_many_channels", "slice_outside_audio")
FILTER_REASONS = ("silence", "clipping", "too_short", "too_long")
_FULL_SCALE = 0.999  # a decoded sample at or above this magnitude is clipped
_FRAME_S = 0.010  # trimming and splitting work on 10 ms frames


@dataclasses.dataclass(frozen=True)
class AudioConfig:
    sample_rate: int = 16_000
    audio_format: str = "flac"  # wav or flac (16-bit PCM either way)
    min_seconds: float = 0.5  # after trimming
    max_seconds: float = 30.0  # longer clips are split at silences (or filtered)
    split_long: bool = True
    max_input_seconds: float = 2 * 3600.0  # refused from the header, before decoding
    max_channels: int = 8
    silence_db: float = -50.0  # dBFS: frames below are silence (trim, split, all-silent)
    trim: bool = True
    trim_margin: float = 0.05  # seconds of silence kept around the speech
    loudness_lufs: Optional[float] = -23.0  # EBU R128's target; None: keep the level
    max_peak: float = 0.99  # peak after the loudness gain (limits the gain, never clips)
    max_clipped_fraction: float = 0.01  # share of source samples at full scale

    def __post_init__(self):
        if self.audio_format not in FORMATS:
            raise ValueError(f"audio_format must be one of {FORMATS}, got {self.audio_format!r}")
        if not 1000 <= self.sample_rate <= 384_000:
            raise ValueError(f"sample_rate must be in [1000, 384000] Hz, got {self.sample_rate}")
        if not 0 < self.min_seconds < self.max_seconds:
            raise ValueError("need 0 < min_seconds < max_seconds")
        if self.max_input_seconds <= 0 or self.max_channels < 1:
            raise ValueError("max_input_seconds and max_channels must be positive")
        if not 0 < self.max_peak <= 1:
            raise ValueError(f"max_peak must be in (0, 1], got {self.max_peak}")


class AudioReject(Exception):
    """A file that yields no clip: ``reason`` (one of :data:`DEAD_REASONS` or
    :data:`FILTER_REASONS`), ``dead`` (broken input rather than a rule) and a message."""

    def __init__(self, reason: str, message: str = "", dead: bool = True):
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason, self.message, self.dead = reason, message, dead


@dataclasses.dataclass
class Clip:
    """One training-ready clip (a whole file, or a segment of a split one)."""

    encoded: bytes
    num_samples: int
    sample_rate: int
    audio_format: str
    segment: int  # 0 for a whole file; 1.. for the segments of a split one
    segments: int  # how many the file was split into (1: not split)
    fingerprint: int  # 128-bit spectral hash
    loudness_lufs: Optional[float]  # measured before normalising (None: too short to gate)

    @property
    def seconds(self) -> float:
        return self.num_samples / self.sample_rate


@dataclasses.dataclass
class Decoded:
    samples: np.ndarray  # float32 mono at the target rate
    source_rate: int
    source_channels: int
    codec: str
    container: str
    clipped_fraction: float
    exact_hash: str  # sha256 of the 16-bit samples at the target rate


def _open(data: bytes):
    import av

    if not data:
        raise AudioReject("empty", "0 bytes")
    try:
        return av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except av.error.InvalidDataError as e:
        raise AudioReject("not_audio", f"FFmpeg reads no known container: {e}") from None
    except av.error.EOFError as e:
        raise AudioReject("truncated", f"the file ends inside its header: {e}") from None
    except (av.error.FFmpegError, ValueError, OSError) as e:
        raise AudioReject("corrupt", f"{type(e).__name__}: {e}") from None


def probe(data: bytes) -> dict:
    """The first audio stream's header: codec, channels, rate, claimed seconds (or None).

    Raises :class:`AudioReject` for empty, unreadable and audio-less files.
    """
    container = _open(data)
    try:
        return _probe(container)
    finally:
        container.close()


def _probe(container) -> dict:
    streams = [s for s in container.streams if s.type == "audio"]
    if not streams:
        raise AudioReject("not_audio", f"no audio stream in the {container.format.name} container")
    stream = streams[0]
    ctx = stream.codec_context
    if ctx is None or not getattr(ctx, "name", None):
        raise AudioReject("unsupported_codec", "FFmpeg has no decoder for this stream")
    seconds = None
    if stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        seconds = container.duration / 1_000_000  # AV_TIME_BASE
    channels = getattr(ctx, "channels", None) or len(getattr(ctx.layout, "channels", ())) or 1
    return {"codec": ctx.name, "container": container.format.name, "channels": int(channels),
            "sample_rate": int(ctx.sample_rate or 0), "seconds": seconds, "stream": stream}


def _wav_claim(data: bytes) -> Optional[Tuple[float, float]]:
    """(seconds the RIFF/WAVE header's data chunk claims, seconds the file holds), for PCM
    WAV; None for anything else. FFmpeg clamps a claim to the file, which hides a cut file."""
    if len(data) < 44 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, byte_rate = 12, 0
    while pos + 8 <= len(data):
        tag, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        if tag == b"fmt " and size >= 16 and pos + 24 <= len(data):
            byte_rate = int.from_bytes(data[pos + 16:pos + 20], "little")
        elif tag == b"data":
            if not byte_rate:
                return None
            held = max(0, len(data) - (pos + 8))
            return size / byte_rate, held / byte_rate
        pos += 8 + size + (size & 1)
    return None


def decode(data: bytes, config: AudioConfig = AudioConfig()) -> Decoded:
    """Bytes -> :class:`Decoded` (mono float32 at ``config.sample_rate``), within the limits."""
    import av

    claim = _wav_claim(data)
    if claim is not None and claim[0] > config.max_input_seconds:
        raise AudioReject("too_long_to_decode", f"the WAV header claims {claim[0]:.0f} s, over "
                                                f"the {config.max_input_seconds:.0f} s limit")
    if claim is not None and claim[0] > 0.5 and claim[1] < 0.9 * claim[0]:
        raise AudioReject("truncated", f"the WAV header claims {claim[0]:.2f} s, the file holds "
                                       f"{claim[1]:.2f} s")
    container = _open(data)
    try:
        info = _probe(container)
        claimed = info["seconds"]
        if claimed is not None and claimed > config.max_input_seconds:
            raise AudioReject("too_long_to_decode",
                              f"the header claims {claimed:.0f} s, over the {config.max_input_seconds:.0f} s limit")
        if info["channels"] > config.max_channels:
            raise AudioReject("too_many_channels",
                              f"{info['channels']} channels, over the limit of {config.max_channels}")
        rate = info["sample_rate"] or config.sample_rate
        target = config.sample_rate
        # samples at the output rate, in case the header understates
        budget = int(config.max_input_seconds * target) + target
        # FFmpeg's resampler mixes down and converts the rate frame by frame, so memory holds
        # the output (mono at the target rate), never the source at its own rate
        resampler = av.AudioResampler(format="flt", layout="mono", rate=target)
        chunks: List[np.ndarray] = []
        total = clipped = seen = 0
        error: Optional[str] = None
        try:
            for frame in container.decode(info["stream"]):
                clipped_now, seen_now = _clipped(frame)
                clipped += clipped_now
                seen += seen_now
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    chunks.append(chunk)
                    total += chunk.size
                if total > budget:
                    raise AudioReject("too_long_to_decode",
                                      f"decoded past {config.max_input_seconds:.0f} s")
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except AudioReject:
            raise
        except (av.error.FFmpegError, ValueError, OSError) as e:
            error = f"{type(e).__name__}: {e}"
        samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
        del chunks
    finally:
        container.close()
    if samples.size == 0:
        if error:
            raise AudioReject("truncated" if "EOFError" in error else "corrupt", error)
        raise AudioReject("zero_duration", "the stream holds no samples")
    decoded_s = samples.size / target
    if error and (claimed is None or decoded_s < 0.9 * claimed):
        raise AudioReject("truncated" if claimed else "corrupt",
                          f"decoding stopped at {decoded_s:.2f} s"
                          + (f" of {claimed:.2f} s claimed" if claimed else "") + f": {error}")
    if claimed and claimed > 0.5 and decoded_s < 0.9 * claimed:
        raise AudioReject("truncated", f"{decoded_s:.2f} s decoded of {claimed:.2f} s claimed")
    np.clip(samples, -1.0, 1.0, out=samples)
    pcm = _to_pcm16(samples)
    return Decoded(samples, rate, info["channels"], info["codec"], info["container"],
                   clipped / seen if seen else 0.0, hashlib.sha256(pcm.tobytes()).hexdigest())


def _clipped(frame) -> Tuple[int, int]:
    """(samples at full scale, samples) of one decoded frame, every channel, in its own format."""
    x = frame.to_ndarray()
    if x.dtype.kind == "i":
        full = _FULL_SCALE * np.iinfo(x.dtype).max
    elif x.dtype.kind == "u":  # 8-bit PCM is unsigned, centred on 128
        x = x.astype(np.int16) - 128
        full = _FULL_SCALE * 127
    else:
        full = _FULL_SCALE
    return int(np.count_nonzero(np.abs(x) >= full)), int(x.size)


def _to_pcm16(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2")


def _frame_db(x: np.ndarray, rate: int) -> np.ndarray:
    """RMS level of each 10 ms frame, in dBFS."""
    n = max(1, int(round(_FRAME_S * rate)))
    frames = x[: (x.size // n) * n].reshape(-1, n) if x.size >= n else x.reshape(1, -1)
    # row sums of squares without a squared copy of the whole signal
    rms = np.sqrt(np.einsum("ij,ij->i", frames, frames, dtype=np.float64) / frames.shape[1])
    return 20.0 * np.log10(np.maximum(rms, 1e-10))


def trim_bounds(x: np.ndarray, rate: int, silence_db: float, margin: float) -> Tuple[int, int]:
    """``[start, end)`` samples of ``x`` without its leading and trailing silence
    (``margin`` seconds kept each side); ``(0, 0)`` when all of it is silent."""
    levels = _frame_db(x, rate)
    loud = np.flatnonzero(levels > silence_db)
    if loud.size == 0:
        return 0, 0
    n = max(1, int(round(_FRAME_S * rate)))
    keep = int(round(margin * rate))
    start = max(0, loud[0] * n - keep)
    end = min(x.size, (loud[-1] + 1) * n + keep)
    return int(start), int(end)


def split_points(x: np.ndarray, rate: int, max_seconds: float) -> List[int]:
    """Sample offsets cutting ``x`` into pieces no longer than ``max_seconds``, each cut at
    the quietest 10 ms frame of the second half of the span it ends."""
    limit = int(max_seconds * rate)
    n = max(1, int(round(_FRAME_S * rate)))
    levels = _frame_db(x, rate)
    cuts, start = [], 0
    while x.size - start > limit:
        lo, hi = (start + limit // 2) // n, (start + limit) // n  # frames in the second half
        if hi <= lo:
            cut = start + limit
        else:
            cut = (lo + int(np.argmin(levels[lo:hi]))) * n
            cut = cut if cut > start else start + limit
        cuts.append(cut)
        start = cut
    return cuts


_MEL_BANDS = 16
_TIME_SPANS = 9
_TOP_HZ = 4000.0  # speech bands, which lossy codecs keep (they thin out the highs)


def fingerprint128(x: np.ndarray, rate: int) -> int:
    """A 128-bit spectral hash: 16 mel-spaced band energies (log) over 9 equal time spans;
    bit (band, span) says whether span + 1 is louder than span in that band."""
    if x.size < 2048:
        x = np.pad(x, (0, 2048 - x.size))
    win = 1024
    hop = max(1, (x.size - win) // 64)  # about 64 frames whatever the length
    starts = np.arange(0, x.size - win + 1, hop)
    frames = np.stack([x[s: s + win] for s in starts]) * np.hanning(win)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # [frames, 513]
    freqs = np.fft.rfftfreq(win, 1.0 / rate)
    mel = 2595.0 * np.log10(1.0 + freqs / 700.0)
    top = 2595.0 * np.log10(1.0 + min(rate / 2.0, _TOP_HZ) / 700.0)
    edges = np.linspace(2595.0 * np.log10(1.0 + 100.0 / 700.0), top, _MEL_BANDS + 1)
    band = np.searchsorted(edges, mel, side="right") - 1
    energies = np.stack([power[:, band == b].sum(axis=1) for b in range(_MEL_BANDS)], axis=1)
    spans = np.array_split(np.arange(len(starts)), _TIME_SPANS)
    grid = np.log(np.stack([energies[s].mean(axis=0) for s in spans], axis=1) + 1e-12)
    bits = (grid[:, 1:] > grid[:, :-1]).reshape(-1)  # [16 bands x 8 steps]
    return int("".join("1" if b else "0" for b in bits), 2)


def _loudness(x: np.ndarray, rate: int) -> Optional[float]:
    if x.size < int(0.4 * rate):  # one gating block of BS.1770
        return None
    import pyloudnorm

    value = pyloudnorm.Meter(rate).integrated_loudness(x.astype(np.float64))
    return float(value) if math.isfinite(value) else None


def encode(x: np.ndarray, rate: int, audio_format: str) -> bytes:
    """16-bit PCM WAV (the standard library's writer) or FLAC (FFmpeg's encoder)."""
    pcm = _to_pcm16(x)
    if audio_format == "wav":
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(pcm.tobytes())
        return buf.getvalue()
    import av

    buf = io.BytesIO()
    with av.open(buf, mode="w", format="flac") as out:
        out.metadata.clear()
        stream = out.add_stream("flac", rate=rate, layout="mono")
        stream.codec_context.options = {"compression_level": "5"}
        step = 4096
        for i in range(0, pcm.size, step):
            frame = av.AudioFrame.from_ndarray(pcm[i: i + step].reshape(1, -1), format="s16",
                                               layout="mono")
            frame.sample_rate = rate
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def process_audio(data: bytes, config: AudioConfig = AudioConfig(), start: float = 0.0,
                  seconds: Optional[float] = None) -> Tuple[Decoded, List[Clip]]:
    """Bytes of one file -> its decoded form and its clips (one, or the segments of a split).

    ``start`` and ``seconds`` cut a slice of the decoded file first (a
    manifest line's ``offset`` and ``duration``: the slice its transcript
    belongs to); the exact hash is then the slice's. Raises
    :class:`AudioReject` (``dead`` for broken input, otherwise a rule).
    """
    d = decode(data, config)
    x, rate = d.samples, config.sample_rate
    if start or seconds is not None:
        a = int(round(max(0.0, start) * rate))
        b = x.size if seconds is None else min(x.size, a + int(round(seconds * rate)))
        if a >= x.size or b <= a:
            raise AudioReject("slice_outside_audio",
                              f"offset {start:.2f} s, duration {seconds} s; the file holds "
                              f"{x.size / rate:.2f} s")
        x = x[a:b]
        d = dataclasses.replace(d, samples=x,
                                exact_hash=hashlib.sha256(_to_pcm16(x).tobytes()).hexdigest())
    if d.clipped_fraction > config.max_clipped_fraction:
        raise AudioReject("clipping", f"{d.clipped_fraction:.1%} of the samples at full scale",
                          dead=False)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak <= 10 ** (config.silence_db / 20.0):
        raise AudioReject("silence", f"peak {20 * math.log10(max(peak, 1e-10)):.1f} dBFS", dead=False)
    if config.trim:
        start, end = trim_bounds(x, rate, config.silence_db, config.trim_margin)
        if end <= start:
            raise AudioReject("silence", "no frame above the silence level", dead=False)
        x = x[start:end]
    if x.size < config.min_seconds * rate:
        raise AudioReject("too_short", f"{x.size / rate:.2f} s after trimming", dead=False)
    if x.size > config.max_seconds * rate:
        if not config.split_long:
            raise AudioReject("too_long", f"{x.size / rate:.1f} s", dead=False)
        bounds = [0] + split_points(x, rate, config.max_seconds) + [x.size]
        pieces = [x[a:b] for a, b in zip(bounds, bounds[1:])]
    else:
        pieces = [x]
    clips = []
    for k, piece in enumerate(pieces):
        if len(pieces) > 1 and piece.size < config.min_seconds * rate:
            continue  # a split's sliver
        loudness = _loudness(piece, rate)
        if config.loudness_lufs is not None and loudness is not None:
            piece = piece * (10.0 ** ((config.loudness_lufs - loudness) / 20.0))
        peak = float(np.max(np.abs(piece)))
        if peak > config.max_peak:
            piece = piece * (config.max_peak / peak)
        clips.append(Clip(encode(piece, rate, config.audio_format), int(piece.size), rate,
                          config.audio_format, k + 1 if len(pieces) > 1 else 0, len(pieces),
                          fingerprint128(piece, rate), loudness))
    if not clips:
        raise AudioReject("too_short", "every segment of the split is shorter than min_seconds",
                          dead=False)
    return d, clips
