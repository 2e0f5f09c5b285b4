"""The release model: the bench tier's FineNet that ``finenet deblur`` uses by default.

    python -m finenet.tiers.release            # what bench/dvc.yaml's ``release`` stage runs

Of the bench tier's training seeds (``bench.seeds``, ``runs/bench/seed<N>``), the one whose FineNet
scores best on the **validation** split is released (the combiner's ``val_psnr_best``: the whole
FineNet composition, blurred and sharp frames, scored on val; never the test sets, whose numbers the
release would then overstate). Its four networks (``FINENET_RUNS``) are copied into ``finenet/weights/``
(package data: an installed ``finenet`` carries it) in the layout of the pipeline's ``models/``
folder, with ``finenet/weights/manifest.json``:

- which seed, why (every seed's val PSNR), the profile;
- per file: its SHA-256 (of the bytes) and its content digest (``checkpoint.content_digest``),
  which must equal the one ``reports/bench/manifest.json`` records for that seed's run (checked
  here: the release is the model behind the committed bench numbers).

``verify(folder)`` checks every file of a folder that has a manifest against its SHA-256 (a
flipped byte, a truncated copy or a swapped file is one error naming the file); ``finenet deblur``
calls it before loading, and loads ``installed()`` unless ``--checkpoint`` names another folder
(``--checkpoint models``: what ``dvc repro`` just trained). The folder is written as a whole (a
temporary folder renamed into place) and committed to git (4 files, about 4.4 MB at the embedded
widths).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

from ..atomic import atomic_dir
from ..errors import FineNetError
from ..layout import Layout, model_file, run_name

PACKAGE = Path(__file__).resolve().parents[1]   # finenet/
RELEASE = Path("finenet") / "weights"     # from the repository root: the release, package data

MANIFEST_NAME = "manifest.json"
PROFILE = "bench"
BENCH_RUNS = Path("runs") / PROFILE       # finenet.tiers.bench's seed working directories
BENCH_MANIFEST = Path("reports") / PROFILE / "manifest.json"
# the networks FineNet is assembled from, as (net, variant): what deblur loads and the release holds
FINENET_RUNS = (("predeblur", None), ("enhance", "full"), ("interp", "full"), ("combine", "late"))
SELECT_BY = ("combine", "late")           # whose validation PSNR chooses the seed: the whole FineNet


def installed() -> Path:
    """The release folder of this installed package (``finenet deblur``'s default checkpoint)."""
    return PACKAGE / "weights"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def seed_dir(seed: int) -> Path:
    return BENCH_RUNS / f"seed{seed}"


def inputs(seeds) -> list[Path]:
    """Every file the release reads: each seed's FineNet networks and its combiner's summary."""
    files = []
    for s in seeds:
        layout = Layout(seed_dir(s))
        files += [layout.model_path(net, v) for net, v in FINENET_RUNS] + [layout.train_summary(*SELECT_BY)]
    return files


def val_psnr(seed: int) -> float:
    path = Layout(seed_dir(seed)).train_summary(*SELECT_BY)
    try:
        return float(json.loads(path.read_text())["val_psnr_best"])
    except FileNotFoundError:
        raise FineNetError(path, f"not found: seed {seed} of the bench tier has not finished "
                                 f"(make bench-tier)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise FineNetError(path, f"has no val_psnr_best ({exc})") from None


def choose(seeds) -> tuple[int, dict]:
    """(the seed best on val, every seed's val PSNR); a tie goes to the lowest seed."""
    scores = {int(s): val_psnr(s) for s in seeds}
    best = max(sorted(scores), key=lambda s: scores[s])
    return best, scores


def bench_digests(seed: int) -> dict:
    try:
        return json.loads(BENCH_MANIFEST.read_text())["models"][str(seed)]
    except FileNotFoundError:
        raise FineNetError(BENCH_MANIFEST, "not found: run the bench tier first (make bench-tier)") from None
    except (ValueError, KeyError) as exc:
        raise FineNetError(BENCH_MANIFEST, f"has no models of seed {seed} ({exc})") from None


def build(seeds, out: Path = RELEASE) -> dict:
    """Copy the chosen seed's FineNet into ``out`` with its manifest; returns the manifest."""
    from ..checkpoint import content_digest

    seed, scores = choose(seeds)
    recorded = bench_digests(seed)
    files = {}
    with atomic_dir(out) as tmp:
        for net, variant in FINENET_RUNS:
            src = Layout(seed_dir(seed)).model_path(net, variant)
            name = run_name(net, variant)
            digest = content_digest(src).hex()[:16]
            if recorded.get(name) != digest:
                raise FineNetError(src, f"content digest {digest} is not the {recorded.get(name)} that "
                                        f"{BENCH_MANIFEST} records for seed {seed}: the bench report "
                                        f"is not of these weights (re-run the bench tier)")
            dst = model_file(tmp, net, variant)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            files[dst.relative_to(tmp).as_posix()] = {"run": name, "sha256": sha256(dst),
                                                     "bytes": dst.stat().st_size, "content_digest": digest}
        manifest = {"profile": PROFILE, "seed": seed,
                    "selected_by": f"best validation PSNR of {run_name(*SELECT_BY)} (the whole FineNet) "
                                   f"among bench seeds",
                    "val_psnr": {str(s): v for s, v in scores.items()},
                    "bench_manifest": BENCH_MANIFEST.as_posix(), "files": files}
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def verify(folder) -> dict | None:
    """Check the files of a model folder against its manifest (None: the folder has none)."""
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        files = manifest["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise FineNetError(path, f"not a release manifest ({exc})") from None
    for rel, entry in files.items():
        f = folder / rel
        if not f.is_file():
            raise FineNetError(f, f"listed in {path} but missing")
        got = sha256(f)
        if got != entry.get("sha256"):
            raise FineNetError(f, f"differs from its release manifest (sha256 {got[:12]}..., the "
                                  f"manifest has {str(entry.get('sha256'))[:12]}...): the file is "
                                  f"corrupt or was replaced")
    return manifest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m finenet.tiers.release", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(RELEASE), help=f"release folder (default: {RELEASE})")
    args = parser.parse_args(argv)
    try:
        from ..params import DEFAULT_PARAMS, load_params

        seeds = load_params(DEFAULT_PARAMS, PROFILE)["bench"]["seeds"]
        manifest = build(seeds, Path(args.out))
    except FineNetError as exc:
        print(f"finenet release: {exc}", file=sys.stderr)
        return 2
    print(f"released seed {manifest['seed']} (val PSNR {manifest['val_psnr'][str(manifest['seed'])]:.2f} dB) "
          f"to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
