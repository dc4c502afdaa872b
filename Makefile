# make demo / make test / make bench: each builds .venv first (reused while
# setup.py is unchanged), installs the package from setup.py, then runs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-test
BENCH_STAMP := $(VENV)/.installed-bench
DEMO_OUT ?= demo_out

.PHONY: venv demo test bench clean flink-jar gpu-wheels calibrate-languages

$(STAMP): setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	@touch $@

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m beam_pipelines.demo --output_dir $(DEMO_OUT)
	rm -rf $(DEMO_OUT)/model
	$(PY) -m trainer.train --data_dir $(DEMO_OUT) --model_dir $(DEMO_OUT)/model \
		--steps 40 --batch_size 16 --seq_len 128 --layers 2 --width 128 --heads 4 \
		--cpu_replicas 2 --checkpoint_every 20 --verbose 2
	$(PY) -m beam_pipelines.images --input 'data/sample/images/train/*/*' \
		--output_dir $(DEMO_OUT)/images --image_size 64 --max_dead_letter_fraction 0.2
	rm -rf $(DEMO_OUT)/images/model
	$(PY) -m trainer.train_images --data_dir $(DEMO_OUT)/images --model_dir $(DEMO_OUT)/images/model \
		--steps 30 --batch_size 8 --image_size 64 --cpu_replicas 2 --checkpoint_every 15 --verbose 2
	$(PY) -m beam_pipelines.multimodal --input 'data/sample/multimodal/coco/captions.json' \
		--input 'data/sample/multimodal/laion/pairs.tsv' --input 'data/sample/multimodal/webdataset/*.tar' \
		--output_dir $(DEMO_OUT)/pairs --image_size 64 --caption_vocab_size 400 --max_dead_letter_fraction 0.3
	$(PY) -m beam_pipelines.audio --input 'data/sample/audio/librispeech/*/*/*.trans.txt' \
		--input 'data/sample/audio/nemo/manifest.jsonl' --input 'data/sample/audio/commonvoice/validated.tsv' \
		--input 'data/sample/audio/webdataset/*.tar' --input 'data/sample/audio/duplicates/*' \
		--input 'data/sample/audio/video/*' --input 'data/sample/audio/broken/*' \
		--output_dir $(DEMO_OUT)/audio --caption_vocab_size 300 --max_dead_letter_fraction 0.5
	rm -rf $(DEMO_OUT)/audio/model
	$(PY) -m trainer.train_audio --data_dir $(DEMO_OUT)/audio --model_dir $(DEMO_OUT)/audio/model \
		--steps 20 --batch_size 4 --width 64 --cpu_replicas 2 --checkpoint_every 10 --verbose 2

# The suite runs the text pipeline on an embedded Flink too: the job server is
# fetched first (Maven; java and mvn on PATH), and its test fails, not skips, without it.
test: $(STAMP)
	$(PY) -m beam_pipelines.flink --fetch
	BEAMTRAIN_REQUIRE_FLINK=1 $(PY) -m pytest -q tests

# Wheels the GPU machine lacks for benchmarks.gpu_lm (it has JAX, not Keras): into .whl/
# (git-ignored), for Python 3.12 x86-64; see the benchmark's docstring for the command there.
gpu-wheels: $(STAMP)
	grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
		--implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
		--platform manylinux2014_x86_64 -d .whl keras==3.15.1 namex==0.1.0 optree==0.19.0

# The Beam Flink job server for --runner FlinkRunner, fetched with mvn into
# ~/.cache/beamtrain/flink/ (outside git); prints the jar's path.
flink-jar: $(STAMP)
	$(PY) -m beam_pipelines.flink --fetch

# The held-out multilingual measurement reads the Debian Reference in nine
# languages and the Debian Administrator's Handbook (not in the repository):
# installed with apt-get where it can be.
DEBIAN_REFERENCE := $(foreach l,en de fr es it pt id ja zh-cn,debian-reference-$(l)) debian-handbook

# Measure the filter's per-language scales again on the Debian installation
# guide (transforms/text/language_scales.json; see transforms/text/calibrate.py).
calibrate-languages: $(STAMP)
	@if [ ! -d /usr/share/doc/installation-guide-amd64/en ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends installation-guide-amd64 >/dev/null; fi
	$(PY) -m transforms.text.calibrate

bench: $(BENCH_STAMP)
	@if { [ ! -d /usr/share/debian-reference ] || [ ! -d /usr/share/doc/debian-handbook/html ]; } \
		&& command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(DEBIAN_REFERENCE) >/dev/null \
		|| echo "# debian-reference not installed: the languages benchmark will be skipped"; fi
	@if ! command -v ffmpeg >/dev/null && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ffmpeg >/dev/null \
		|| echo "# ffmpeg not installed: the audio benchmark's baseline will be skipped"; fi
	$(PY) -m benchmarks.run

clean:
	rm -rf $(DEMO_OUT) .pytest_cache build *.egg-info
