"""The audio core: decoding through FFmpeg (PyAV), limits, rules, loudness, trimming,
splitting, the exact hash and the spectral fingerprint. Signals are made here."""

import io
import struct
import wave

import numpy as np
import pytest

av = pytest.importorskip("av")

from transforms.audio import process as ap  # noqa: E402

RATE = 22050


def speechlike(seconds=2.0, rate=RATE, seed=0, f0=180.0):
    """Syllable-like bursts of a harmonic tone with noise: energy moving over time and bands."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    pitch = f0 * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = np.clip(np.sin(2 * np.pi * (3.0 + seed) * t), 0, None) ** 2
    x = 0.25 * envelope * voice + 0.01 * rng.standard_normal(t.size)
    return x.astype(np.float32)


def with_silence(x, rate=RATE, before=0.5, after=0.7):
    return np.concatenate([np.zeros(int(before * rate), np.float32), x,
                           np.zeros(int(after * rate), np.float32)])


def container(x, rate=RATE, fmt="wav", codec="pcm_s16le", channels=1, video=False, bitrate=None):
    """Encode mono float ``x`` with PyAV (``channels`` copies of it)."""
    buf = io.BytesIO()
    layout = "mono" if channels == 1 else "stereo"
    with av.open(buf, mode="w", format=fmt) as out:
        if video:
            vs = out.add_stream("mpeg4", rate=5)
            vs.width = vs.height = 32
            vs.pix_fmt = "yuv420p"
        stream = out.add_stream(codec, rate=rate, layout=layout)
        if bitrate:
            stream.bit_rate = bitrate
        sample_fmt = stream.codec_context.format.name
        data = np.tile(x, (channels, 1))
        if sample_fmt.startswith("s16"):
            data = np.round(np.clip(data, -1, 1) * 32767).astype(np.int16)
        elif sample_fmt.startswith("s32"):
            data = np.round(np.clip(data, -1, 1) * 2147483647.0).astype(np.int32)
        else:
            data = data.astype(np.float32)
        planar = sample_fmt.endswith("p")
        step = stream.codec_context.frame_size or 1024
        if video:
            for i in range(int(x.size / rate * 5)):
                frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 20 % 255, np.uint8),
                                                   format="rgb24")
                frame.pts = i
                for packet in vs.encode(frame):
                    out.mux(packet)
            for packet in vs.encode(None):
                out.mux(packet)
        for i in range(0, x.size, step):
            chunk = data[:, i:i + step]
            if chunk.shape[1] < step and codec not in ("pcm_s16le", "flac"):
                chunk = np.pad(chunk, ((0, 0), (0, step - chunk.shape[1])))
            arr = chunk if planar else chunk.T.reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr), format=sample_fmt,
                                               layout=layout)
            frame.sample_rate = rate
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def reason(data, **kw):
    with pytest.raises(ap.AudioReject) as e:
        ap.process_audio(data, ap.AudioConfig(**kw))
    return e.value.reason, e.value.dead


def hamming(a, b):
    return bin(a ^ b).count("1")


def decoded(clip):
    with av.open(io.BytesIO(clip.encoded)) as c:
        return np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])


def test_one_recording_in_two_containers_is_one_recording():
    x = with_silence(speechlike())
    d_wav, (c_wav,) = ap.process_audio(container(x))
    d_flac, (c_flac,) = ap.process_audio(container(x, fmt="flac", codec="flac"))
    assert d_wav.exact_hash == d_flac.exact_hash and (d_wav.codec, d_flac.codec) == ("pcm_s16le", "flac")
    assert c_wav.encoded == c_flac.encoded and c_wav.fingerprint == c_flac.fingerprint
    d_other, _ = ap.process_audio(container(with_silence(speechlike(seed=1))))
    assert d_other.exact_hash != d_wav.exact_hash


@pytest.mark.parametrize("fmt, codec", [("ogg", "libopus"), ("ipod", "aac"), ("mp3", "libmp3lame")])
def test_lossy_copies_are_near_by_fingerprint_other_recordings_far(fmt, codec):
    x = with_silence(speechlike())
    _, (base,) = ap.process_audio(container(x))
    quieter = x * 10 ** (-3 / 20)  # 3 dB down, then a lossy codec
    rate = 48000 if codec == "libopus" else RATE
    src = np.interp(np.arange(int(quieter.size * rate / RATE)) * RATE / rate,
                    np.arange(quieter.size), quieter).astype(np.float32)
    d, (copy,) = ap.process_audio(container(src, rate=rate, fmt=fmt, codec=codec, bitrate=32000))
    assert d.exact_hash != ap.decode(container(x)).exact_hash  # not an exact duplicate
    assert hamming(base.fingerprint, copy.fingerprint) <= 24  # of 128 bits
    for seed in (1, 2, 3):
        _, (other,) = ap.process_audio(container(with_silence(speechlike(seed=seed, f0=120 + 40 * seed))))
        assert hamming(base.fingerprint, other.fingerprint) > 40


def test_stereo_any_rate_becomes_mono_at_the_target_rate_and_video_tracks_are_read():
    x = with_silence(speechlike(seconds=1.5))
    d, (clip,) = ap.process_audio(container(x, channels=2), ap.AudioConfig(sample_rate=16000))
    assert d.source_channels == 2 and d.source_rate == RATE and clip.sample_rate == 16000
    mkv = container(x, fmt="matroska", codec="aac", video=True)
    d_video, (from_video,) = ap.process_audio(mkv, ap.AudioConfig(sample_rate=16000))
    assert d_video.container == "matroska,webm" and d_video.codec == "aac"
    assert abs(from_video.seconds - clip.seconds) < 0.15


def test_broken_files_are_dead_letters_with_reasons():
    good = container(with_silence(speechlike()), fmt="flac", codec="flac")
    assert reason(b"") == ("empty", True)
    assert reason("not audio at all, just words\n".encode() * 20) == ("not_audio", True)
    assert reason(good[: len(good) * 4 // 10]) == ("truncated", True)
    empty_wav = io.BytesIO()
    with wave.open(empty_wav, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
    assert reason(empty_wav.getvalue()) == ("zero_duration", True)
    # a FLAC header (STREAMINFO's total samples) claiming ten hours, holding two seconds
    flac = bytearray(good)
    assert flac[:4] == b"fLaC" and flac[4] & 0x7F == 0  # STREAMINFO first
    fields = int.from_bytes(flac[18:26], "big")
    claim = 10 * 3600 * RATE
    flac[18:26] = ((fields >> 36 << 36) | claim).to_bytes(8, "big")
    assert ap.probe(bytes(flac))["seconds"] == pytest.approx(36000, rel=1e-3)
    assert reason(bytes(flac), max_input_seconds=3600) == ("too_long_to_decode", True)
    # a WAV data chunk claiming hours (FFmpeg would clamp it to the file): refused from
    # the header; a smaller claim than the limit, but more than the file holds: truncated
    second = (np.sin(np.arange(48000 * 2) / 9.0) * 8000).astype(np.int16).tobytes()

    def wav_claiming(seconds):
        big = int(seconds * 48000 * 4)
        return (b"RIFF" + struct.pack("<I", 36 + big) + b"WAVEfmt " + struct.pack(
            "<IHHIIHH", 16, 1, 2, 48000, 48000 * 4, 4, 16) + b"data" + struct.pack("<I", big))

    assert reason(wav_claiming(5 * 3600) + second, max_input_seconds=3600) == ("too_long_to_decode", True)
    assert reason(wav_claiming(60) + second) == ("truncated", True)
    assert ap.process_audio(wav_claiming(1.0) + second)[1]  # an honest header decodes
    # a WAV whose format tag names no codec FFmpeg knows
    pcm = (np.sin(np.arange(16000) / 5.0) * 9000).astype(np.int16).tobytes()
    unknown = (b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 0x1234, 1, 16000, 32000, 2, 16) + b"data" + struct.pack("<I", len(pcm)))
    assert reason(unknown + pcm) == ("unsupported_codec", True)
    many = container(speechlike(), channels=2)
    assert reason(many, max_channels=1) == ("too_many_channels", True)


def test_rules_are_filtered_with_reasons():
    assert reason(container(np.zeros(3 * RATE, np.float32))) == ("silence", False)
    loud = np.clip(speechlike() * 20, -1, 1)
    assert reason(container(loud)) == ("clipping", False)
    assert reason(container(with_silence(speechlike(seconds=0.2)))) == ("too_short", False)
    assert reason(container(speechlike(seconds=5)), max_seconds=3, split_long=False) == ("too_long", False)


def test_long_recordings_split_at_quiet_points_into_bounded_segments():
    parts = [speechlike(seconds=2.5, seed=s) for s in range(4)]
    gaps = [np.zeros(int(0.4 * RATE), np.float32)] * 4
    x = np.concatenate([p for pair in zip(parts, gaps) for p in pair])
    config = ap.AudioConfig(sample_rate=16000, max_seconds=4.0, min_seconds=0.3)
    _, clips = ap.process_audio(container(x), config)
    assert len(clips) >= 3 and all(c.seconds <= 4.0 for c in clips)
    assert [c.segment for c in clips] == list(range(1, len(clips) + 1))
    assert {c.segments for c in clips} == {len(clips)}
    assert sum(c.seconds for c in clips) > 0.9 * (x.size / RATE - 1.0)
    # every cut fell in a gap: no segment starts or ends in the middle of a loud burst
    for clip in clips:
        y = decoded(clip).astype(np.float32) / 32768
        edge = int(0.02 * 16000)
        assert np.abs(y[:edge]).max() < 0.05 and np.abs(y[-edge:]).max() < 0.05


def test_loudness_normalised_and_silence_trimmed():
    import pyloudnorm

    for gain in (0.05, 0.5):
        x = with_silence(speechlike() * gain, before=1.0, after=1.5)
        config = ap.AudioConfig(sample_rate=16000, trim_margin=0.05)
        _, (clip,) = ap.process_audio(container(x), config)
        y = decoded(clip).astype(np.float64) / 32768
        assert np.abs(y).max() <= config.max_peak + 1e-3
        lufs = pyloudnorm.Meter(16000).integrated_loudness(y)
        assert abs(lufs - config.loudness_lufs) < 0.5 or np.abs(y).max() > 0.98
        # 1.0 + 1.5 s of silence around 2 s of sound: trimmed to the sound and the margins
        assert 1.6 < clip.seconds < 2.2
    _, (kept,) = ap.process_audio(container(with_silence(speechlike())),
                                  ap.AudioConfig(loudness_lufs=None, trim=False))
    assert abs(kept.seconds - (0.5 + 2.0 + 0.7)) < 0.01


def test_wav_output_is_16_bit_pcm_at_the_rate():
    _, (clip,) = ap.process_audio(container(with_silence(speechlike())),
                                  ap.AudioConfig(sample_rate=8000, audio_format="wav"))
    with wave.open(io.BytesIO(clip.encoded)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        assert w.getnframes() == clip.num_samples
