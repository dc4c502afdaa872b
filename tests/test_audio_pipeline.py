"""The audio pipeline end to end on data/sample/audio: every planted defect accounted for with
its reason, transcripts from each layout, duplicates across containers, the output contract."""

import io
import json
import os
import shutil

import numpy as np
import pytest

pytest.importorskip("av")

from conftest import read_dead_letter, read_shards  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "data", "sample", "audio")
INPUTS = ["librispeech/*/*/*.trans.txt", "nemo/manifest.jsonl", "commonvoice/validated.tsv",
          "webdataset/*.tar", "broken/*", "duplicates/*", "video/*"]


def run_audio(inputs, output_dir, *extra):
    from beam_pipelines import audio

    argv = []
    for pattern in inputs:
        argv += ["--input", str(pattern)]
    argv += ["--output_dir", str(output_dir)] + [str(a) for a in extra]
    return audio.run(argv)


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("audio") / "out"
    stats = run_audio([os.path.join(SAMPLE, p) for p in INPUTS], out,
                      "--max_dead_letter_fraction", "0.5")
    return out, stats


def test_every_planted_defect_has_its_reason_and_every_record_is_accounted(sample_run):
    out, stats = sample_run
    assert stats["dead_letter"] == {"empty": 1, "not_audio": 2, "truncated": 1,
                                    "zero_duration": 1, "too_long_to_decode": 1}
    assert stats["filtered"] == {"clipping": 1, "silence": 2, "too_short": 1}
    # exact: the same samples in FLAC and WAV; near: the same speech re-encoded as Opus,
    # and the untranscribed copies against the transcribed original
    assert stats["duplicates"]["exact"] == 1 and stats["duplicates"]["near"] == 2
    total = (stats["records_out"] + sum(stats["filtered"].values())
             + sum(stats["duplicates"].values()) + sum(stats["dead_letter"].values()))
    assert stats["records_in"] == total == 30
    dead = {os.path.basename(e["source"]): e["reason"] for e in read_dead_letter(out)}
    assert dead["empty.wav"] == "empty" and dead["truncated.flac"] == "truncated"
    assert dead["long_claim.wav"] == "too_long_to_decode" and dead["zero_length.wav"] == "zero_duration"
    assert dead["not_audio.mp3"] == "not_audio" and dead["corrupt.wav"] == "not_audio"


def test_clips_are_mono_at_the_rate_with_transcripts_where_there_were_some(sample_run):
    import av

    out, stats = sample_run
    records = read_shards(out)
    assert len(records) == stats["records_out"] == 17
    with_text = [r for r in records if "transcript/text" in r]
    # 6 LibriSpeech + 3 NeMo + 3 Common Voice + 4 WebDataset transcripts, less what was dropped
    assert len(with_text) >= 14
    for r in with_text:
        assert r["transcript/input_ids"] and r["transcript/text"][0]
    # one survivor of the four copies of utterance 1001-10-0000 (FLAC with its transcript,
    # a byte copy, the same samples as WAV, an Opus re-encoding)
    from transforms.read.corpus import derive_id

    group = {"librispeech-1001-10-0000"} | {derive_id(f"{name}", 0) for name in (
        "exact_copy.flac", "same_audio_other_container.wav", "near_copy.ogg")}
    ids = {r["audio/id"][0].decode() for r in records}
    assert ids & group == {"librispeech-1001-10-0000"}  # the copy with a transcript survives
    for r in records:
        assert r["audio/sample_rate"] == [16000] and r["audio/format"] == [b"flac"]
        with av.open(io.BytesIO(r["audio/encoded"][0])) as c:
            stream = c.streams.audio[0]
            samples = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(stream)])
            assert stream.codec_context.sample_rate == 16000 and stream.codec_context.channels == 1
        assert samples.size == r["audio/num_samples"][0]
        assert 0.5 <= samples.size / 16000 <= 30.0
    assert (out / "tokenizer" / "spm.model").exists()
    hist = stats["histograms"]
    assert set(hist) >= {"audio_seconds_x10", "audio_source_sample_rate"}
    info = stats["info"]
    assert info["codec.mp3float"] == 3 and info["container.matroska"] == 1  # the video's track
    assert info["audio_seconds_out_x1000"] < info["audio_seconds_in_x1000"]
    audio = stats["audio"]
    assert 0 < audio["hours_out"] < audio["hours_in"] < 0.1
    assert audio["codecs"]["flac"] >= 6 and audio["containers"]["ogg"] == 2
    report = (out / "report.html").read_text()
    assert '<section id="audio">' in report and "hours written" in report


def test_output_passes_verify(sample_run):
    from beam_pipelines import verify

    out, _ = sample_run
    assert verify.main([str(out)]) == 0


def test_manifest_paths_stay_inside_the_root_and_slices_are_refused(tmp_path):
    src = tmp_path / "corpus"
    (src / "audio").mkdir(parents=True)
    good = os.path.join(SAMPLE, "nemo", "audio", "meet_at_noon.wav")
    shutil.copy(good, src / "audio" / "a.wav")
    outside = tmp_path / "secret.wav"
    shutil.copy(good, outside)
    lines = [{"audio_filepath": "audio/a.wav", "duration": 2.5, "text": "we will meet again"},
             {"audio_filepath": "../secret.wav", "text": "escape"},
             {"audio_filepath": str(outside), "text": "absolute escape"},
             {"audio_filepath": "audio/a.wav", "offset": 1.0, "duration": 1.2, "text": "a slice"},
             {"audio_filepath": "audio/a.wav", "offset": 60.0, "duration": 1.0, "text": "beyond"},
             {"audio_filepath": "audio/a.wav", "offset": -1, "text": "negative"},
             {"audio_filepath": "https://example.com/x.wav", "text": "remote"},
             {"audio_filepath": "audio/missing.wav", "text": "gone"}]
    (src / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + "{not json\n")
    stats = run_audio([src / "manifest.jsonl"], tmp_path / "out", "--max_dead_letter_fraction", "0.9")
    assert stats["records_out"] == 2  # the whole file and its slice (another recording)
    assert stats["dead_letter"] == {"path_outside_root": 2, "slice_outside_audio": 1,
                                    "malformed_slice": 1, "remote_audio_not_fetched": 1,
                                    "missing_audio": 1, "malformed_json": 1}
    clips = {r["transcript/text"][0].decode(): r for r in read_shards(tmp_path / "out")}
    whole, part = clips["we will meet again"], clips["a slice"]
    assert part["audio/num_samples"][0] < whole["audio/num_samples"][0]
    assert part["audio/num_samples"][0] <= 1.2 * 16000
    entries = read_dead_letter(tmp_path / "out")
    assert not any("secret" in json.dumps(e.get("raw", "")) for e in entries
                   if e["reason"] == "path_outside_root" and e.get("raw"))


# ---------------------------------------------------------------- trainer input and CTC demo


def test_audio_input_log_mel_spec_augment_and_duration_buckets(sample_run):
    import glob

    import tensorflow as tf

    from trainer import audio_input as ai

    out, stats = sample_run
    files = sorted(glob.glob(str(out / "data" / "*.tfrecord")))
    cfg = ai.AudioInputConfig(batch_size=4, training=False, with_ids=True)
    rows = 0
    for features, labels in ai.make_audio_dataset(files, cfg):
        x, lengths = features["features"].numpy(), features["feature_lengths"].numpy()
        assert x.shape[0] == labels.shape[0] and x.shape[2] == 80
        assert x.shape[1] == lengths.max()  # padded to the batch's own longest clip
        # frames of 10 ms: a batch's clips lie within one 2-second bucket
        assert lengths.max() // 200 == lengths.min() // 200
        for row, n in zip(x, lengths):
            assert not row[n:].any()  # padding is zeros
        rows += x.shape[0]
    assert rows == stats["records_out"]  # evaluation reads every clip once
    # SpecAugment zeroes whole mel bands and time spans, differently per seed
    feats = ai.log_mel(tf.sin(tf.range(16000, dtype=tf.float32) / 3.0), 16000, 80)
    masked = ai.spec_augment(feats, tf.constant([7, 1]), ai.AudioInputConfig()).numpy()
    zero_bands = (masked == 0).all(axis=0).sum()
    zero_frames = (masked == 0).all(axis=1).sum()
    assert zero_bands >= 1 and 1 <= zero_frames <= 20  # time masks: at most 10% each
    again = ai.spec_augment(feats, tf.constant([8, 1]), ai.AudioInputConfig()).numpy()
    assert not np.array_equal(masked, again)


@pytest.mark.slow
def test_ctc_model_trains_on_two_cpu_replicas(sample_run, tmp_path):
    import subprocess
    import sys

    out, _ = sample_run
    proc = subprocess.run(
        [sys.executable, "-m", "trainer.train_audio", "--data_dir", str(out), "--model_dir",
         str(tmp_path / "m"), "--steps", "20", "--batch_size", "4", "--width", "64",
         "--cpu_replicas", "2", "--checkpoint_every", "10", "--verbose", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["steps"] == 20 and metrics["replicas"] == 2
    losses = metrics["interval_losses"]
    assert len(losses) == 2 and losses[1] < losses[0], losses


def test_bad_audio_flags_are_one_line_errors(tmp_path, capsys):
    good = os.path.join(SAMPLE, "nemo", "manifest.jsonl")
    for extra, flag in ((["--caption_vocab_size", "10"], "--caption_vocab_size"),
                        (["--min_seconds", "40"], "--audio flags"),
                        (["--sample_rate", "99"], "--sample_rate"),
                        (["--audio_near_dup_hamming", "40"], "--audio_near_dup_hamming")):
        with pytest.raises(SystemExit) as e:
            run_audio([good], tmp_path / "out", *extra)
        assert e.value.code == 2
        assert flag in capsys.readouterr().err


def test_a_long_recording_splits_into_segments_and_the_identity_holds(tmp_path):
    from test_audio import container, speechlike

    rate = 22050
    parts = [speechlike(seconds=4.0, seed=s) for s in range(5)]
    gap = np.zeros(int(0.5 * rate), np.float32)
    long = np.concatenate([p for part in parts for p in (part, gap)])
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "long.wav").write_bytes(container(long, rate=rate))
    stats = run_audio([tmp_path / "in" / "*.wav"], tmp_path / "out", "--max_seconds", "6")
    records = read_shards(tmp_path / "out")
    assert stats["records_out"] == len(records) >= 4
    assert sorted(r["audio/id"][0].decode().split("#")[1] for r in records) == [
        str(k) for k in range(1, len(records) + 1)]
    assert stats["records_in"] == 1 + (len(records) - 1) and stats["accounting"]["holds"]
    assert stats["audio"]["split_files"] == 1
