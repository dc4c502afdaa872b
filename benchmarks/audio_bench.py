"""Audio decode + resample + encode throughput: the pipeline's core against one ffmpeg process per file.

    python -m benchmarks.audio_bench [--files 40] [--seconds 10]

The corpus is made here: speech-like signals (harmonic bursts with noise),
``--seconds`` long, half 44.1 kHz stereo MP3 and half 48 kHz stereo FLAC,
written with PyAV. Measured on one core, each over the same files:

* ``ffmpeg per file``: ``ffmpeg -i IN -ac 1 -ar 16000 -c:a flac OUT``, one
  subprocess per file (what a pile of scripts does; Debian's ffmpeg);
* ``ours, convert only``: :func:`transforms.audio.process.process_audio` with
  loudness and trimming off: decode, mono, resample, checks, hashes, FLAC;
* ``ours, full``: the pipeline's defaults (also EBU R128 loudness, trimming).

Printed: files/s and seconds of audio per second of wall time. Skipped when
no ``ffmpeg`` binary is on PATH (``make bench`` installs Debian's as root).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np


def _signal(seconds: float, rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(150 + 30 * np.sin(2 * np.pi * 0.5 * t)) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = np.clip(np.sin(2 * np.pi * (2.5 + seed % 3) * t), 0, None) ** 2
    return (0.2 * envelope * voice + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def _write(path: str, x: np.ndarray, rate: int, fmt: str, codec: str) -> None:
    import av

    with av.open(path, mode="w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout="stereo")
        sample_fmt = stream.codec_context.format.name
        step = stream.codec_context.frame_size or 4096
        data = np.stack([x, x])
        if sample_fmt.startswith("s16"):
            data = np.round(data * 32767).astype(np.int16)
        elif sample_fmt.startswith("s32"):
            data = np.round(data * 2147483647.0).astype(np.int32)
        for i in range(0, x.size, step):
            chunk = data[:, i:i + step]
            if chunk.shape[1] < step and codec != "flac":
                chunk = np.pad(chunk, ((0, 0), (0, step - chunk.shape[1])))
            arr = chunk if sample_fmt.endswith("p") else chunk.T.reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr), format=sample_fmt,
                                               layout="stereo")
            frame.sample_rate, frame.pts = rate, i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def make_corpus(folder: str, files: int, seconds: float):
    paths = []
    for i in range(files):
        if i % 2:
            path = os.path.join(folder, f"clip{i:03d}.mp3")
            _write(path, _signal(seconds, 44100, i), 44100, "mp3", "libmp3lame")
        else:
            path = os.path.join(folder, f"clip{i:03d}.flac")
            _write(path, _signal(seconds, 48000, i), 48000, "flac", "flac")
        paths.append(path)
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        print("# audio_bench: skipped (no ffmpeg on PATH; apt-get install ffmpeg)")
        return 0
    from transforms.audio.process import AudioConfig, process_audio

    folder = tempfile.mkdtemp(prefix="bench-audio-")
    try:
        paths = make_corpus(folder, args.files, args.seconds)
        audio_s = args.files * args.seconds
        rows = []
        out = os.path.join(folder, "out.flac")
        start = time.perf_counter()
        for path in paths:
            subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-threads", "1", "-i",
                            path, "-ac", "1", "-ar", "16000", "-c:a", "flac", out], check=True)
        rows.append(("ffmpeg per file (subprocess)", time.perf_counter() - start))
        blobs = [open(p, "rb").read() for p in paths]
        for data in blobs[:2]:  # warm up: imports, FFmpeg's codec tables, scipy's filters
            process_audio(data)
        for label, config in (("ours, convert only", AudioConfig(loudness_lufs=None, trim=False)),
                              ("ours, full (loudness, trim)", AudioConfig())):
            start = time.perf_counter()
            for data in blobs:
                process_audio(data, config)
            rows.append((label, time.perf_counter() - start))
        print(f"# audio: {args.files} files of {args.seconds:.0f} s (MP3 44.1 kHz and FLAC 48 kHz, "
              f"stereo) -> 16 kHz mono FLAC, one core")
        base = rows[0][1]
        for label, seconds in rows:
            print(f"{label:<32} {args.files / seconds:8.1f} files/s  {audio_s / seconds:8.0f} "
                  f"audio s/s  ({base / seconds:.2f}x ffmpeg per file)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
