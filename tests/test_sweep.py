"""The learning-rate sweep (finenet/tiers/sweep.py, finenet/tiers/runs.py): working directories with training
overrides, the pick on validation, the schema, and two real DVC experiments on a tiny sample read
back through `dvc exp show --json`."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from finenet.tiers import runs, sweep
from finenet.errors import FineNetError
from finenet.models.config import learning_rate
from finenet.params import ROOT, load_params


@pytest.fixture
def raw():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_a_run_directory_merges_the_training_overrides_and_links_the_data(raw, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    bench = load_params(tmp_path / "params.yaml", "bench")
    overrides = sweep.swept(bench, 5e-4, 7)
    work = runs.prepare(sweep.work_dir(5e-4), "bench", overrides, tmp_path / "params.yaml")
    assert work.as_posix() == "runs/sweep/lr0.0005"
    params = load_params(work / "params.yaml")
    assert params["profile"] == "bench" and params["train"]["seed"] == 7
    # every network at the swept rate, whatever rate the profile gives it (the bench profile's
    # combiner and Ren et al. train at their own picks)
    assert bench["train"]["lr"]["combine"] != 5e-4 and bench["baselines"]["ren"]["lr"] != 5e-4
    assert {learning_rate(params, net) for net, _ in sweep.swept_runs(params)} == {5e-4}
    assert params["train"]["iterations"] == load_params(tmp_path / "params.yaml", "bench")["train"]["iterations"]
    assert (work / "data").resolve() == (tmp_path / "data").resolve()
    before = (work / "params.yaml").stat().st_mtime_ns
    runs.prepare(work, "bench", overrides, tmp_path / "params.yaml")
    assert (work / "params.yaml").stat().st_mtime_ns == before               # unchanged: not rewritten
    other = tmp_path / "elsewhere"
    (other / "data").mkdir(parents=True)
    with pytest.raises(FineNetError, match="not the link to the default pipeline's data"):
        runs.prepare(other, "bench", {}, tmp_path / "params.yaml")


def test_the_sweep_trains_each_methods_network_once(raw):
    params = load_params(ROOT / "params.yaml", "bench")
    names = [n for n, _ in sweep.swept_runs(params)]
    assert names[:4] == ["predeblur", "enhance", "interp", "combine"]
    assert set(names[4:]) == set(params["baselines"]) and len(names) == len(set(names))
    assert len(params["sweep"]["values"]) >= 2
    assert {learning_rate(params, net) for net, _ in sweep.swept_runs(params)} <= set(params["sweep"]["values"])


def test_the_schema_wants_at_least_two_rates(raw, tmp_path):
    bad = copy.deepcopy(raw)
    bad["sweep"]["values"] = [1e-3]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(FineNetError, match="sweep"):
        load_params(tmp_path / "params.yaml")


def result(lr, scores, name):
    return {"lr": lr, "seed": 1, "profile": "bench", "name": name,
            "runs": {net: {"val_psnr_best": v, "best_step": 300, "val_psnr_final": v - 0.01,
                           "iterations": 600, "curve": {"step": [300], "val_psnr": [v]}}
                     for net, v in scores.items()}}


def test_the_walk_finds_every_experiment_and_the_pick_is_the_best_on_val():
    metrics = lambda r: {"data": {"metrics": {"reports/sweep/val.json": {"data": {  # noqa: E731
        k: v for k, v in r.items() if k != "name"}}}}}
    a = result(5e-4, {"enhance/full": 31.0, "baselines/edvr": 30.0}, "lr-0.0005")
    b = result(2e-3, {"enhance/full": 31.4, "baselines/edvr": 29.5}, "lr-0.002")
    show = [{"rev": "workspace", "name": None, **metrics(b)},          # DVC 3's shape: the workspace,
            {"rev": "abc123", "name": "main", "data": {"metrics": {}},  # then each baseline commit
             "experiments": [{"revs": [{"rev": "e1", "name": "lr-0.0005", **metrics(a)}]},
                             {"revs": [{"rev": "e2", "name": "lr-0.002", **metrics(b)}]}]}]
    found = sweep.experiments_from_show(show)
    assert sorted(r["name"] for r in found) == ["lr-0.0005", "lr-0.002", "workspace"]
    results = sweep.by_lr(found)
    assert list(results) == [5e-4, 2e-3] and results[2e-3]["name"] == "lr-0.002"
    table = sweep.pick(results)
    assert table["enhance/full"]["best_lr"] == 2e-3 and table["enhance/full"]["margin_db"] == pytest.approx(0.4)
    assert table["baselines/edvr"]["best_lr"] == 5e-4 and table["baselines/edvr"]["margin_db"] == pytest.approx(0.5)
    with pytest.raises(FineNetError, match="at least two learning rates"):
        sweep.pick({2e-3: b})


def test_two_dvc_experiments_end_to_end(tmp_path_factory):
    """The real thing on a tiny sample: `dvc exp run -S params.yaml:sweep.lr=V` twice (Snakemake
    trains each network in runs/sweep/lr<V>), then the summary reads both experiments back from
    `dvc exp show --json`: one row per network, its best rate the one with the higher val PSNR."""
    from conftest import embedded_workdir, set_baselines
    from test_train import tiny

    def edit(raw):
        tiny(raw, iterations=4)
        raw["variants"] = {"enhance": {"full": {}}, "interp": {"full": {}}, "combine": {"late": {"fusion": "late"}}}
        set_baselines(raw, {"srn_deblur": {"widths": [4, 8, 8], "blocks": 1, "scales": 2}})
        raw["bench"] = {"seeds": [1], "cores": 2}
        raw["sweep"] = {"lr": 1e-3, "values": [1e-3, 4e-3], "seed": 1}
        raw["profiles"]["bench"]["train"].update(
            iterations={k: 4 for k in ("predeblur", "enhance", "interp", "combine", "baseline")},
            judge_steps=2, validation={"every": 2, "frame_stride": 2})

    root = embedded_workdir(tmp_path_factory.mktemp("sweep_e2e"), edit)
    (root / "sweep").mkdir()
    (root / "sweep/dvc.yaml").write_text(yaml.safe_dump({"stages": {"sweep": {
        "cmd": f"{sys.executable} -m finenet.tiers.sweep", "wdir": "..", "deps": ["data/sets", "data/h5"],
        "params": [{"params.yaml": ["sweep"]}], "metrics": [{"reports/sweep/val.json": {"cache": False}}]}}}))
    (root / ".gitignore").write_text("/data/\n/runs/\n/build/\n/logs/\n.snakemake/\n")
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    dvc = shutil.which("dvc", path=env["PATH"])

    def sh(*cmd):
        out = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=env, timeout=900)
        assert out.returncode == 0, f"{cmd}: {out.stdout[-2000:]}\n{out.stderr[-3000:]}"
        return out

    sh("git", "init", "-q")
    sh(dvc, "init", "-q")
    sh("git", "add", "-A")
    sh("git", "commit", "-qm", "tiny sweep")
    for v in ("0.001", "0.004"):
        sh(dvc, "exp", "run", "sweep/dvc.yaml", "-S", f"params.yaml:sweep.lr={v}", "-n", f"lr-{v}")
        assert (root / f"runs/sweep/lr{v}/reports/train/combine_late_val.csv").is_file()
    sh(sys.executable, "-m", "finenet.tiers.sweep", "--summary")
    summary = json.loads((root / "reports/sweep/summary.json").read_text())
    assert summary["learning_rates"] == [0.001, 0.004]
    assert summary["experiments"] == {"0.001": "lr-0.001", "0.004": "lr-0.004"}
    nets = summary["networks"]
    assert set(nets) == {"predeblur", "enhance/full", "interp/full", "combine/late", "baselines/srn_deblur"}
    for row in nets.values():
        scores = row["val_psnr"]
        assert row["best_lr"] == float(max(scores, key=scores.get))
        assert scores["0.001"] != scores["0.004"]                       # the rate changed the training
    assert (root / "reports/sweep/summary.png").stat().st_size > 1000
    assert "| `combine/late` |" in (root / "reports/sweep/summary.md").read_text()
