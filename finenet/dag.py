"""The pipeline described once: every stage's command, the module that runs it, its data inputs and
outputs (paths from ``finenet.layout``) and the resolved parameters it reads. ``dvc.yaml`` is
generated from this file; the Snakemake rules take their ``params:`` from it; the tests check both.

    python -m finenet.dag --write    # regenerate dvc.yaml: after editing this file, a stage's
                                     # imports, or the variant / baseline names in params.yaml
    python -m finenet.dag --check    # exit 1 when the committed dvc.yaml is not what it generates

**Parameters.** The first DVC stage, ``params``, runs ``finenet params``: params.yaml loaded and
validated as every stage loads it (profile merged) and written to ``build/params.yaml``. Every other
stage tracks only the keys of that file it reads (``Stage.params``, plus the clip plan's keys
``PLAN`` for the stages that select clips), so an edit re-runs what reads it and nothing else
(``profiles.paper`` is no stage's input: only its merged values are, when it is the profile), and a
typo fails in ``params`` before any later stage removes its outputs to re-run. Keys a stage reads
but that cannot change what it writes are left out (``NO_EFFECT``). ``{key}`` in a key stands for
the ``foreach`` key (DVC ``${key}``) or the rule's wildcard (Snakemake): each ablation variant and
each baseline tracks only its own entry. Snakemake runs sample/blur/heatmaps per clip: there a
job's plan entry (its ``ClipSpec``) stands for ``PLAN``, so adding a clip re-runs only that clip.

**Code.** A stage's code deps are computed, not listed: the package modules the stage's module
imports, transitively (``ast`` over ``finenet/``, imports at any depth of a module, except in its
``if __name__ == "__main__":`` block), with their packages' ``__init__.py``, plus the entry point
``finenet/cli.py`` and its module-level imports (its per-command imports are the dispatch to the
stage module, already counted).
"""

from __future__ import annotations

import argparse
import ast
import copy
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from .layout import DEFAULT as L
from .layout import training_runs
from .tiers.release import BENCH_MANIFEST, RELEASE
from .tiers.release import inputs as release_inputs

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "finenet"
DVC_YAML = "dvc.yaml"
PARAMS_YAML = "params.yaml"
SCHEMA = "finenet/schemas/params.schema.yaml"
BUILD = L.build_params.as_posix()          # build/params.yaml
ENTRY = "finenet.cli"                      # `finenet <stage>`: the console script's module
KEY = "{key}"                              # the foreach key / the rule's wildcard

# --- the resolved parameters each stage reads --------------------------------------------------

EMBEDDED_SETS = ("train", "val", "test", "realblur")   # finenet.data.embedded.SET_OF_ROLE (a test checks)

# plan_clips: which clips exist and what each is (every data stage selects its clips through it)
PLAN = ("seed", "data.embedded.enabled", *(f"data.embedded.{s}" for s in EMBEDDED_SETS),
        "data.embedded.frames_per_still", "data.embedded.clips_per_still",
        "data.embedded.frames_per_segment", "data.embedded.video_segments",
        "data.voxceleb", "data.vw300", "data.youtube")      # the adapters' sections: all plan keys

# the training loop (finenet.stages.train.run), every network
TRAIN = ("train.seed", "train.device", "train.threads", "train.batch_size", "train.betas",
         "train.min_lr_ratio", "train.grad_clip", "train.sharp_centres", "train.validation",
         "loader.num_frames", "loader.patch_size", "loader.flip")
FRONTEND = ("model.feat", "model.input_stride", "model.levels", "model.extract_blocks")
BRANCH = ("model.feat", "model.input_stride", "model.groups", "model.levels", "model.max_offset",
          "model.foc", "model.landmarks", "model.heatmap_ch", "model.heatmap_level", "model.recon_blocks")
COMBINE = ("model.fusion", "model.combine_feat", "model.combine_blocks", "model.combine_predeblur", "model.blend_gain",
           "model.keep_gain", "train.keep_weight", "train.keep_cost", "train.judge_steps",   # late fusion
           "model.feat", "model.input_stride")   # early fusion (and combine_feat, combine_blocks)
# one foreach template serves every baseline (DVC cannot give each item its own key list): the union
# of what they read; EDVR is built with FineNet's widths, depth, stride and offsets (net_config)
BASELINE = ("baselines.{key}", "model.feat", "model.groups", "model.levels", "model.extract_blocks",
            "model.recon_blocks", "model.input_stride", "model.max_offset")

# read by a stage's code, but they cannot change what it writes: not tracked
NO_EFFECT = {
    "train.workers": "DataLoader processes: each step's batch is a function of (seed, step) alone",
    "train.checkpoint_every": "how often the resume state is saved",
    "evaluate.batch_size": "training's validation batches (per-frame PSNR, batch-independent)",
    "train.keep_weight": "passed to every network's Trainee, used by late fusion's loss only",
    "train.keep_cost": "read by every network's trainer, used by late fusion's loss only",
}


# --- the stages --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Out:
    path: str
    options: dict = field(default_factory=dict)

    def dvc(self):
        path = dvc_template(self.path)
        return {path: dict(self.options)} if self.options else path


UNCACHED = {"cache": False}
CURVE = {"cache": False, "x": "step", "y": "loss"}
VAL_CURVE = {"cache": False, "x": "step", "y": "val_psnr"}


@dataclass(frozen=True)
class Stage:
    name: str
    cmd: str
    module: str                        # the module that runs it: its import closure is the code dep
    deps: tuple = ()                   # data inputs
    outs: tuple = ()
    metrics: tuple = ()
    plots: tuple = ()
    params: tuple = ()                 # resolved keys read (besides PLAN)
    plan: bool = False                 # selects clips through plan_clips: reads PLAN
    files: tuple = ()                  # other files its code reads (params.yaml, schema, ...)
    foreach: str | None = None         # DVC: "${variants.enhance}" (``{key}`` in paths and keys)
    wildcard: str | None = None        # the Snakemake rule's name for ``{key}``
    per_clip: bool = False             # Snakemake: one job per clip
    comment: str | None = None         # printed above the stage in dvc.yaml

    def keys(self) -> list[str]:
        """Every resolved key the stage depends on (``{key}`` unexpanded), covered ones dropped."""
        return normalise_keys([*(PLAN if self.plan else ()), *self.params])


def normalise_keys(keys) -> list[str]:
    """Declared order, without duplicates or keys inside another declared key's section."""
    unique = list(dict.fromkeys(keys))
    return [k for k in unique if not any(k.startswith(o + ".") for o in unique if o != k)]


def training_stage(net: str, frozen: tuple, comment: str | None = None) -> Stage:
    """One network's training: FineNet's (``predeblur``; ``enhance``/``interp``/``combine`` per
    variant) or every baseline (``net="baselines"``), per name."""
    if net == "baselines":
        run, cmd, name, iterations = (KEY, None), f"finenet train {KEY}", "train_baseline", "baseline"
        keys, foreach, wildcard = BASELINE, "${baselines}", "name"
    elif net == "predeblur":
        run, cmd, name, iterations = (net, None), f"finenet train {net}", f"train_{net}", net
        keys, foreach, wildcard = FRONTEND, None, None
    else:
        run, cmd, name, iterations = (net, KEY), f"finenet train {net} --variant {KEY}", f"train_{net}", net
        keys = {"enhance": BRANCH, "interp": (*BRANCH, "model.interp_frames"), "combine": COMBINE}[net]
        keys, foreach, wildcard = (*keys, f"variants.{net}.{KEY}"), f"${{variants.{net}}}", "variant"
    return Stage(
        name=name, cmd=cmd, module="finenet.stages.train", foreach=foreach, wildcard=wildcard, comment=comment,
        deps=(L.sets.as_posix(), L.shards.as_posix(), *frozen),
        params=(*keys, f"train.iterations.{iterations}", f"train.lr.{iterations}", *TRAIN),
        outs=(Out(L.model_path(*run).as_posix()),),
        metrics=(Out(L.train_summary(*run).as_posix(), UNCACHED),),
        plots=(Out(L.train_curve(*run).as_posix(), CURVE),
               Out(L.train_curve(*run, suffix="_val").as_posix(), VAL_CURVE)))


def stages(names: dict | None = None) -> list[Stage]:
    """The pipeline; ``names``: the variant and baseline names (``foreach_names()``), which the
    evaluate stage's model inputs list."""
    names = names or foreach_names()
    path = lambda p: p.as_posix()  # noqa: E731
    predeblur = path(L.model_path("predeblur"))
    models = [predeblur, *(path(L.model_path(net, v)) for net in ("enhance", "interp", "combine")
                           for v in names["variants"][net]),
              *(path(L.model_path(b)) for b in names["baselines"])]
    val_curves = [path(L.train_curve(net, v, suffix="_val"))
                  for net, v in training_runs(names["variants"], names["baselines"])]
    eval_outs = tuple(Out(path(p), UNCACHED) for p in (L.eval_frames, L.eval_per_clip, L.eval_noref,
                                                        L.eval_samples, L.eval_temporal, L.eval_clips))
    return [
        Stage("params", "finenet params", "finenet.stages.params", files=(PARAMS_YAML, SCHEMA),
              outs=(Out(BUILD),),
              comment="params.yaml validated, its profile merged: every later stage tracks only "
                      "the keys of it that it reads"),
        Stage("sample", "finenet sample", "finenet.stages.sample", deps=(path(L.external),),
              outs=(Out(path(L.clips)),), plan=True, per_clip=True,
              params=("seed", "data.crop_size", "data.crop_margin", "data.box_smoothing",
                      "data.detect_upsample", "data.min_frames", "data.embedded.video_scale",
                      "data.embedded.motion"),
              comment="--- data: sample -> blur -> heatmaps per clip, then pack (one file per set)"),
        Stage("blur", "finenet blur", "finenet.stages.blur", deps=(path(L.clips),),
              outs=(Out(path(L.blurred)),), plan=True, per_clip=True, params=("seed", "blur")),
        Stage("heatmaps", "finenet heatmaps", "finenet.stages.heatmaps", deps=(path(L.clips), path(L.blurred)),
              outs=(Out(path(L.shards)),), plan=True, per_clip=True,
              params=("landmarks", "data.crop_size", "data.crop_margin")),
        Stage("pack", "finenet pack", "finenet.stages.pack", deps=(path(L.shards),), plan=True,
              outs=(Out(path(L.sets)),), metrics=(Out(path(L.data_summary), UNCACHED),),
              plots=(Out(path(L.data_preview), UNCACHED),)),
        training_stage("predeblur", (), comment="--- training: stage one alone, then the two "
                       "branches independently, then the combiner; each baseline from scratch"),
        training_stage("enhance", (predeblur,)),
        training_stage("interp", (predeblur,)),
        training_stage("combine", (predeblur, path(L.model_path("enhance", "full")),
                                   path(L.model_path("interp", "full")))),
        training_stage("baselines", (predeblur,)),   # EDVR's pre-deblur starts from stage one's
        Stage("evaluate", "finenet evaluate", "finenet.stages.evaluate",
              deps=(path(L.sets), path(L.shards), *models), outs=eval_outs,
              metrics=(Out(path(L.metrics), UNCACHED),),
              params=("train.seed", "train.device", "landmarks.detector", "landmarks.upsample",
                      "landmarks.device", "loader.num_frames", "evaluate.frame_stride",
                      "evaluate.batch_size", "evaluate.temporal_frames", "variants", "baselines"),
              comment="--- evaluation of every trained method, then the paper's tables and figures"),
        Stage("report", "finenet report", "finenet.stages.report", files=("finenet/paper_results.yaml",),
              deps=(path(L.eval_frames), path(L.eval_noref), path(L.eval_samples), path(L.eval_temporal),
                    path(L.eval_clips), *val_curves),
              outs=tuple(Out(path(p), UNCACHED) for p in (L.tables, L.qualitative, L.motion_clips,
                                                          L.report_index, L.severity)),
              metrics=(Out(path(L.pies), UNCACHED),),
              plots=tuple(Out(path(p), UNCACHED) for p in (L.pies_figure, L.severity_figure,
                                                           L.curves_figure)),
              params=("report", "variants", "baselines")),
    ]


NO_NAMES = {"variants": {"enhance": [], "interp": [], "combine": []}, "baselines": []}


def stage(name: str, names: dict | None = None) -> Stage:
    """One stage; without ``names``, evaluate's model inputs are left out (its keys, command and
    outputs do not depend on them)."""
    return next(s for s in stages(names or NO_NAMES) if s.name == name)


DVC_ONLY = ("params",)   # Snakemake resolves and validates params.yaml when it parses the Snakefile


# --- the bench tier (bench/dvc.yaml) ------------------------------------------------------------

BENCH_DVC_YAML = "bench/dvc.yaml"
BENCH_BUILD = (L.build / "params-bench.yaml").as_posix()
BENCH_OUT = "reports/bench"
RELEASE_OUT = RELEASE.as_posix()                  # finenet/tiers/release.py: the release model, git-tracked
RELEASE_MANIFEST = BENCH_MANIFEST.as_posix()
# besides the package: what a bench run executes (Snakemake drives the training and evaluate rules)
BENCH_FILES = ("Snakefile", "workflow/rules/common.smk", "workflow/rules/train.smk",
               "workflow/rules/evaluate.smk", "finenet/paper_results.yaml")


def bench_keys() -> list[str]:
    """What the bench tier's runs read: the training, evaluate and report stages' keys (a variant's
    or baseline's own entry stands for its whole section here: one stage trains them all), plus
    ``bench`` (whose ``seeds`` replace ``train.seed``). The data keys are not among them: the bench trains on the default pipeline's data
    (its deps), and ``finenet.tiers.bench`` refuses a bench profile that changes a data key."""
    keys = []
    for s in stages(NO_NAMES):
        if s.module == "finenet.stages.train" or s.name in ("evaluate", "report"):
            keys += [k.split("." + KEY)[0] for k in s.keys()]
    return normalise_keys([*(k for k in keys if k != "train.seed"), "bench"])   # bench.seeds set it


def bench_stages() -> dict:
    """bench/dvc.yaml: its own params stage (profile bench, to build/params-bench.yaml), then one
    stage that runs every seed (``python -m finenet.tiers.bench``, Snakemake inside) into reports/bench/
    (``persist``: a killed run keeps the committed report and resumes from the seeds' runs)."""
    root = ".."
    params_deps = [*code_deps("finenet.stages.params"), PARAMS_YAML, SCHEMA]
    code = sorted(set().union(*(code_deps(m) for m in ("finenet.tiers.bench", "finenet.stages.train", "finenet.stages.evaluate"))))
    return {
        "params": {"cmd": f"finenet params --profile bench --out {BENCH_BUILD}", "wdir": root,
                   "deps": params_deps, "outs": [BENCH_BUILD]},
        "bench": {"cmd": "python -m finenet.tiers.bench", "wdir": root,
                  "deps": [*code, *BENCH_FILES, L.sets.as_posix(), L.shards.as_posix()],
                  "params": [{BENCH_BUILD: bench_keys()}],
                  "outs": [{BENCH_OUT: {"persist": True, "cache": False}}]},
        "release": {"cmd": "python -m finenet.tiers.release", "wdir": root,
                    "deps": [*code_deps("finenet.tiers.release"), RELEASE_MANIFEST,
                             *(f.as_posix() for f in release_inputs(bench_seeds()))],
                    "params": [{BENCH_BUILD: ["bench.seeds"]}],
                    "outs": [{RELEASE_OUT: {"cache": False}}]},
    }


def bench_seeds(path=None) -> list[int]:
    """The bench tier's training seeds (params.yaml's ``bench.seeds``; the release stage's deps)."""
    from .params import load_params

    return list(load_params(path or ROOT / PARAMS_YAML, "bench")["bench"]["seeds"])


BENCH_HEADER = """\
# GENERATED from finenet/dag.py -- do not edit by hand. Regenerate with
#     .venv/bin/python -m finenet.dag --write
# The bench tier (finenet/tiers/bench.py): `cd bench && dvc repro` (or `make bench-tier`). Not part of the
# default `dvc repro` (which runs ../dvc.yaml only); it reads the default pipeline's data/.
# Parameters: its own params stage resolves profile `bench` to build/params-bench.yaml; the bench
# stage tracks the keys of it that training, evaluate and report read, so editing the bench profile
# re-runs the bench and nothing of the default pipeline, and editing a default the bench overrides
# re-runs nothing here.
"""


def bench_dvc_yaml() -> str:
    text = yaml.safe_dump({"stages": bench_stages()}, sort_keys=False, width=100, default_flow_style=False, indent=2)
    return BENCH_HEADER + text


# --- the learning-rate sweep (sweep/dvc.yaml) ---------------------------------------------------

SWEEP_DVC_YAML = "sweep/dvc.yaml"
SWEEP_METRICS = "reports/sweep/val.json"
# params.yaml's sections (unresolved: the stage reads the bench profile merged over them) that a
# sweep run's training reads, and `sweep` (whose `lr` each experiment sets)
SWEEP_KEYS = ["sweep", "seed", "loader", "model", "variants", "baselines", "train", "bench", "profiles.bench"]


def sweep_stages() -> dict:
    """sweep/dvc.yaml: one stage that trains each method's network at ``sweep.lr`` (Snakemake
    inside) and writes the validation scores as a DVC metric; ``dvc exp run -S sweep.lr=V`` makes
    it one experiment per learning rate (``finenet.tiers.sweep``)."""
    code = sorted(set().union(*(code_deps(m) for m in ("finenet.tiers.sweep", "finenet.stages.train"))))
    return {"sweep": {"cmd": "python -m finenet.tiers.sweep", "wdir": "..",
                      "deps": [*code, *BENCH_FILES, L.sets.as_posix(), L.shards.as_posix()],
                      "params": [{PARAMS_YAML: SWEEP_KEYS}],
                      "metrics": [{SWEEP_METRICS: {"cache": False}}]}}


SWEEP_HEADER = """\
# GENERATED from finenet/dag.py -- do not edit by hand. Regenerate with
#     .venv/bin/python -m finenet.dag --write
# The learning-rate sweep (finenet/tiers/sweep.py): one DVC experiment per learning rate,
#     dvc exp run sweep/dvc.yaml -S params.yaml:sweep.lr=5e-4 -n lr-0.0005
# (`make lr-sweep` runs every value of sweep.values, then `python -m finenet.tiers.sweep --summary`).
# Not part of the default `dvc repro`; it reads the default pipeline's data/.
"""


def sweep_dvc_yaml() -> str:
    text = yaml.safe_dump({"stages": sweep_stages()}, sort_keys=False, width=100, default_flow_style=False, indent=2)
    return SWEEP_HEADER + text


# --- variant and baseline names ----------------------------------------------------------------

def foreach_names(path=None) -> dict:
    """``{"variants": {net: [names]}, "baselines": [names]}`` as DVC's ``foreach`` reads them:
    from params.yaml's top level (its default vars), not the profile-merged values. A profile that
    renamed, added or dropped one would make DVC and finenet disagree: refused."""
    from .params import deep_merge

    raw = yaml.safe_load(Path(path or ROOT / PARAMS_YAML).read_text())

    def names(p):
        return {"variants": {net: list(v) for net, v in p["variants"].items()},
                "baselines": list(p["baselines"])}

    top = names(raw)
    for profile, over in (raw.get("profiles") or {}).items():
        if names(deep_merge(raw, over or {})) != top:
            raise SystemExit(f"{PARAMS_YAML}: profiles.{profile} changes the names of variants or "
                             f"baselines; dvc.yaml's foreach stages follow the top-level ones")
    return top


# --- code deps ---------------------------------------------------------------------------------

def module_file(name: str, root: Path = ROOT) -> Path | None:
    base = root.joinpath(*name.split("."))
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return f
    return None


def _main_block(node) -> bool:
    """``if __name__ == "__main__":``"""
    t = getattr(node, "test", None)
    return (isinstance(node, ast.If) and isinstance(t, ast.Compare) and isinstance(t.left, ast.Name)
            and t.left.id == "__name__" and any(isinstance(c, ast.Constant) and c.value == "__main__"
                                                for c in t.comparators))


@lru_cache(maxsize=None)
def imports(name: str, top_level_only: bool = False, root: Path = ROOT) -> frozenset[str]:
    """The package modules ``name`` imports (statically, anywhere but its ``__main__`` block)."""
    path = module_file(name, root)
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    stack = [n for n in tree.body if not _main_block(n)]
    found: set[str] = set()
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
        if not top_level_only:
            stack.extend(c for c in ast.iter_child_nodes(node) if not _main_block(c))
    return frozenset(m for m in found if m.split(".")[0] == PACKAGE and module_file(m, root))


def closure(modules, root: Path = ROOT) -> set[str]:
    """``modules``, everything they import transitively, and the packages holding them."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        parts = m.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]      # their __init__.py run too
        todo += sorted(imports(m, root=root))
    return seen


def code_deps(module: str, root: Path = ROOT) -> list[str]:
    """The files of the package a stage runs: see the module docstring."""
    mods = closure({module, *imports(ENTRY, top_level_only=True, root=root)}, root) | {ENTRY}
    return sorted(module_file(m, root).relative_to(root).as_posix() for m in mods)


# --- dvc.yaml ----------------------------------------------------------------------------------

HEADER = """\
# GENERATED from finenet/dag.py -- do not edit by hand. Regenerate with
#     .venv/bin/python -m finenet.dag --write
# (tests/test_dag.py fails while this file differs from what finenet/dag.py generates).
# The DVC view of the pipeline. Snakemake's view (Snakefile, workflow/rules/*.smk) runs the same
# `finenet <stage>` commands per clip; tests/test_dag_agreement.py keeps the two in agreement.
# Parameters: the `params` stage writes build/params.yaml (params.yaml, profile merged, validated);
# each later stage tracks only the keys of it that it reads. Code deps: each stage's import closure.
"""


def dvc_template(text: str) -> str:
    return str(text).replace(KEY, "${key}")


def dvc_stage(s: Stage, root: Path = ROOT) -> dict:
    body: dict = {"cmd": dvc_template(s.cmd),
                  "deps": [*code_deps(s.module, root), *s.files, *map(dvc_template, s.deps)]}
    keys = [dvc_template(k) for k in s.keys()]
    if keys:
        body["params"] = [{BUILD: keys}]
    for kind in ("outs", "metrics", "plots"):
        if getattr(s, kind):
            body[kind] = [o.dvc() for o in getattr(s, kind)]
    return {"foreach": s.foreach, "do": body} if s.foreach else body


def dvc_yaml(root: Path = ROOT) -> str:
    """The text of dvc.yaml."""
    chunks = [HEADER, "stages:\n"]
    for s in stages(foreach_names(root / PARAMS_YAML)):
        text = yaml.safe_dump({s.name: dvc_stage(s, root)}, sort_keys=False, width=100,
                              default_flow_style=False, indent=2)
        lines = "".join(f"  {line}\n" for line in text.splitlines())
        comment = f"  # {s.comment}\n" if s.comment else ""
        chunks.append(("\n" if len(chunks) > 2 else "") + comment + lines)
    return "".join(chunks)


# --- Snakemake ---------------------------------------------------------------------------------

def lookup(params: dict, key: str):
    node = params
    for part in key.split("."):
        node = node[part]
    return node


def snakemake_params(name: str, params: dict, specs: dict | None = None):
    """A rule's ``params:`` entry: ``{key: resolved value}`` for the keys the stage reads. A
    function of the wildcards where the stage is a template (``{key}``: the variant or baseline) or
    runs per clip (``specs[clip]``, the clip's plan entry, stands for ``PLAN``). Snakemake re-runs a
    job when this value changes (rerun trigger ``params``)."""
    s = stage(name)
    keys = normalise_keys(s.params) if s.per_clip else s.keys()

    def values(key: str | None = None, clip: str | None = None) -> dict:
        out = {k.replace(KEY, key or KEY): copy.deepcopy(lookup(params, k.replace(KEY, key or KEY)))
               for k in keys}
        if clip is not None:
            out["clip"] = dict(specs[clip])
        return out

    if s.wildcard is None and not s.per_clip:
        return values()
    return lambda wildcards: values(getattr(wildcards, s.wildcard) if s.wildcard else None,
                                    wildcards.clip if s.per_clip else None)


# --- command line ------------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m finenet.dag", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write dvc.yaml")
    mode.add_argument("--check", action="store_true", help="exit 1 when dvc.yaml is stale")
    args = parser.parse_args(argv)
    files = {ROOT / DVC_YAML: dvc_yaml(), ROOT / BENCH_DVC_YAML: bench_dvc_yaml(),
             ROOT / SWEEP_DVC_YAML: sweep_dvc_yaml()}
    for target, text in files.items():
        name = target.relative_to(ROOT)
        if args.write:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            print(f"wrote {name}", file=sys.stderr)
        elif args.check:
            if not target.is_file() or target.read_text() != text:
                print(f"{name} is stale: run `python -m finenet.dag --write`", file=sys.stderr)
                return 1
        else:
            sys.stdout.write(f"# --- {name}\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
