"""DVC's ``params`` stage, in a scratch DVC project with the generated stage structure: a typo in
params.yaml stops ``dvc repro`` at ``params``, before any later stage removes its outputs, and an
edit re-runs only the stages that read the edited key.

The project holds a copy of the package (so ``finenet params`` is the real command and the code
deps hash as in the repository), params.yaml, the schema and the stages of ``finenet/dag.py`` up
to training (data stages, pre-deblur, the enhancement variants, the baselines) with their deps,
params and outs as generated (two baselines); only the commands of the stages after ``params`` are replaced by a
stand-in that writes their outputs (no data is made, nothing is trained).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from finenet import dag

ROOT = Path(__file__).resolve().parents[1]
DVC = str(Path(sys.executable).parent / "dvc")
BASELINES = ("edvr", "superslomo")
KEEP = ("params", "sample", "blur", "heatmaps", "pack", "train_predeblur", "train_enhance", "train_baseline")

FAKE = '''\
import sys, uuid
from pathlib import Path
for out in sys.argv[1:]:
    path = Path(out)
    if not path.suffix:                      # a folder output
        path.mkdir(parents=True, exist_ok=True)
        path = path / "part"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{out} {uuid.uuid4()}\\n")
'''


def dvc(project: Path, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    return subprocess.run([DVC, *args], cwd=project, capture_output=True, text=True, env=env, timeout=600)


def ran(done: subprocess.CompletedProcess) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", done.stdout + done.stderr))


def outputs(project: Path) -> dict[str, str]:
    return {p.relative_to(project).as_posix(): p.read_text()
            for top in ("models", "data", "reports") for p in sorted((project / top).rglob("*"))
            if p.is_file() and "external" not in p.parts}


def write_params(project: Path, edit) -> None:
    """The repository's params.yaml, two baselines kept (fewer stages to check), then ``edit``."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["baselines"] = {name: raw["baselines"][name] for name in BASELINES}
    edit(raw)
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    project = tmp_path_factory.mktemp("dvc_project")
    shutil.copytree(ROOT / "finenet", project / "finenet", ignore=shutil.ignore_patterns("__pycache__"))
    assert (project / dag.SCHEMA).is_file()      # the schema is package data: it came with finenet/
    write_params(project, lambda raw: None)
    (project / "fake.py").write_text(FAKE)
    (project / "data" / "external").mkdir(parents=True)
    (project / "data" / "external" / "archive.tgz").write_text("sources\n")

    stages = yaml.safe_load(dag.dvc_yaml())["stages"]
    kept = {}
    for name in KEEP:
        stage = stages[name]
        body = stage.get("do", stage)
        if name == "params":                 # the real command, from the copied package
            body["cmd"] = f"{sys.executable} -m finenet params"
        else:
            outs = [o if isinstance(o, str) else next(iter(o)) for kind in ("outs", "metrics", "plots")
                    for o in body.get(kind, [])]
            body["cmd"] = f"{sys.executable} fake.py " + " ".join(outs)
        kept[name] = stage
    (project / "dvc.yaml").write_text(yaml.safe_dump({"stages": kept}, sort_keys=False))
    assert dvc(project, "init", "--no-scm", "-q").returncode == 0
    done = dvc(project, "repro")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (project / "build" / "params.yaml").is_file()
    assert (project / "models" / "predeblur" / "model.pt").is_file()
    return project


@pytest.mark.parametrize("edit, message", [
    (lambda raw: raw["train"]["iterations"].update(predeblur=100, baseline=7, enhanse=3),
     "unknown key 'train.iterations.enhanse'"),
    (lambda raw: raw["model"].update(feat="sixteen"), "model.feat: 'sixteen' is not of type 'integer'"),
], ids=["unknown-key", "wrong-type"])
def test_a_typo_stops_repro_before_any_output_is_removed(project, edit, message):
    before = outputs(project)
    assert "models/predeblur/model.pt" in before and "models/baselines/edvr/model.pt" in before
    write_params(project, edit)
    done = dvc(project, "repro")
    assert done.returncode != 0
    assert f"finenet: params.yaml: {message}" in done.stdout + done.stderr
    assert ran(done) == {"params"}
    assert outputs(project) == before            # every model, data folder and report as it was


def test_an_edit_re_runs_only_the_stages_that_read_it(project):
    write_params(project, lambda raw: None)
    done = dvc(project, "repro")
    assert done.returncode == 0 and ran(done) <= {"params"}, done.stdout + done.stderr   # up to date

    def edit(raw):
        raw["profiles"]["paper"]["train"]["lr"]["combine"] = 0.5         # not the profile in use
        raw["profiles"]["paper"]["model"]["feat"] = 64
        raw["train"]["workers"] = 3                            # cannot change a result
        raw["train"]["checkpoint_every"] = 7
        raw["train"]["iterations"]["baseline"] = 11            # every baseline, no FineNet network
        raw["variants"]["enhance"]["no_landmarks"]["foc"] = False  # that one variant

    write_params(project, edit)
    done = dvc(project, "repro")
    assert done.returncode == 0, done.stdout + done.stderr
    baselines = {f"train_baseline@{b}" for b in BASELINES}
    assert ran(done) == {"params", "train_enhance@no_landmarks"} | baselines


def test_going_back_to_trained_parameters_restores_from_the_run_cache(project):
    """DVC's run cache: the stand-in writes a random token, so a restored output (not re-made)
    has the token of the run with those parameters."""
    write_params(project, lambda raw: None)
    assert dvc(project, "repro").returncode == 0
    first = outputs(project)
    write_params(project, lambda raw: raw["train"]["iterations"].update(predeblur=123))
    done = dvc(project, "repro")
    assert done.returncode == 0 and "train_predeblur" in ran(done)
    assert outputs(project)["models/predeblur/model.pt"] != first["models/predeblur/model.pt"]
    write_params(project, lambda raw: None)                      # back: restored, not retrained
    done = dvc(project, "repro")
    assert done.returncode == 0 and "train_predeblur" not in ran(done), done.stdout
    now = outputs(project)
    for path in ("models/predeblur/model.pt", "reports/train/predeblur.json"):
        assert now[path] == first[path], path


@pytest.mark.parametrize("command", ["sample", "blur", "heatmaps", "pack", "evaluate", "report", "train",
                                     "params", "plan", "deblur", "check"])
def test_every_commands_help_runs_in_a_fresh_process(command):
    """``finenet <command> --help`` for each command (the stages' help reads the docstrings of
    modules and packages without importing them); a data stage's help imports no torch."""
    probe = ("import sys; from finenet.cli import main\n"
             "try:\n    main([sys.argv[1], '--help'])\nexcept SystemExit as exc:\n    code = exc.code\n"
             "print('torch' in sys.modules, code, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", probe, command], capture_output=True, text=True, timeout=300)
    torch_loaded, code = done.stderr.strip().splitlines()[-1].split()
    assert code in ("0", "None") and f"finenet {command}" in done.stdout, done.stderr[-2000:]
    if command in ("sample", "blur", "heatmaps", "params", "plan"):
        assert torch_loaded == "False"
