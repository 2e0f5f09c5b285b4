"""Load ``params.yaml``, merge the selected profile, validate against the one shared schema."""

from __future__ import annotations

import copy
import math
from functools import lru_cache
from pathlib import Path

import yaml

from .errors import FineNetError

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = Path(__file__).parent / "schemas" / "params.schema.yaml"   # package data: any install
DEFAULT_PARAMS = Path("params.yaml")


def deep_merge(base: dict, over: dict) -> dict:
    """``over`` wins; nested dicts merge key by key; lists and scalars are replaced."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@lru_cache(maxsize=1)
def _schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


def _key_path(error) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return ".".join(filter(None, [path, extra[0] if extra else ""]))
    return path or "(top level)"


def validate(params: dict, where="params.yaml") -> dict:
    """Raise one FineNetError naming the offending key; return ``params`` unchanged when valid."""
    import jsonschema

    _check_finite(params, where)
    errors = sorted(jsonschema.Draft202012Validator(_schema()).iter_errors(params),
                    key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        err = errors[0]
        key = _key_path(err)
        if err.validator == "additionalProperties":
            raise FineNetError(where, f"unknown key '{key}'")
        raise FineNetError(where, f"{key}: {err.message}")
    _check_consistency(params, where)
    return params


def _check_finite(node, where, path: str = "") -> None:
    """NaN and infinity (YAML's .nan, .inf) pass every JSON-schema bound (a comparison with NaN is
    false): refuse them by name."""
    if isinstance(node, dict):
        for k, v in node.items():
            _check_finite(v, where, f"{path}.{k}" if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _check_finite(v, where, f"{path}[{i}]")
    elif isinstance(node, float) and not math.isfinite(node):
        raise FineNetError(where, f"{path or '(top level)'}: {node} is not a finite number")


def _check_consistency(p: dict, where) -> None:
    crop, hm = p["data"]["crop_size"], p["landmarks"]["heatmap_size"]
    if crop % hm:
        raise FineNetError(where, f"landmarks.heatmap_size ({hm}) must divide data.crop_size ({crop})")
    if p["loader"]["patch_size"] > crop or p["loader"]["patch_size"] % (crop // hm):
        raise FineNetError(where, f"loader.patch_size must be <= data.crop_size ({crop}) and a "
                                  f"multiple of the heatmap stride ({crop // hm})")
    for net in ("enhance", "interp"):
        if "full" not in p["variants"][net]:
            raise FineNetError(where, f"variants.{net} must define 'full' (the combiner is trained on it)")
    for key, switches in [("model", p["model"])] + [(f"variants.{net}.{v}", {**p["model"], **sw})
                                                    for net in ("enhance", "interp")
                                                    for v, sw in p["variants"][net].items()]:
        if switches["landmarks"] and not switches["foc"]:   # heatmaps enter the alignment via FOC only
            raise FineNetError(where, f"{key}: landmarks: true needs foc: true (the heatmaps enter "
                                      f"through FOC, paper Eq. 7); set landmarks: false with foc: false")
    lo, hi = p["data"]["embedded"]["video_scale"]
    if lo > hi:
        raise FineNetError(where, f"data.embedded.video_scale: lower bound {lo} > upper bound {hi}")
    _check_blur(p["blur"], where)
    _check_frames(p, where)



def _check_frames(p: dict, where) -> None:
    """``loader.num_frames`` against what the networks read (finenet/models): windows are centred on
    frame t (an odd N); the interpolation branch, always trained, reads t-2, t-1, t+1 (and t+2 for
    ``interp_frames: 4``), so N >= 5; a baseline given its own ``num_frames`` (EDVR's fusion width)
    is fed the loader's windows, so it must be the same N."""
    n = p["loader"]["num_frames"]
    if n % 2 == 0 or n < 5:
        raise FineNetError(where, f"loader.num_frames: {n} cannot be used: the windows are centred "
                                  f"(odd) and the interpolation branch reads t-2 .. t+2 (5, 7, 9, ...)")
    for name, cfg in p["baselines"].items():
        if isinstance(cfg, dict) and "num_frames" in cfg and cfg["num_frames"] != n:
            raise FineNetError(where, f"baselines.{name}.num_frames: {cfg['num_frames']} differs from "
                                      f"loader.num_frames ({n}), the windows it is trained and run on")


BLUR_RANGES = ("mild_length", "line.kernel_size", "line.angle", "line.direction", "trajectory.length",
               "trajectory.anxiety", "trajectory.exposure", "noise.sigma", "jpeg.quality")


def _check_blur(b: dict, where) -> None:
    """What the schema cannot say about the ``blur`` mix (finenet/ops/degrade.py)."""
    for key in BLUR_RANGES:
        node = b
        for part in key.split("."):
            node = node[part]
        lo, hi = node
        if lo > hi:
            raise FineNetError(where, f"blur.{key}: lower bound {lo} > upper bound {hi}")
    lo, hi = b["line"]["kernel_size"]
    if not any(k % 2 for k in range(max(lo, 3), hi + 1)):
        raise FineNetError(where, f"blur.line.kernel_size: [{lo}, {hi}] holds no odd kernel size >= 3 "
                                  f"(imgaug's k is odd; k is drawn from the odd values in the range)")
    if sum(b["families"].values()) <= 0:
        raise FineNetError(where, "blur.families: the weights must sum to more than 0")


def load_params(path=DEFAULT_PARAMS, profile: str | None = None) -> dict:
    """The effective parameters: ``params.yaml`` with ``profiles[profile]`` merged over it."""
    path = Path(path)
    if not path.is_file():
        raise FineNetError(path, "parameter file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise FineNetError(path, f"not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise FineNetError(path, "expected a mapping of parameters at the top level")
    return resolve(raw, profile, where=path)


def resolve(raw: dict, profile: str | None = None, where="params.yaml") -> dict:
    profile = profile or raw.get("profile", "embedded")
    profiles = raw.get("profiles") or {}
    if not isinstance(profile, str):
        raise FineNetError(where, f"profile: {profile!r} is not a profile name (embedded, or a key of profiles)")
    if not isinstance(profiles, dict) or not all(isinstance(v, dict) for v in profiles.values()):
        raise FineNetError(where, "profiles: expected a mapping of profile name -> parameters to merge")
    if profile != "embedded" and profile not in profiles:
        raise FineNetError(where, f"profile '{profile}' is not 'embedded' nor a key of profiles "
                                  f"({', '.join(sorted(profiles)) or 'none defined'})")
    chosen = profiles.get(profile, {})
    if isinstance(chosen.get("baselines"), dict) and isinstance(raw.get("baselines"), dict):
        for name in chosen["baselines"]:          # a profile tunes the baselines, it does not add one
            if name not in raw["baselines"]:
                raise FineNetError(where, f"profiles.{profile}.baselines.{name}: not a baseline of the "
                                          f"baselines section ({', '.join(raw['baselines']) or 'none'})")
    merged = deep_merge(raw, chosen)
    merged["profile"] = profile
    return validate(merged, where)
