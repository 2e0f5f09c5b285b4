"""dvc.yaml and the Snakemake workflow describe one pipeline: keep them from drifting apart.

Both are reduced to one shape, ``stage -> Stage(command, inputs, outputs)``, at DVC's granularity:
a Snakemake per-clip pattern such as ``data/clips/{clip}.npz`` -- or a file expanded from one, like
pack's ``data/h5/emb_carphone.h5`` -- stands for its directory (``data/clips``, ``data/h5``). Code
deps (``finenet/...``) exist only on the DVC side and are left out. The edges of each DAG are
worked out independently: DVC's from path overlap of deps and outs (how DVC links stages),
Snakemake's from its own output-pattern matching on a planned clip (how Snakemake links jobs).
A DVC ``foreach`` stage (one run per ablation variant or baseline) is compared with the Snakemake
rule of the same name as a template: ``${key}`` there and the rule's one non-clip wildcard here
(``{variant}``, ``{name}``) both become ``{key}``. DVC outs marked ``persist`` (a killed training run's resume state) are not products
and have no Snakemake twin.

Parameters: each DVC stage tracks keys of ``build/params.yaml`` (the resolved params.yaml, written by
DVC's first stage ``params``, which has no Snakemake twin: the Snakefile resolves and validates
params.yaml itself); each rule carries ``params: resolved={key: value}``, the same keys with their
values (per clip, the clip's plan entry ``clip`` stands for the plan's keys ``finenet.dag.PLAN``).
Both come from ``finenet/dag.py``; this checks what the two files actually declare.

The Snakemake rules are loaded through ``snakemake.api`` without building a job DAG: nothing runs
and nothing is written (file logging is off).
"""

from __future__ import annotations

import copy
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CODE = "finenet"                       # deps under here are code, not data
BUILD_PARAMS = "build/params.yaml"     # the resolved parameters the DVC stages track
DVC_ONLY = {"params"}                  # resolving params.yaml: Snakemake does it at parse time
PROFILE = ROOT / "workflow" / "profiles" / "slurm" / "config.yaml"


@dataclass(frozen=True)
class Stage:
    command: str | None                # "finenet <stage>"
    inputs: frozenset[str]             # data paths read
    outputs: frozenset[str]            # paths written (outs, metrics, plots)


def finenet_command(cmd: str | None) -> str | None:
    """``finenet <stage>``, and for training the network: ``finenet train enhance`` (a templated
    network, ``finenet train {wildcards.name}`` or ``${key}``, is ``finenet train {key}``)."""
    cmd = re.sub(r"\{wildcards\.\w+\}|\$\{key\}", "{key}", cmd or "")
    match = re.search(r"\bfinenet\s+(train\s+(?:\w+|\{key\})|[\w-]+)", cmd)
    return "finenet " + " ".join(match.group(1).split()) if match else None


def norm(path: str) -> str:
    return posixpath.normpath(str(path))


def is_code(path: str) -> bool:
    return path == CODE or path.startswith(CODE + "/")


def template_regex(path: str) -> str:
    return re.sub(r"\\\{key\\\}", "[^/]+", re.escape(path))


def overlaps(a: str, b: str) -> bool:
    """DVC links a dep to an out when one is the other or lies inside it ({variant}: any name)."""
    ra, rb = template_regex(a), template_regex(b)
    return bool(re.fullmatch(rb + "(/.*)?", a) or re.fullmatch(ra + "(/.*)?", b))


# --- DVC view -------------------------------------------------------------------------------------

def entry_paths(entries, products_only: bool = False) -> list[str]:
    """deps/outs/metrics/plots entries are ``path`` or ``{path: {options}}``."""
    paths = []
    for e in entries or []:
        path, options = (e, {}) if isinstance(e, str) else next(iter(e.items()))
        if not (products_only and (options or {}).get("persist")):
            paths.append(norm(path))
    return paths


def dvc_stages(dvc: dict) -> dict[str, dict]:
    """Stages with ``foreach``/``do`` as one template each (``${key}`` -> ``{key}``)."""
    out = {}
    for name, s in dvc["stages"].items():
        if "foreach" in s:
            s = yaml.safe_load(yaml.safe_dump(s["do"]).replace("${key}", "{key}"))
        out[name] = s
    return out


def dvc_view(dvc: dict) -> dict[str, Stage]:
    return {
        name: Stage(
            command=finenet_command(s.get("cmd")),
            inputs=frozenset(p for p in entry_paths(s.get("deps")) if not is_code(p)),
            outputs=frozenset(p for key in ("outs", "metrics", "plots")
                              for p in entry_paths(s.get(key), products_only=True)),
        )
        for name, s in dvc_stages(dvc).items()
    }


def dvc_params(dvc: dict) -> dict[str, frozenset[str]]:
    """The parameter keys each stage tracks: ``build/params.yaml`` keys as they are, any other
    file's (or a whole file) as ``<file>:<key>`` so it shows up as a difference."""
    out = {}
    for name, s in dvc_stages(dvc).items():
        keys = set()
        for entry in s.get("params") or []:
            for file, names in ({"params.yaml": [entry]} if isinstance(entry, str) else entry).items():
                names = names if names is not None else ["<whole file>"]
                keys |= {k if file == BUILD_PARAMS else f"{file}:{k}" for k in names}
        out[name] = frozenset(keys)
    return out


def dvc_edges(dvc: dict) -> set[tuple[str, str]]:
    stages = dvc_stages(dvc)
    return {(a, b) for a, sa in stages.items() for b, sb in stages.items()
            if any(overlaps(dep, out) for dep in entry_paths(sb.get("deps"))
                   for key in ("outs", "metrics", "plots") for out in entry_paths(sa.get(key)))}


# --- Snakemake view -------------------------------------------------------------------------------

def load_snakemake() -> dict:
    """The Snakefile's rules by name, parsed, not executed."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings(enable_file_logging=False)) as api:
        workflow = api.workflow(ResourceSettings(), snakefile=ROOT / "Snakefile", workdir=ROOT)
        return {r.name: r for r in workflow._workflow.rules}   # parsed Snakefile + includes


def is_pattern(f) -> bool:
    """A per-clip pattern (the ``clip`` wildcard): it stands for its directory."""
    return "clip" in f.get_wildcard_names()


def as_template(f) -> str:
    """``models/enhance/{variant,full|no_foc}/model.pt`` -> ``models/enhance/{key}/model.pt``."""
    return norm(re.sub(r"\{\w+(,[^}]*)?\}", "{key}", str(f)))


def pattern_dir(pattern: str) -> str:
    """``data/clips/{clip,<regex>}.npz`` -> ``data/clips``: the directory above the first wildcard."""
    return norm(posixpath.dirname(str(pattern).split("{", 1)[0]))


def snakemake_view(rules: dict) -> dict[str, Stage]:
    per_clip = [o for r in rules.values() for o in r.output if is_pattern(o)]

    def to_dvc(f) -> str:
        if callable(f):                      # an input function: no static path to compare
            return "<input function>"
        producer = f if is_pattern(f) else next((o for o in per_clip if o.match(str(f))), None)
        return pattern_dir(producer) if producer is not None else as_template(f)

    return {
        name: Stage(command=finenet_command(r.shellcmd),
                    inputs=frozenset(map(to_dvc, r.input)),
                    outputs=frozenset(map(to_dvc, r.output)))
        for name, r in rules.items() if name != "all"
    }


def without_covered(keys) -> frozenset[str]:
    """``data.crop_size`` is inside ``data``: a key under another declared one adds nothing."""
    keys = set(keys)
    return frozenset(k for k in keys if not any(k.startswith(o + ".") for o in keys if o != k))


def snakemake_params(rules: dict, clip: str) -> dict[str, frozenset[str]]:
    """The keys of each rule's ``params: resolved=...`` (a value, or a function of the wildcards:
    called with the planned ``clip`` and, for a template rule, the first name its wildcard
    allows, which then reads ``{key}``); a per-clip rule's ``clip`` entry (its plan entry) stands
    for the plan's keys."""
    from snakemake.iocontainers import Wildcards

    from finenet.dag import PLAN

    out = {}
    for name, r in rules.items():
        if name == "all":
            continue
        resolved = dict(r.params.items()).get("resolved") if "resolved" in r.params.keys() else None
        if resolved is None:
            out[name] = frozenset()
            continue
        key = next((w for w in r.wildcard_names if w != "clip"), None)
        concrete = r.wildcard_constraints[key].split("|")[0] if key else None
        if callable(resolved):
            values = {"clip": clip} if "clip" in r.wildcard_names else {}
            resolved = resolved(Wildcards(fromdict={**values, **({key: concrete} if key else {})}))
        keys = set()
        for k in resolved:
            if k == "clip":
                keys |= set(PLAN)
            elif concrete is not None:
                keys.add(".".join("{key}" if part == concrete else part for part in k.split(".")))
            else:
                keys.add(k)
        out[name] = without_covered(keys)
    return out


def snakemake_edges(rules: dict, clip: str) -> set[tuple[str, str]]:
    """A -> B when an output of A produces an input of B, with wildcards set to one planned clip."""
    def concrete(f) -> str:
        return str(f.apply_wildcards({w: clip for w in f.get_wildcard_names()}))

    stages = {n: r for n, r in rules.items() if n != "all"}
    return {(a, b) for a, ra in stages.items() for b, rb in stages.items()
            if any(o.match(concrete(i)) for i in rb.input if not callable(i)
                   for o in ra.output)}


# --- the comparison -------------------------------------------------------------------------------

def compare_paths(what: str, dvc: dict[str, Stage], smk: dict[str, Stage]) -> list[str]:
    problems = []
    for name in sorted(dvc.keys() & smk.keys()):
        d, s = getattr(dvc[name], what), getattr(smk[name], what)
        if d - s:
            problems.append(f"{name} {what}: in dvc.yaml only: {sorted(d - s)}")
        if s - d:
            problems.append(f"{name} {what}: in Snakemake only: {sorted(s - d)}")
    return problems


def compare_commands(dvc: dict[str, Stage], smk: dict[str, Stage]) -> list[str]:
    return [f"{name} command: dvc.yaml runs {dvc[name].command!r}, Snakemake {smk[name].command!r}"
            for name in sorted(dvc.keys() & smk.keys())
            if dvc[name].command is None or dvc[name].command != smk[name].command]


def compare_names(dvc: dict[str, Stage], smk: dict[str, Stage]) -> list[str]:
    problems = []
    if dvc.keys() - smk.keys() - DVC_ONLY:
        problems.append(f"stages in dvc.yaml only: {sorted(dvc.keys() - smk.keys() - DVC_ONLY)}")
    if smk.keys() - dvc.keys():
        problems.append(f"rules in Snakemake only: {sorted(smk.keys() - dvc.keys())}")
    return problems


def compare_params(dvc: dict[str, frozenset], smk: dict[str, frozenset]) -> list[str]:
    problems = []
    for name in sorted(dvc.keys() & smk.keys()):
        d, s = without_covered(dvc[name]), smk[name]
        if d - s:
            problems.append(f"{name} params: in dvc.yaml only: {sorted(d - s)}")
        if s - d:
            problems.append(f"{name} params: in Snakemake only: {sorted(s - d)}")
    return problems


def compare_edges(dvc: set, smk: set) -> list[str]:
    problems = []
    if dvc - smk:
        problems.append(f"edges in dvc.yaml only: {sorted(dvc - smk)}")
    if smk - dvc:
        problems.append(f"edges in Snakemake only: {sorted(smk - dvc)}")
    return problems


def drift(dvc_yaml: dict, rules: dict, clip: str) -> list[str]:
    """Every difference between the two DAGs, one line each; empty when they agree."""
    d, s = dvc_view(dvc_yaml), snakemake_view(rules)
    return (compare_names(d, s) + compare_commands(d, s) + compare_paths("outputs", d, s)
            + compare_paths("inputs", d, s)
            + compare_params(dvc_params(dvc_yaml), snakemake_params(rules, clip))
            + compare_edges(dvc_edges(dvc_yaml), snakemake_edges(rules, clip)))


# --- tests ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dvc_yaml() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())


@pytest.fixture(scope="module")
def snakemake_workflow():
    """(rules, planned clip ids of params.yaml's profile)."""
    from finenet.data.clips import plan_clips
    from finenet.params import load_params

    clips = [c.clip_id for c in plan_clips(load_params(ROOT / "params.yaml"))]
    assert clips, "params.yaml plans no clips"
    return load_snakemake(), clips


@pytest.fixture(scope="module")
def views(dvc_yaml, snakemake_workflow):
    return dvc_view(dvc_yaml), snakemake_view(snakemake_workflow[0])


def test_same_stage_names(views):
    assert compare_names(*views) == []


def test_same_finenet_commands(views):
    assert compare_commands(*views) == []


def test_same_outputs(views):
    assert compare_paths("outputs", *views) == []


def test_same_data_inputs(views):
    assert compare_paths("inputs", *views) == []


def test_same_edges(dvc_yaml, snakemake_workflow):
    rules, clips = snakemake_workflow
    edges = dvc_edges(dvc_yaml)
    assert compare_edges(edges, snakemake_edges(rules, clips[0])) == []
    # and the DAG is the pipeline we think it is (a regression guard on the helpers themselves)
    train = {("pack", "train_predeblur"), ("heatmaps", "train_predeblur"),
             ("train_predeblur", "train_enhance"), ("train_predeblur", "train_interp"),
             ("train_predeblur", "train_combine"), ("train_enhance", "train_combine"),
             ("train_interp", "train_combine"), ("train_predeblur", "train_baseline")}
    trained_on_data = ("train_enhance", "train_interp", "train_combine", "train_baseline")
    data_to_train = {(d, t) for d in ("pack", "heatmaps") for t in trained_on_data}
    evaluate = {(a, "evaluate") for a in ("heatmaps", "pack", "train_predeblur", *trained_on_data)}
    curves = {(t, "report") for t in ("train_predeblur", *trained_on_data)}   # validation curves
    assert edges == {("sample", "blur"), ("sample", "heatmaps"), ("blur", "heatmaps"),
                     ("heatmaps", "pack"), ("evaluate", "report")} | train | data_to_train | evaluate | curves


def test_same_parameter_keys(dvc_yaml, snakemake_workflow):
    rules, clips = snakemake_workflow
    assert compare_params(dvc_params(dvc_yaml), snakemake_params(rules, clips[0])) == []


def test_parameter_views_are_not_trivially_empty(dvc_yaml, snakemake_workflow):
    rules, clips = snakemake_workflow
    dvc, smk = dvc_params(dvc_yaml), snakemake_params(rules, clips[0])
    assert dvc.keys() == smk.keys() | DVC_ONLY and dvc["params"] == frozenset()
    assert {"variants.enhance.{key}", "train.iterations.enhance", "model.feat"} <= smk["train_enhance"]
    assert {"seed", "data.embedded.train", "blur"} <= smk["blur"] == dvc["blur"]
    assert "baselines.{key}" in dvc["train_baseline"] and "report" in dvc["report"]
    # a per-clip job carries its clip's plan entry and the stage's own keys
    job = rules["blur"].params.resolved
    from snakemake.iocontainers import Wildcards

    values = job(Wildcards(fromdict={"clip": clips[0]}))
    assert values["clip"]["clip_id"] == clips[0] and "data.embedded.train" not in values


def test_views_are_not_trivially_empty(views):
    dvc, smk = views
    assert dvc["sample"] == Stage("finenet sample", frozenset({"data/external"}),
                                  frozenset({"data/clips"}))
    assert smk["pack"].outputs == {"data/sets", "reports/data_summary.json",
                                   "reports/figures/data_preview.png"}


def _rename_stage(d):
    d["stages"]["sampling"] = d["stages"].pop("sample")


def _extra_dep(d):
    d["stages"]["pack"]["deps"].append("data/clips")


def _dropped_metric(d):
    del d["stages"]["pack"]["metrics"]


def _other_command(d):
    d["stages"]["blur"]["cmd"] = "finenet sample"


def _code_dep_only(d):
    d["stages"]["pack"]["deps"].append("finenet/stages/clip_loop.py")


def _dropped_param(d):
    d["stages"]["train_enhance"]["do"]["params"][0][BUILD_PARAMS].remove("train.lr.enhance")


def _params_yaml_key(d):
    d["stages"]["heatmaps"]["params"].append("landmarks")    # params.yaml's, as dvc.yaml once had


@pytest.mark.parametrize("mutate, expected", [
    (_rename_stage, ["stages in dvc.yaml only: ['sampling']", "rules in Snakemake only: ['sample']",
                     "edges in dvc.yaml only: [('sampling', 'blur'), ('sampling', 'heatmaps')]",
                     "edges in Snakemake only: [('sample', 'blur'), ('sample', 'heatmaps')]"]),
    (_extra_dep, ["pack inputs: in dvc.yaml only: ['data/clips']",
                  "edges in dvc.yaml only: [('sample', 'pack')]"]),
    (_dropped_metric, ["pack outputs: in Snakemake only: ['reports/data_summary.json']"]),
    (_other_command, ["blur command: dvc.yaml runs 'finenet sample', Snakemake 'finenet blur'"]),
    (_code_dep_only, []),
    (_dropped_param, ["train_enhance params: in Snakemake only: ['train.lr.enhance']"]),
    (_params_yaml_key, ["heatmaps params: in dvc.yaml only: ['params.yaml:landmarks']"]),
], ids=["renamed-stage", "extra-dep", "dropped-metric", "other-command", "code-dep-is-fine",
        "dropped-param", "params-yaml-section"])
def test_checker_detects_drift(dvc_yaml, snakemake_workflow, mutate, expected):
    rules, clips = snakemake_workflow
    assert drift(dvc_yaml, rules, clips[0]) == []
    drifted = copy.deepcopy(dvc_yaml)
    mutate(drifted)
    assert drift(drifted, rules, clips[0]) == expected


def test_checker_detects_snakemake_side_drift(views):
    """The other direction: a Snakemake rule that writes one more file than DVC knows of."""
    dvc, smk = views
    smk = dict(smk, blur=Stage(smk["blur"].command, smk["blur"].inputs,
                               smk["blur"].outputs | {"data/kernels"}))
    assert compare_paths("outputs", dvc, smk) == ["blur outputs: in Snakemake only: ['data/kernels']"]


# --- the SLURM profile ----------------------------------------------------------------------------

def test_slurm_profile_parses_and_names_existing_rules(snakemake_workflow):
    from snakemake.cli import get_argument_parser

    rules, _ = snakemake_workflow
    profile = yaml.safe_load(PROFILE.read_text())
    assert isinstance(profile, dict) and profile["executor"] == "slurm"

    parser = get_argument_parser()
    options = {s[2:] for s in parser._option_string_actions if s.startswith("--")}
    assert set(profile) <= options, f"not snakemake options: {sorted(set(profile) - options)}"

    for key in ("set-resources", "set-threads"):
        named = set(profile.get(key) or {})
        assert named <= rules.keys(), f"{key} names unknown rules: {sorted(named - rules.keys())}"
    assert {"heatmaps", "pack"} <= set(profile["set-resources"])

    # Through snakemake's own profile reader and parsers. The slurm executor plugin need not be
    # installed here, so the (command-line-wins) executor is overridden; all else comes from the file.
    args = get_argument_parser(profiles=[str(PROFILE)]).parse_args(["--executor", "dryrun"])
    assert {"slurm_partition", "runtime", "mem_mb"} <= set(args.default_resources)
    assert set(args.set_resources) == set(profile["set-resources"])
    assert args.jobs == profile["jobs"]
