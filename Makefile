# make demo / make test / make bench: each builds .venv first (reused while
# setup.py is unchanged), installs the package from setup.py, then runs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-test
BENCH_STAMP := $(VENV)/.installed-bench
DEMO_OUT ?= demo_out

.PHONY: venv demo test bench clean

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

test: $(STAMP)
	$(PY) -m pytest -q tests

bench: $(BENCH_STAMP)
	$(PY) -m benchmarks.run

clean:
	rm -rf $(DEMO_OUT) .pytest_cache build *.egg-info
