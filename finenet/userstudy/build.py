"""``build``: the study's cases from ``samples.h5``, the page (``index.html``) and its key (``key.json``).

Cases are the samples of the chosen sets (default: the real-blur sets, see ``real_blur_sets``;
``with_synthetic`` adds the other test sets), in the order ``samples.h5`` holds them, real-blur sets
first. Each case shows the input (``blurry``) as a reference and one option per method; the order of
a case's options is a shuffle seeded by ``(seed, set, clip, frame)`` alone, so a case keeps its
order whatever other cases are chosen, and the same arguments give byte-identical files.

The study id written into the page (and into every answer it saves) is a hash of the page as
written with a placeholder in its place, so it depends only on what the page shows; the key holds
the id and the SHA-256 of the final page bytes. Note that the order is reproducible from the seed
and ``samples.h5``: for a study with real participants, pick a seed they do not know.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import FineNetError
from ..reporting.tables import BASELINES, METHODS
from . import page as pages

FINENET = "finenet/late"        # FineNet as the evaluate stage names it (tables.TABLE1, stats.COMPARISONS)
REFERENCE = "blurry"            # the input frame, shown above the options, labelled "input"
REALBLUR = "realblur"           # the embedded sample's real-blur set is embedded_realblur
GROUND_TRUTH = "sharp"          # evaluate adds the sharp frame to a sample of a set with ground truth
PAGE_NAME, KEY_NAME = "index.html", "key.json"
KEY_FORMAT = "finenet-userstudy-key/1"


def paper_methods() -> list[str]:
    """FineNet and the deblurring baselines the paper compared with it (Sec. 4: two video, one
    image and one face image deblurring method, and one face video deblurring method): the baselines
    of ``tables.BASELINES`` whose registered network's ``task`` is ``"deblur"``. Super SloMo and DAIN
    (``task == "interp"``) are compared on 300VW only (Sec. 4.3). Imports the model registry (torch)."""
    from ..models import ARCHS

    return [FINENET, *(b for b in BASELINES if getattr(ARCHS.get(b), "task", None) == "deblur")]


@dataclass(frozen=True)
class Case:
    id: str
    set: str
    clip: str
    t: int
    kernel: int
    options: tuple            # the method behind each position (position 1 first)
    reference: np.ndarray     # the input frame
    images: tuple             # one image per position


@dataclass(frozen=True)
class Study:
    page: Path
    key: Path
    study: str
    sets: list
    methods: list
    cases: list


def option_order(methods, seed: int, set_name: str, clip: str, t: int) -> list[str]:
    order = list(methods)
    random.Random(f"finenet-userstudy:{seed}:{set_name}:{clip}:{t}").shuffle(order)
    return order


def real_blur_sets(samples: list[dict]) -> list[str]:
    """The sets of real blurry video: a name containing ``realblur`` (``embedded_realblur``) or no
    ground truth in any of its samples (the paper profile's ``youtube``: evaluate stores a sharp
    frame only for sets that have one)."""
    sets = list(dict.fromkeys(s["set"] for s in samples))
    return [name for name in sets if REALBLUR in name
            or not any(GROUND_TRUTH in s["methods"] for s in samples if s["set"] == name)]


def choose_sets(available: list[str], real: list[str], sets, with_synthetic: bool, where) -> list[str]:
    if sets:
        unknown = [s for s in sets if s not in available]
        if unknown:
            raise FineNetError(where, f"no samples of set {', '.join(map(repr, unknown))} (its sets: "
                                      f"{', '.join(available) or 'none'})")
        chosen = list(dict.fromkeys(sets))
    else:
        chosen = list(real)
    if with_synthetic:
        chosen += [s for s in available if s not in real and s not in chosen]
    if not chosen:
        raise FineNetError(where, f"no real-blur set (named '*{REALBLUR}*' or without ground truth) among its sets "
                                  f"({', '.join(available) or 'none'}); pass --with-synthetic or --sets")
    return chosen


def make_cases(samples: list[dict], sets: list[str], methods: list[str], seed: int, where) -> list[Case]:
    picked = [s for name in sets for s in samples if s["set"] == name]
    width = max(2, len(str(len(picked))))
    cases = []
    for i, s in enumerate(picked, 1):
        index = {m: k for k, m in enumerate(s["methods"])}
        absent = [m for m in [REFERENCE, *methods] if m not in index]
        if absent:
            raise FineNetError(where, f"sample {s['set']}/{s['clip']} frame {s['t']} has no output of "
                                      f"{', '.join(absent)} (it has: {', '.join(s['methods'])})")
        order = option_order(methods, seed, s["set"], s["clip"], s["t"])
        cases.append(Case(id=f"case{i:0{width}d}", set=s["set"], clip=s["clip"], t=s["t"], kernel=s["kernel"],
                          options=tuple(order), reference=s["images"][index[REFERENCE]],
                          images=tuple(s["images"][index[m]] for m in order)))
    return cases


def footer(cases: list[Case], sets: list[str], real_sets: list[str]) -> list[str]:
    real = [c for c in cases if c.set in real_sets]
    synthetic = [c for c in cases if c.set not in real_sets]
    real_shown = [s for s in sets if s in real_sets]
    synthetic_shown = [s for s in sets if s not in real_sets]
    lines = []

    def share(part: list) -> str:
        if len(part) == len(cases):
            return "The case is a frame" if len(cases) == 1 else f"All {len(cases)} cases are frames"
        return f"{len(part)} of the {len(cases)} cases {'is a frame' if len(part) == 1 else 'are frames'}"

    if real:
        lines.append(f"{share(real)} of real blurred video (set{'s' * (len(real_shown) != 1)} "
                     f"{', '.join(real_shown)}).")
    if synthetic:
        lines.append(f"{share(synthetic)} of synthetically blurred test video (set"
                     f"{'s' * (len(synthetic_shown) != 1)} {', '.join(synthetic_shown)}), added because this scale stores few real-blur samples; the "
                     "original study used real-blur cases only.")
    lines.append("The options of a case are the outputs of the compared methods, in a random order per "
                 "case; this page does not say which is which. Your answers stay in this page until you "
                 "download them: nothing is sent anywhere.")
    return lines


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build(samples_path, out, sets=None, with_synthetic: bool = False, methods=None, seed: int = 0) -> Study:
    from ..stages.report import read_samples

    samples_path, out = Path(samples_path), Path(out)
    samples = read_samples(samples_path)
    if not samples:
        raise FineNetError(samples_path, "holds no samples (no 'samples' group)")
    methods = list(methods) if methods else paper_methods()
    repeated = sorted({m for m in methods if methods.count(m) > 1})
    if repeated:
        raise FineNetError("--methods", f"{', '.join(repeated)} named twice")
    if len(methods) < 2:
        raise FineNetError("--methods", "a choice needs at least two methods")
    real = real_blur_sets(samples)
    chosen = choose_sets(list(dict.fromkeys(s["set"] for s in samples)), real, sets, with_synthetic, samples_path)
    cases = make_cases(samples, chosen, methods, seed, samples_path)

    draft = pages.render(cases, footer(cases, chosen, real))
    study = sha256(draft.encode("utf-8"))[:16]
    html = draft.replace(pages.STUDY_PLACEHOLDER, study).encode("utf-8")
    key = {
        "format": KEY_FORMAT,
        "study": study,
        "page": PAGE_NAME,
        "page_sha256": sha256(html),
        "seed": seed,
        "samples": str(samples_path),
        "samples_sha256": sha256(samples_path.read_bytes()),
        "sets": chosen,
        "reference": REFERENCE,
        "methods": methods,
        "labels": {m: METHODS.get(m, m) for m in methods},
        "columns": list(pages.COLUMNS),
        "cases": [dict(id=c.id, set=c.set, clip=c.clip, t=c.t, kernel=c.kernel, options=list(c.options))
                  for c in cases],
    }
    page_path, key_path = out / PAGE_NAME, out / KEY_NAME
    try:
        with atomic_path(page_path) as tmp:
            tmp.write_bytes(html)
        with atomic_path(key_path) as tmp:
            tmp.write_text(json.dumps(key, indent=2) + "\n")
    except OSError as exc:
        raise FineNetError(out, f"cannot write the study ({exc.strerror or exc.__class__.__name__})") from None
    return Study(page_path, key_path, study, chosen, methods, cases)
