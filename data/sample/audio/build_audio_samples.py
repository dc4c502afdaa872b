#!/usr/bin/env python3
"""Regenerate the small offline audio sample corpus in ``data/sample/audio/``.

Usage (from the repository root)::

    python data/sample/audio/build_audio_samples.py           # rebuild everything
    python data/sample/audio/build_audio_samples.py --verify  # only decode and report

Provenance and licence
----------------------
* The sentences in ``SENTENCES`` were written for beamtrain and are dedicated
  to the public domain (CC0 1.0).
* Speech is synthesised with the ``espeak-ng`` program (Debian package
  ``espeak-ng``).  espeak-ng is GPL-3.0-or-later; that licence covers the
  program, not the audio it produces.
* Noise and random bytes are generated here from fixed seeds.

Every output file is encoded / muxed with PyAV (``import av``, FFmpeg bundled
in the wheel); no ``ffmpeg`` binary is used.  A few deliberately malformed
WAV files are written byte by byte with ``struct``.

Determinism: fixed espeak-ng voices and speeds, fixed seeds, integer-only
noise generation, FFmpeg ``bitexact`` flags (no encoder version tags, no
random Matroska / Ogg ids), fixed tar metadata.  Two runs with the same
espeak-ng and PyAV versions give byte-identical files.

Needs: ``espeak-ng`` on PATH, ``av`` (tested with 18.1.0) and ``numpy``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent
SEED = 20240601

# Folders this script owns (deleted and rebuilt on every run).  README.md and
# this script are not touched.
OUTPUT_DIRS = ("librispeech", "commonvoice", "nemo", "webdataset", "video",
               "duplicates", "broken")

# Written for beamtrain; CC0 1.0 (public domain dedication).
SENTENCES = [
    "The morning train left the station ten minutes early.",        # 0
    "Please put the red books back on the top shelf.",              # 1
    "A cold wind blew across the empty field all night.",           # 2
    "She counted the coins twice before she paid the driver.",      # 3
    "Our garden needs more water during the hot summer months.",    # 4
    "The old clock in the hall stopped at half past three.",        # 5
    "He wrote a short letter to his sister in the city.",           # 6
    "Bright lights from the harbour shone on the calm sea.",        # 7
    "We will meet again at noon by the bridge.",                    # 8
    "The children laughed when the puppy chased its own tail.",     # 9
    "Fresh bread smells wonderful early in the morning.",           # 10
    "Turn left at the bakery and walk two more blocks.",            # 11
    "The river rose quickly after three days of heavy rain.",       # 12
    "It's never too late to learn something new.",                  # 13
]

# Three synthetic "speakers": (espeak-ng voice, words per minute).
SPEAKERS = {
    "1001": ("en-us", 160),
    "2002": ("en-gb", 150),
    "3003": ("en-us+f3", 175),
}
ESPEAK_RATE = 22050  # espeak-ng always writes 22050 Hz mono s16 WAV

BITEXACT = {"fflags": "+bitexact"}          # container: no Lavf tag, fixed ids
CODEC_BITEXACT = {"flags": "+bitexact"}     # codec: no encoder version string


# --------------------------------------------------------------------------
# text helpers
# --------------------------------------------------------------------------

def librispeech_text(s: str) -> str:
    """LibriSpeech style: upper case, apostrophes kept, no other punctuation."""
    keep = "".join(ch if ch.isalnum() or ch in " '" else " " for ch in s)
    return " ".join(keep.upper().split())


def nemo_text(s: str) -> str:
    return librispeech_text(s).lower()


# --------------------------------------------------------------------------
# audio helpers (all sample arrays are int16, shape (channels, n))
# --------------------------------------------------------------------------

def synth(text: str, speaker: str, tmp: Path) -> np.ndarray:
    """Speak ``text`` with the speaker's fixed voice; returns (1, n) int16 @ 22050 Hz."""
    voice, speed = SPEAKERS[speaker]
    wav = tmp / "espeak.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), text],
                   check=True, stdout=subprocess.DEVNULL)
    samples, rate = decode(wav)
    assert rate == ESPEAK_RATE and samples.shape[0] == 1, (rate, samples.shape)
    return samples


def decode(path) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of ``path`` to int16 (channels, n)."""
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        chunks = []
        rate = None
        for frame in c.decode(stream):
            rate = frame.sample_rate
            arr = frame.to_ndarray()
            fmt = frame.format.name
            ch = frame.layout.nb_channels
            if not frame.format.is_planar:
                arr = arr.reshape(-1, ch).T
            if fmt.startswith("s16"):
                arr = arr.astype(np.int16)
            elif fmt.startswith("flt") or fmt.startswith("dbl"):
                arr = np.clip(np.round(arr * 32768.0), -32768, 32767).astype(np.int16)
            elif fmt.startswith("s32"):
                arr = (arr >> 16).astype(np.int16)
            else:
                raise ValueError(f"unhandled sample format {fmt}")
            chunks.append(arr)
    return np.concatenate(chunks, axis=1), rate


def resample(samples: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Resample (1, n) int16 with libswresample (deterministic)."""
    if src_rate == dst_rate:
        return samples.copy()
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="s16p",
                                       layout="mono")
    frame.sample_rate = src_rate
    rs = av.AudioResampler(format="s16p", layout="mono", rate=dst_rate)
    out = [f.to_ndarray() for f in rs.resample(frame)]
    out += [f.to_ndarray() for f in rs.resample(None)]
    return np.concatenate(out, axis=1).astype(np.int16)


def scale(samples: np.ndarray, gain: float) -> np.ndarray:
    return np.clip(np.round(samples.astype(np.float64) * gain), -32768, 32767).astype(np.int16)


def encode(path: Path, samples: np.ndarray, rate: int, codec: str, fmt: str,
           bit_rate: int | None = None, codec_options: dict | None = None) -> None:
    """Encode int16 (channels, n) samples to ``path`` with PyAV."""
    channels = samples.shape[0]
    layout = {1: "mono", 2: "stereo"}[channels]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=fmt, container_options=dict(BITEXACT)) as c:
        opts = dict(CODEC_BITEXACT)
        opts.update(codec_options or {})
        stream = c.add_stream(codec, rate=rate, options=opts)
        stream.layout = layout
        if codec.startswith("pcm_") or codec == "flac":
            stream.format = "s16"
        if bit_rate:
            stream.bit_rate = bit_rate
        _encode_audio(c, stream, samples, rate)


def _encode_audio(container, stream, samples: np.ndarray, rate: int) -> None:
    block = 4096
    n = samples.shape[1]
    for start in range(0, n, block):
        chunk = np.ascontiguousarray(samples[:, start:start + block])
        frame = av.AudioFrame.from_ndarray(chunk, format="s16p",
                                           layout={1: "mono", 2: "stereo"}[samples.shape[0]])
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def wav_header(rate: int, channels: int, bits: int, data_bytes: int,
               riff_bytes: int | None = None, fmt_tag: int = 1,
               byte_rate: int | None = None, block_align: int | None = None) -> bytes:
    """A canonical 44-byte RIFF/WAVE header (fields may be set to lies)."""
    if block_align is None:
        block_align = channels * bits // 8
    if byte_rate is None:
        byte_rate = rate * block_align
    if riff_bytes is None:
        riff_bytes = 36 + data_bytes
    return (b"RIFF" + struct.pack("<I", riff_bytes) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, fmt_tag, channels, rate,
                                    byte_rate, block_align, bits)
            + b"data" + struct.pack("<I", data_bytes))


def pink_noise(n: int, rng: np.random.Generator, amplitude: int) -> np.ndarray:
    """Voss-McCartney pink-ish noise, integer arithmetic only (reproducible)."""
    octaves = 12
    total = np.zeros(n, dtype=np.int64)
    for k in range(octaves):
        step = 1 << k
        vals = rng.integers(-amplitude, amplitude + 1, size=(n + step - 1) // step)
        total += np.repeat(vals, step)[:n]
    total += rng.integers(-amplitude, amplitude + 1, size=n)  # white part
    return (total // (octaves + 1)).astype(np.int16)[None, :]


def fixed_tarinfo(name: str, size: int) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size = size
    ti.mtime = 1704067200  # 2024-01-01T00:00:00Z
    ti.mode = 0o644
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    ti.type = tarfile.REGTYPE
    return ti


# --------------------------------------------------------------------------
# build
# --------------------------------------------------------------------------

def build() -> None:
    for d in OUTPUT_DIRS:
        shutil.rmtree(ROOT / d, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmpname:
        tmp = Path(tmpname)
        speech: dict[tuple[int, str], np.ndarray] = {}

        def say(i: int, spk: str) -> np.ndarray:
            if (i, spk) not in speech:
                speech[(i, spk)] = synth(SENTENCES[i], spk, tmp)
            return speech[(i, spk)]

        def say16(i: int, spk: str) -> np.ndarray:
            return resample(say(i, spk), ESPEAK_RATE, 16000)

        # ---- LibriSpeech: <spk>/<chapter>/<spk>-<chapter>-<utt>.flac --------
        chapter = "10"
        ls_plan = {"1001": [0, 1, 2], "2002": [3, 4, 5]}
        for spk, idxs in ls_plan.items():
            d = ROOT / "librispeech" / spk / chapter
            lines = []
            for utt, i in enumerate(idxs):
                uid = f"{spk}-{chapter}-{utt:04d}"
                encode(d / f"{uid}.flac", say16(i, spk), 16000, "flac", "flac")
                lines.append(f"{uid} {librispeech_text(SENTENCES[i])}\n")
            (d / f"{spk}-{chapter}.trans.txt").write_text("".join(lines), encoding="utf-8")

        # ---- Common Voice: clips/*.mp3 (48 kHz mono) + validated.tsv --------
        cv = ROOT / "commonvoice"
        header = ["client_id", "path", "sentence", "up_votes", "down_votes", "age",
                  "gender", "accents", "locale", "segment"]
        rows = ["\t".join(header)]
        accents = {"1001": "United States English", "2002": "England English",
                   "3003": "United States English"}
        for n, (i, spk) in enumerate([(6, "3003"), (7, "3003"), (9, "1001")]):
            name = f"common_voice_en_{41000001 + n}.mp3"
            encode(cv / "clips" / name, resample(say(i, spk), ESPEAK_RATE, 48000),
                   48000, "libmp3lame", "mp3", bit_rate=48000)
            client = hashlib.sha512(f"beamtrain-speaker-{spk}".encode()).hexdigest()
            rows.append("\t".join([client, name, SENTENCES[i], "2", "0", "", "",
                                   accents[spk], "en", ""]))
        (cv / "validated.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")

        # ---- NeMo: audio/{wav,m4a,opus} + manifest.jsonl --------------------
        nemo = ROOT / "nemo"
        nemo_items = []
        # 22050 Hz stereo 16-bit PCM WAV (mono duplicated into both channels)
        mono = say(8, "2002")
        encode(nemo / "audio" / "meet_at_noon.wav", np.vstack([mono, mono]), ESPEAK_RATE,
               "pcm_s16le", "wav")
        nemo_items.append(("meet_at_noon.wav", 8))
        encode(nemo / "audio" / "fresh_bread.m4a", say16(10, "3003"), 16000, "aac", "ipod",
               bit_rate=32000)
        nemo_items.append(("fresh_bread.m4a", 10))
        encode(nemo / "audio" / "bakery_left.opus", say16(11, "1001"), 16000, "libopus",
               "ogg", bit_rate=24000)
        nemo_items.append(("bakery_left.opus", 11))
        with open(nemo / "manifest.jsonl", "w", encoding="utf-8") as f:
            for name, i in nemo_items:
                samples, rate = decode(nemo / "audio" / name)
                f.write(json.dumps({"audio_filepath": f"audio/{name}",
                                    "duration": round(samples.shape[1] / rate, 3),
                                    "text": nemo_text(SENTENCES[i])}) + "\n")

        # ---- WebDataset: shard-000000.tar -----------------------------------
        members: list[tuple[str, bytes]] = []
        for n, (i, spk) in enumerate([(12, "3003"), (13, "1001"), (13, "2002")]):
            key = f"utt{n:06d}"
            f = tmp / f"{key}.flac"
            encode(f, say16(i, spk), 16000, "flac", "flac")
            members.append((f"{key}.flac", f.read_bytes()))
            members.append((f"{key}.txt", SENTENCES[i].encode("utf-8")))
        key = "utt000003"
        f = tmp / f"{key}.wav"
        encode(f, say16(12, "2002"), 16000, "pcm_s16le", "wav")
        members.append((f"{key}.wav", f.read_bytes()))
        members.append((f"{key}.json",
                        json.dumps({"text": SENTENCES[12]}, ensure_ascii=False).encode()))
        (ROOT / "webdataset").mkdir(parents=True)
        with tarfile.open(ROOT / "webdataset" / "shard-000000.tar", "w",
                          format=tarfile.GNU_FORMAT) as tar:
            for name, data in members:
                tar.addfile(fixed_tarinfo(name, len(data)), io.BytesIO(data))

        # ---- Video: H.264 64x64 @ 5 fps + AAC audio track, Matroska ---------
        write_video(ROOT / "video" / "talk.mkv",
                    resample(say(2, "3003"), ESPEAK_RATE, 44100), 44100)

        # ---- Duplicates -----------------------------------------------------
        dup = ROOT / "duplicates"
        dup.mkdir(parents=True)
        src = ROOT / "librispeech" / "1001" / chapter / f"1001-{chapter}-0000.flac"
        shutil.copyfile(src, dup / "exact_copy.flac")
        samples, rate = decode(src)
        encode(dup / "same_audio_other_container.wav", samples, rate, "pcm_s16le", "wav")
        encode(dup / "near_copy.ogg", scale(samples, 10 ** (-3 / 20)), rate, "libopus",
               "ogg", bit_rate=16000)

        # ---- Broken ---------------------------------------------------------
        write_broken(ROOT / "broken", say16, ROOT / "librispeech" / "2002" / chapter
                     / f"2002-{chapter}-0001.flac", say(5, "3003"))


def write_video(path: Path, audio: np.ndarray, rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fps = 5
    seconds = audio.shape[1] / rate
    n_frames = int(np.ceil(seconds * fps))
    with av.open(str(path), "w", format="matroska", container_options=dict(BITEXACT)) as c:
        vs = c.add_stream("libx264", rate=fps,
                          options={"preset": "medium", "crf": "30", "threads": "1",
                                   "flags": "+bitexact"})
        vs.width = vs.height = 64
        vs.pix_fmt = "yuv420p"
        aus = c.add_stream("aac", rate=rate, options=dict(CODEC_BITEXACT))
        aus.layout = "mono"
        aus.bit_rate = 48000
        yy, xx = np.mgrid[0:64, 0:64]
        for k in range(n_frames):
            img = np.zeros((64, 64, 3), dtype=np.uint8)
            img[..., 0] = (xx * 4) % 256
            img[..., 1] = (yy * 4) % 256
            img[..., 2] = 80
            x0 = (k * 6) % 48
            img[24:40, x0:x0 + 16] = 255  # a white square moving right
            frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
            frame.pts = k
            frame.time_base = Fraction(1, fps)
            for p in vs.encode(frame):
                c.mux(p)
        for p in vs.encode(None):
            c.mux(p)
        _encode_audio(c, aus, audio, rate)


def write_broken(d: Path, say16, flac_src: Path, speech22k: np.ndarray) -> None:
    d.mkdir(parents=True)
    rnd = random.Random(SEED)
    rng = np.random.default_rng(SEED)

    (d / "empty.wav").write_bytes(b"")

    data = flac_src.read_bytes()
    (d / "truncated.flac").write_bytes(data[: int(len(data) * 0.4)])

    # PCM tag but 0 channels, 0 Hz, 7 bits/sample: no decoder can accept this.
    (d / "corrupt.wav").write_bytes(
        wav_header(rate=0, channels=0, bits=7, data_bytes=4096, byte_rate=0, block_align=0)
        + rnd.randbytes(4096))

    (d / "not_audio.mp3").write_text(
        "This is not an MP3 file. It is a short UTF-8 text file with an .mp3 name,\n"
        "planted by beamtrain's audio sample builder. Ceci n’est pas un son. ♪\n",
        encoding="utf-8")

    encode(d / "silence.wav", np.zeros((1, 3 * 16000), dtype=np.int16), 16000,
           "pcm_s16le", "wav")

    encode(d / "clipped.wav", scale(say16(4, "1001"), 20.0), 16000, "pcm_s16le", "wav")

    # 0.1 s taken from the loudest part of an utterance.
    s = say16(1, "2002")
    env = np.convolve(np.abs(s[0].astype(np.int64)), np.ones(1600, dtype=np.int64), "valid")
    start = int(np.argmax(env))
    encode(d / "too_short.wav", s[:, start:start + 1600], 16000, "pcm_s16le", "wav")

    # Header claims 6 h of 48 kHz stereo 16-bit (4,147,200,000 data bytes, close to
    # the 4 GiB RIFF limit; 10 h would need 6.9 GB and cannot be expressed),
    # but the file holds 1 s of samples.
    one_s = resample(speech22k, ESPEAK_RATE, 48000)[:, :48000]
    if one_s.shape[1] < 48000:
        one_s = np.pad(one_s, ((0, 0), (0, 48000 - one_s.shape[1])))
    stereo = np.vstack([one_s, one_s]).T.astype("<i2").tobytes()  # interleaved
    claimed = 6 * 3600 * 48000 * 2 * 2
    (d / "long_claim.wav").write_bytes(
        wav_header(rate=48000, channels=2, bits=16, data_bytes=claimed) + stereo)

    (d / "zero_length.wav").write_bytes(wav_header(rate=16000, channels=1, bits=16,
                                                   data_bytes=0))

    encode(d / "noise_long.flac", pink_noise(40 * 16000, rng, amplitude=48), 16000,
           "flac", "flac")


# --------------------------------------------------------------------------
# verify
# --------------------------------------------------------------------------

def probe(path: Path) -> str:
    """Decode every audio frame; return a one-line description or the error."""
    try:
        with av.open(str(path)) as c:
            if not c.streams.audio:
                return f"no audio stream (format={c.format.name})"
            s = c.streams.audio[0]
            n = 0
            rate = None
            for frame in c.decode(s):
                n += frame.samples
                rate = frame.sample_rate
            ch = s.codec_context.layout.nb_channels
            rate = rate or s.rate
            dur = n / rate if rate else 0.0
            claimed = (float(c.duration) / av.time_base) if c.duration else None
            extra = f" container_duration={claimed:.2f}s" if claimed is not None else ""
            return (f"{c.format.name}/{s.codec_context.name} {rate} Hz {ch}ch "
                    f"{n} samples = {dur:.3f}s{extra}")
    except Exception as e:  # noqa: BLE001 - we report whatever PyAV raises
        return f"{type(e).__module__}.{type(e).__name__}: {e}"


def verify() -> int:
    total = 0
    for p in sorted(ROOT.rglob("*")):
        if not p.is_file():
            continue
        size = p.stat().st_size
        total += size
        rel = p.relative_to(ROOT)
        if p.suffix in {".flac", ".mp3", ".wav", ".m4a", ".opus", ".ogg", ".mkv"}:
            print(f"{size:>9}  {rel}  {probe(p)}")
        else:
            print(f"{size:>9}  {rel}")
    print(f"{total:>9}  TOTAL ({total / 1e6:.2f} MB)")
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--verify", action="store_true", help="only decode and report")
    args = ap.parse_args()
    if shutil.which("espeak-ng") is None and not args.verify:
        sys.exit("espeak-ng not found: apt-get install espeak-ng")
    if not args.verify:
        build()
    verify()


if __name__ == "__main__":
    main()
