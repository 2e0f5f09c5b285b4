"""finenet/dag.py and finenet/layout.py: dvc.yaml is what the generator writes, every declared key
exists and the ones the issue named are (not) declared, code deps are the import closure, the
artifact paths have one home, and ``finenet params`` writes the resolved parameters."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from finenet import dag
from finenet.layout import DEFAULT, Layout
from finenet.params import load_params

ROOT = Path(__file__).resolve().parents[1]


# --- dvc.yaml is generated ------------------------------------------------------------------------

def test_committed_dvc_yaml_is_the_generated_one():
    text = (ROOT / "dvc.yaml").read_text()
    assert text.startswith("# GENERATED from finenet/dag.py") and "python -m finenet.dag --write" in text.split("\n", 3)[1]
    assert text == dag.dvc_yaml(), "dvc.yaml is stale or hand-edited: run `python -m finenet.dag --write`"
    assert dag.main(["--check"]) == 0


def test_generated_dvc_yaml_keeps_the_stages_commands_and_outputs():
    stages = yaml.safe_load(dag.dvc_yaml())["stages"]
    assert list(stages) == ["params", "sample", "blur", "heatmaps", "pack", "train_predeblur",
                            "train_enhance", "train_interp", "train_combine", "train_baseline",
                            "evaluate", "report"]
    assert stages["params"]["cmd"] == "finenet params" and stages["params"]["outs"] == ["build/params.yaml"]
    assert stages["train_enhance"]["foreach"] == "${variants.enhance}"
    assert stages["train_baseline"]["foreach"] == "${baselines}"
    assert stages["train_baseline"]["do"]["cmd"] == "finenet train ${key}"
    do = stages["train_combine"]["do"]
    assert do["cmd"] == "finenet train combine --variant ${key}"
    assert do["outs"] == ["models/combine/${key}/model.pt"]
    assert do["metrics"] == [{"reports/train/combine_${key}.json": {"cache": False}}]
    assert do["plots"] == [{"reports/train/combine_${key}.csv": {"cache": False, "x": "step", "y": "loss"}},
                           {"reports/train/combine_${key}_val.csv": {"cache": False, "x": "step", "y": "val_psnr"}}]
    # the report draws every network's validation curve
    assert "reports/train/baselines_edvr_val.csv" in stages["report"]["deps"]
    assert {"models/enhance/full/model.pt", "models/interp/full/model.pt"} <= set(do["deps"])
    # evaluate reads every trained model: one per variant and baseline of params.yaml
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    models = {d for d in stages["evaluate"]["deps"] if d.startswith("models/")}
    assert len(models) == 1 + sum(map(len, raw["variants"].values())) + len(raw["baselines"])
    assert "models/baselines/edvr/model.pt" in models
    # no stage tracks params.yaml itself any more: only the resolved file's keys
    for s in stages.values():
        for entry in (s.get("do", s).get("params") or []):
            assert isinstance(entry, dict) and list(entry) == ["build/params.yaml"]


def test_a_profile_renaming_variants_is_refused(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["profiles"]["ci"]["variants"] = {"enhance": {"tiny": {}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(SystemExit, match="profiles.ci changes the names"):
        dag.foreach_names(tmp_path / "params.yaml")


# --- the declared keys ----------------------------------------------------------------------------

def expanded(stage: dag.Stage, params: dict) -> list[str]:
    """The stage's keys with ``{key}`` set to each of its items."""
    if stage.foreach is None:
        return stage.keys()
    items = dag.lookup(params, stage.foreach.strip("${}"))
    return [k.replace(dag.KEY, item) for item in items for k in stage.keys()]


@pytest.mark.parametrize("profile", ["embedded", "ci", "paper"])
def test_every_declared_key_exists_in_the_resolved_parameters(profile):
    params = load_params(ROOT / "params.yaml", profile)
    for stage in dag.stages():
        for key in expanded(stage, params):
            dag.lookup(params, key)            # a KeyError names the stage's missing key


def test_the_issue_s_examples():
    keys = {s.name: set(s.keys()) for s in dag.stages()}
    every = set().union(*keys.values())
    assert not any(k == "profiles" or k.startswith("profiles.") or k == "profile" for k in every)
    finenet_nets = ("train_predeblur", "train_enhance", "train_interp", "train_combine")
    for name in finenet_nets:
        assert not any(k.startswith("baselines") for k in keys[name]), name
        assert "train.iterations.baseline" not in keys[name] and "train" not in keys[name]
    assert "train.iterations.predeblur" not in keys["train_baseline"]
    assert "train.iterations.baseline" in keys["train_baseline"]
    assert {"train.iterations.predeblur", "train.lr.predeblur", "model.feat"} <= keys["train_predeblur"]
    for name, k in keys.items():       # read, but no effect on what a stage writes
        assert not k & {"train.workers", "train.checkpoint_every"}, name
    assert "train.keep_weight" in keys["train_combine"] and "train.keep_weight" not in keys["train_enhance"]
    assert keys["report"] == {"report", "variants", "baselines"} and "blur" in keys["blur"] and "blur" not in keys["sample"]


def test_plan_keys_follow_the_embedded_sets():
    from finenet.data.embedded import SET_OF_ROLE

    assert tuple(SET_OF_ROLE) == dag.EMBEDDED_SETS


def test_snakemake_params_resolve_templates_and_clips():
    params = load_params(ROOT / "params.yaml")

    class W:
        variant, name, clip = "no_foc", "edvr", "emb_carphone"

    enhance = dag.snakemake_params("train_enhance", params)(W)
    assert enhance["variants.enhance.no_foc"] == params["variants"]["enhance"]["no_foc"]
    assert enhance["train.iterations.enhance"] == params["train"]["iterations"]["enhance"]
    assert dag.snakemake_params("train_baseline", params)(W)["baselines.edvr"] == params["baselines"]["edvr"]
    blur = dag.snakemake_params("blur", params, {"emb_carphone": {"clip_id": "emb_carphone"}})(W)
    assert blur == {"seed": params["seed"], "blur": params["blur"], "clip": {"clip_id": "emb_carphone"}}
    assert dag.snakemake_params("pack", params)["data.embedded.train"] == params["data"]["embedded"]["train"]


# --- code deps ------------------------------------------------------------------------------------

def test_code_deps_are_the_import_closure():
    train = dag.code_deps("finenet.stages.train")
    # the loader's heatmap module (the hand-written list missed it), the models, the entry point
    assert {"finenet/stages/train.py", "finenet/data/windows.py", "finenet/face/heatmap.py", "finenet/cli.py",
            "finenet/models/baselines/edvr.py", "finenet/layout.py", "finenet/__init__.py"} <= set(train)
    assert not any(p.startswith("finenet/deblur/") for p in train) and "finenet/tiers/check.py" not in train   # cli's dispatch
    assert "finenet/ops/degrade.py" in dag.code_deps("finenet.stages.blur")
    assert "finenet/ops/degrade.py" not in dag.code_deps("finenet.stages.heatmaps")
    for stage in dag.stages():
        for f in dag.code_deps(stage.module):
            assert (ROOT / f).is_file()


def test_imports_resolves_relative_lazy_and_skips_main(tmp_path):
    pkg = tmp_path / "finenet"
    (pkg / "sub").mkdir(parents=True)
    for f in ("__init__.py", "a.py", "b.py", "c.py", "d.py", "sub/__init__.py", "sub/x.py"):
        (pkg / f).write_text("")
    (pkg / "a.py").write_text("from .b import thing\nfrom . import c\nimport finenet.sub.x as x\n"
                              "def f():\n    from .sub import x\n    from .. import nope\n"
                              "if __name__ == '__main__':\n    from .d import main\n")
    (pkg / "sub" / "x.py").write_text("from ..b import y\nimport numpy\n")
    assert dag.imports("finenet.a", root=tmp_path) == {"finenet.b", "finenet", "finenet.c",
                                                        "finenet.sub", "finenet.sub.x"}
    assert dag.imports("finenet.sub.x", root=tmp_path) == {"finenet.b"}
    assert dag.closure({"finenet.sub.x"}, tmp_path) == {"finenet.sub.x", "finenet.sub", "finenet",
                                                        "finenet.b"}


def test_frozen_inputs_are_the_deps_train_py_loads():
    from finenet.params import load_params
    from finenet.stages.train import frozen_inputs, warm_start

    params = load_params(ROOT / "params.yaml")
    for stage in dag.stages():
        if stage.module == "finenet.stages.train":
            models = {d for d in stage.deps if d.startswith("models/")}
            if stage.name == "train_baseline":     # one template: every baseline's starting points
                loads = {p.as_posix() for b in params["baselines"]
                         for p in [*frozen_inputs(b), warm_start(params, b)] if p is not None}
                assert loads and models == loads
                continue
            net = stage.name.removeprefix("train_")
            assert models == {p.as_posix() for p in frozen_inputs(net)}, net


# --- layout ---------------------------------------------------------------------------------------

def test_layout_is_the_one_home_of_the_paths():
    from finenet.stages import evaluate, pack, report, train
    from finenet.data import store

    assert (store.CLIPS, store.BLURRED, store.SHARDS, store.SETS_DIR) == (
        DEFAULT.clips, DEFAULT.blurred, DEFAULT.shards, DEFAULT.sets)
    assert store.clip_path("c") == DEFAULT.clip_file("c") and store.shard_path("c") == DEFAULT.shard_file("c")
    assert store.blurred_path("c") == DEFAULT.blurred_file("c")
    assert (pack.SUMMARY, pack.PREVIEW) == (DEFAULT.data_summary, DEFAULT.data_preview)
    assert (evaluate.EVAL, evaluate.METRICS, evaluate.SAMPLES) == (DEFAULT.eval, DEFAULT.metrics,
                                                                   DEFAULT.eval_samples)
    assert (report.FRAMES, report.NOREF, report.TABLES, report.QUALITATIVE, report.PIES_JSON,
            report.SEVERITY_CSV, report.INDEX) == (DEFAULT.eval_frames, DEFAULT.eval_noref, DEFAULT.tables,
                                                   DEFAULT.qualitative, DEFAULT.pies, DEFAULT.severity,
                                                   DEFAULT.report_index)
    assert train.model_path("enhance", "full") == Path("models/enhance/full/model.pt")
    assert train.run_name("edvr", None) == "baselines/edvr" and train.CHECKPOINTS == DEFAULT.checkpoints


def test_a_second_pipeline_is_one_argument_away():
    bench = Layout("runs/bench/seed3")
    assert bench.model_path("enhance", "full") == Path("runs/bench/seed3/models/enhance/full/model.pt")
    assert bench.model_path("edvr") == Path("runs/bench/seed3/models/baselines/edvr/model.pt")
    assert bench.train_summary("combine", "late") == Path("runs/bench/seed3/reports/train/combine_late.json")
    assert bench.checkpoint_dir("predeblur") == Path("runs/bench/seed3/checkpoints/predeblur")
    assert bench.build_params == Path("runs/bench/seed3/build/params.yaml")
    assert DEFAULT.model_path("interp", "{variant}").as_posix() == "models/interp/{variant}/model.pt"


# --- finenet params -------------------------------------------------------------------------------

def test_finenet_params_writes_the_resolved_parameters(tmp_path, monkeypatch):
    from finenet.cli import main

    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    assert main(["params", "--profile", "ci"]) == 0
    text = (tmp_path / "build" / "params.yaml").read_text()
    assert text.startswith("# Written by `finenet params`")
    written = yaml.safe_load(text)
    expected = {k: v for k, v in load_params(ROOT / "params.yaml", "ci").items() if k != "profiles"}
    assert written == expected and written["profile"] == "ci" and "profiles" not in written
    assert written["train"]["seed"] == 7                          # profiles.ci merged
    assert not list((tmp_path / "build").glob(".*tmp*"))


@pytest.mark.parametrize("edit, message", [
    (lambda raw: raw["train"].update(iteratons=3), "unknown key 'train.iteratons'"),
    (lambda raw: raw["train"]["lr"].update(combine="fast"), "train.lr.combine: 'fast' is not of type 'number'"),
    # net_config once dropped the landmarks silently when FOC was off
    (lambda raw: raw["variants"]["enhance"]["no_foc"].update(landmarks=True),
     "variants.enhance.no_foc: landmarks: true needs foc: true (the heatmaps enter through FOC, paper "
     "Eq. 7); set landmarks: false with foc: false"),
    # a profile's rate for a baseline the baselines section no longer has once added a half-built one
    (lambda raw: (raw.update(profile="bench"), raw["baselines"].pop("ren")),
     "profiles.bench.baselines.ren: not a baseline of the baselines section (dain, deblurgan, edvr, "
     "srn_deblur, superslomo, umsn)"),
])
def test_finenet_params_refuses_a_typo_in_one_line(tmp_path, monkeypatch, capsys, edit, message):
    from finenet.cli import main

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    edit(raw)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    assert main(["params"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"finenet: params.yaml: {message}"]
    assert not (tmp_path / "build").exists()


def test_the_bench_pipeline_is_generated_and_tracks_what_its_runs_read():
    text = (ROOT / "bench" / "dvc.yaml").read_text()
    assert text == dag.bench_dvc_yaml(), "bench/dvc.yaml is stale: run `python -m finenet.dag --write`"
    stages = yaml.safe_load(text)["stages"]
    assert stages["params"]["cmd"] == "finenet params --profile bench --out build/params-bench.yaml"
    keys = stages["bench"]["params"][0]["build/params-bench.yaml"]
    assert {"train.iterations.enhance", "train.validation", "baselines", "variants", "report", "bench"} <= set(keys)
    assert not [k for k in keys if k.split(".")[0] in ("data", "blur", "seed") or k == "train.seed"]
    assert {"data/sets", "data/h5", "Snakefile", "finenet/tiers/bench.py", "finenet/stages/train.py"} <= set(stages["bench"]["deps"])
    assert stages["bench"]["outs"] == [{"reports/bench": {"persist": True, "cache": False}}]
    # its resolved file is not the default pipeline's: editing profiles.bench re-runs no default stage
    assert dag.BENCH_BUILD != dag.BUILD
