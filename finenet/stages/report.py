"""Stage ``report``: the paper's Tables 1–3 and Fig. 10, per-clip / landmark / no-reference tables,
PSNR against blur severity and qualitative grids, all computed from the evaluate stage's outputs.

Reads ``reports/eval/{frames.csv,noref.csv,samples.h5}``; writes ``reports/tables/`` (Markdown +
CSV), ``reports/figures/`` (PNG), ``reports/pies.json`` (Fig. 10's win rates, a DVC metric),
``reports/eval/severity.csv`` and the index ``reports/report.md``. The only numbers not computed
here are the paper's own (``finenet/paper_results.yaml``), printed in columns labelled "paper".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import layout
from ..reporting import figures, stats, tables
from ..atomic import atomic_dir, atomic_path
from ..errors import FineNetError

EVAL = layout.DEFAULT.eval
FRAMES, NOREF, SAMPLES = layout.DEFAULT.eval_frames, layout.DEFAULT.eval_noref, layout.DEFAULT.eval_samples
TEMPORAL, CLIPS = layout.DEFAULT.eval_temporal, layout.DEFAULT.eval_clips


@dataclass(frozen=True)
class Outputs:
    """Where a report goes: the default pipeline's under ``reports/``, the bench tier's under
    ``reports/bench/`` (same names below it). Every name is ``finenet/layout.py``'s, moved from its
    ``reports/`` to ``root``."""
    root: Path = Path("reports")

    def _moved(self, path: Path) -> Path:
        return self.root / path.relative_to(layout.DEFAULT.reports)

    @property
    def tables(self) -> Path:
        return self._moved(layout.DEFAULT.tables)

    @property
    def figures(self) -> Path:
        return self._moved(layout.DEFAULT.figures)

    @property
    def qualitative(self) -> Path:
        return self._moved(layout.DEFAULT.qualitative)

    @property
    def motion_clips(self) -> Path:
        return self._moved(layout.DEFAULT.motion_clips)

    @property
    def pies(self) -> Path:
        return self._moved(layout.DEFAULT.pies)

    @property
    def pies_figure(self) -> Path:
        return self._moved(layout.DEFAULT.pies_figure)

    @property
    def severity(self) -> Path:
        return self._moved(layout.DEFAULT.severity)

    @property
    def severity_figure(self) -> Path:
        return self._moved(layout.DEFAULT.severity_figure)

    @property
    def index(self) -> Path:
        return self._moved(layout.DEFAULT.report_index)

    @property
    def curves(self) -> Path:
        return self._moved(layout.DEFAULT.curves_figure)

    def paths(self) -> list[Path]:
        """Every path a report writes (``qualitative`` and ``motion_clips`` are directories: one
        PNG per set, one MP4 per clip without ground truth)."""
        tabs = [self.tables / f"{name}.{ext}" for name in ("table1", "table2", "table3", "nme", "noref", "comparisons",
                                                           "temporal") for ext in ("md", "csv")]
        return [*tabs, self.tables / "per_clip.md", self.pies_figure, self.pies, self.severity_figure,
                self.curves, self.severity, self.qualitative, self.motion_clips, self.index]


DEFAULT = Outputs()
TABLES, FIGURES, QUALITATIVE = DEFAULT.tables, DEFAULT.figures, DEFAULT.qualitative
PIES_JSON, SEVERITY_CSV, INDEX, CURVES_PNG = DEFAULT.pies, DEFAULT.severity, DEFAULT.index, DEFAULT.curves

FRAME_COLUMNS = {"method": str, "set": str, "clip": str, "t": int, "kernel": int, "psnr": float,
                 "ssim": float, "nme": float}
NOREF_COLUMNS = {"method": str, "set": str, "clip": str, "t": int, "blur_effect": float, "face_found": int}
TEMPORAL_COLUMNS = {"method": str, "set": str, "clip": str, "t0": int, "frames": int, "warp_error": float}
CURVE_COLUMNS = {"step": int, "val_psnr": float}
OPTIONAL = {"nme"}
NAN_TOKENS = {"", "nan", "NaN", "NAN", "NA", "N/A", "null", "None"}


def outputs() -> list[Path]:
    """Every path the stage writes (``QUALITATIVE`` is a directory: one PNG per set with samples)."""
    return DEFAULT.paths()


def read_curves(params: dict) -> dict:
    """Each trained network's validation curve (``reports/train/<run>_val.csv``), by run name."""
    curves = {}
    for net, variant in layout.training_runs(params["variants"], params["baselines"]):
        path = layout.DEFAULT.train_curve(net, variant, suffix="_val")
        if not path.is_file():
            raise FineNetError(path, "validation curve not found: run the training stages first")
        curve = read_table(path, CURVE_COLUMNS)
        if curve.empty:
            raise FineNetError(path, "no validation rows")
        curves[layout.run_name(net, variant)] = curve
    return curves


# --- inputs ------------------------------------------------------------------------------------

def read_table(path: Path, columns: dict) -> pd.DataFrame:
    """A CSV of the evaluate stage, checked: required columns present, numbers numeric, ids and
    frame indices never empty, no (method, set, clip, t) twice."""
    if not path.is_file():
        raise FineNetError(path, "not found; run the evaluate stage first")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise FineNetError(path, "empty file (no header); run the evaluate stage first") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise FineNetError(path, f"not a readable CSV ({str(exc).splitlines()[0]})") from None
    absent = [c for c in columns if c not in raw.columns and c not in OPTIONAL]
    if absent:
        raise FineNetError(path, f"missing column{'s' * (len(absent) > 1)} {', '.join(absent)} "
                                 f"(expected {','.join(columns)})")
    out = pd.DataFrame(index=raw.index)
    for col, kind in columns.items():
        if col not in raw.columns:
            out[col] = np.nan
            continue
        values = raw[col].str.strip()
        if kind is str:
            if (values == "").any():
                raise FineNetError(path, f"column '{col}' is empty on line {_line(values == '')}")
            out[col] = values
            continue
        nan = values.isin(NAN_TOKENS)
        number = pd.to_numeric(values.where(~nan), errors="coerce")
        bad = number.isna() & ~nan
        if bad.any():
            raise FineNetError(path, f"column '{col}' has a non-numeric value '{values[bad].iloc[0]}' "
                                     f"on line {_line(bad)}")
        if kind is int:
            wrong = nan | (number != np.round(number))
            if col == "kernel":
                wrong |= number < 1
            if col == "face_found":
                wrong |= ~number.isin([0, 1])
            if wrong.any():
                need = {"kernel": "an integer >= 1", "face_found": "0 or 1"}.get(col, "an integer")
                raise FineNetError(path, f"column '{col}' must be {need}, not '{values[wrong].iloc[0]}' "
                                         f"(line {_line(wrong)})")
            number = number.astype(int)
        out[col] = number
    key = [c for c in ("method", "set", "clip", "t") if c in columns] if "method" in columns else ["step"]
    twice = out.duplicated(key)
    if twice.any() and "method" not in columns:
        raise FineNetError(path, f"step {int(out[twice].step.iloc[0])} appears twice (line {_line(twice)})")
    if twice.any():
        r = out[twice].iloc[0]
        where = f", frame {r.t}" if "t" in columns else ""
        raise FineNetError(path, f"method {r.method}, set {r.set}, clip {r.clip}{where} appears twice "
                                 f"(line {_line(twice)})")
    return out


def _line(mask: pd.Series) -> int:
    """The file's line number of the first True row (line 1 is the header)."""
    return int(np.flatnonzero(mask.to_numpy())[0]) + 2


def read_samples(path: Path) -> list[dict]:
    """The qualitative samples: ``samples/<k>`` groups, in order of k."""
    import h5py

    if not path.is_file():
        raise FineNetError(path, "not found; run the evaluate stage first")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise FineNetError(path, "not a readable HDF5 file") from None
    out = []
    with f:
        if "samples" not in f:
            return out
        group = f["samples"]
        keys = sorted(group, key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k))
        for k in keys:
            where = f"{path}:/samples/{k}"
            g = group[k]
            absent = [a for a in ("set", "clip", "t", "kernel", "methods") if a not in g.attrs]
            if absent or "images" not in g:
                raise FineNetError(where, f"missing {', '.join(absent + ['images'] * ('images' not in g))}")
            try:
                methods = json.loads(_text(g.attrs["methods"]))
            except (ValueError, TypeError):
                methods = None
            if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
                raise FineNetError(where, "attribute 'methods' must be a JSON list of method names")
            images = g["images"]
            if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 \
                    or images.shape[0] != len(methods):
                raise FineNetError(where, f"'images' must be uint8 ({len(methods)}, H, W, 3), one per method; "
                                          f"found {images.dtype} {images.shape}")
            psnr = None
            if "psnr" in g:
                psnr = np.asarray(g["psnr"][()], dtype=float).reshape(-1)
                if psnr.shape != (len(methods),):
                    raise FineNetError(where, f"'psnr' must have {len(methods)} values, found {psnr.shape[0]}")
            out.append(dict(set=_text(g.attrs["set"]), clip=_text(g.attrs["clip"]), t=int(g.attrs["t"]),
                            kernel=int(g.attrs["kernel"]), methods=methods, images=images[()], psnr=psnr))
    return out


def read_clips(path: Path) -> list[dict]:
    """The evaluate stage's runs of consecutive frames on the sets without ground truth:
    [{set, clip, t0, methods, frames (M,K,H,W,3) uint8}], checked."""
    import h5py

    if not path.is_file():
        raise FineNetError(path, "not found; run the evaluate stage first")
    out = []
    try:
        with h5py.File(path, "r") as f:
            for set_name in sorted(f):
                for clip in sorted(f[set_name]):
                    g, where = f[set_name][clip], f"{path} [{set_name}/{clip}]"
                    methods = json.loads(_text(g.attrs["methods"]))
                    frames = g["frames"][()]
                    if frames.dtype != np.uint8 or frames.ndim != 5 or frames.shape[0] != len(methods) or frames.shape[-1] != 3:
                        raise FineNetError(where, f"'frames' must be uint8 ({len(methods)},K,H,W,3), "
                                                  f"found {frames.dtype} {frames.shape}")
                    out.append(dict(set=set_name, clip=clip, t0=int(g.attrs["t0"]), methods=methods, frames=frames))
    except (OSError, KeyError, ValueError) as exc:
        raise FineNetError(path, f"unreadable ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    return out


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --- outputs -----------------------------------------------------------------------------------

def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_csv(path: Path, df: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, lineterminator="\n")


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def index(params: dict, frames: pd.DataFrame, noref: pd.DataFrame, rates: dict,
          qualitative: list[str], paper: dict, seeded: pd.DataFrame | None = None, note: str = "",
          motion: list[str] = ()) -> str:
    m = tables.means(frames if seeded is None else seeded)
    rows = []
    for s in tables.order_sets(set(frames.set)):
        get = lambda method, col: tables.lookup(m, s, method, col)  # noqa: E731
        gain_b = get("finenet/late", "psnr_blurred") - get("blurry", "psnr_blurred")
        change_s = get("finenet/late", "psnr_sharp") - get("blurry", "psnr_sharp")
        ds = paper["datasets"].get(s)
        paper_cell = tables.pair(*tables.paper_entry(paper["table1"].get(ds, {}), "finenet/late")) if ds else tables.DASH
        rows.append([f"`{s}`", tables.pair(get("blurry", "psnr_blurred"), get("blurry", "ssim_blurred")),
                     tables.pair(get("finenet/late", "psnr_blurred"), get("finenet/late", "ssim_blurred"),
                                 get("finenet/late", "psnr_blurred_sd")),
                     "—" if tables.missing(gain_b) else f"{gain_b:+.2f} dB",
                     "—" if tables.missing(change_s) else f"{change_s:+.2f} dB", paper_cell])
    headline = tables.markdown(["Set", "Blurry input, k>1", "FineNet, k>1", "gain, k>1",
                                "change on sharp frames (k=1)", "**paper** FineNet"], rows)
    comb = []
    for s, entry in rates.items():
        beats = [f"than {key[-3:].capitalize()} on {100 * entry[key]['comb']:.1f}%"
                 for key in ("comb_vs_enh", "comb_vs_int") if key in entry]
        if beats:
            comb.append(f"`{s}`: FineNet has the higher PSNR {' and '.join(beats)} of the frames")
    rel = lambda path: path.relative_to(DEFAULT.root).as_posix()  # noqa: E731  (links from report.md)
    quals = "\n\n".join(f"![qualitative samples, {name}]({rel(DEFAULT.qualitative)}/{name}.png)\n\n"
                        f"*Qualitative samples of `{name}`: one row per sample, blurry input | each method | "
                        "ground truth, PSNR under each tile (none on sets without ground truth); cf. "
                        "paper Figs. 8, 9, 11.*" for name in qualitative) or "No qualitative samples stored."
    motion = ("## Fig. 9 in motion\n\nSide-by-side clips of every method on the sets without ground truth "
              "(blurry input first; lossless H.264): "
              + ", ".join(f"[{name}]({rel(DEFAULT.motion_clips)}/{name}.mp4)" for name in motion) + "."
              if motion else "")
    stride = params.get("evaluate", {}).get("frame_stride")
    return f"""# FineNet report

{note}Profile `{params.get('profile', '?')}`; scored frames: every k-th frame of each test clip, k =
`evaluate.frame_stride` = {stride}.
All numbers are computed from `reports/eval/` by the `report` stage, except those in columns labelled
**paper** (transcribed from the paper into `finenet/paper_results.yaml`).

## Headline

PSNR (dB) / SSIM of FineNet (`finenet/late`) against its blurry input.

{headline}
## Tables

- [Table 1](tables/table1.md) ([csv](tables/table1.csv)): every method on every test set, blurred
  frames and sharp frames separately, with the paper's Table 1 alongside.
- [Table 2](tables/table2.md) ([csv](tables/table2.csv)): FOC module × landmark heatmaps ablation in
  both branches, with the paper's Table 2.
- [Table 3](tables/table3.md) ([csv](tables/table3.csv)): enhancement, interpolation, early / late
  fusion, oracle landmarks, 3 vs 4 interpolation frames, with the paper's Table 3.
- [PSNR per clip](tables/per_clip.md): every method clip by clip, best in bold.
- [Landmark NME](tables/nme.md) ([csv](tables/nme.csv)): the landmark detector's error on each
  method's output against on the blurry input.
- [No-reference measures](tables/noref.md) ([csv](tables/noref.csv)): blur effect and face-detection
  rate on the sets without ground truth ({', '.join(f'`{s}`' for s in tables.order_sets(set(noref.set))) or 'none'}).
- [Temporal stability](tables/temporal.md) ([csv](tables/temporal.csv)): Lai et al.'s warping
  error of every method on consecutive frames, against the input's.
- [Paired comparisons](tables/comparisons.md) ([csv](tables/comparisons.csv)): the paper's
  comparisons (FineNet vs Enh / Int / EDVR, FOC, landmarks, late vs early fusion) and each
  deblurring method vs its input, as mean per-frame PSNR differences with paired bootstrap
  intervals; a difference whose interval holds 0 is marked n.s.
- [PSNR per blur kernel length](eval/severity.csv) (csv).
- [Win rates](pies.json) (json): the fractions behind the pies.

## Figures

![pairwise win rates]({rel(DEFAULT.pies_figure)})

*Per-frame PSNR win rates between the enhancement branch, the interpolation branch and their
combination (FineNet), one row per test set, each with the mean PSNR difference on the blurred
frames and its bootstrap interval (n.s.: it holds 0); cf. paper Fig. 10{': ' if comb else ''}{'; '.join(comb)}.*

![PSNR against blur severity]({rel(DEFAULT.severity_figure)})

*Mean PSNR against the motion-blur kernel length of the frame (1 = left sharp), per test set.*

![validation curves]({rel(DEFAULT.curves)})

*Validation PSNR of every trained network every `train.validation.every` steps, on the val set
(clips disjoint from train and test): blurred centre frames for the deblurring networks, every
centre for the combiner (it also learns to keep sharp frames). The star marks the checkpoint kept
(best on validation), which is the one evaluated; a curve still rising at its last step has not
converged.*

{quals}

{motion}
"""


def run(params: dict, clip_ids=None) -> None:
    """Build every table and figure (``clip_ids`` is ignored: the report covers every clip)."""
    frames = read_table(FRAMES, FRAME_COLUMNS)
    if frames.empty:
        raise FineNetError(FRAMES, "no rows; run the evaluate stage first")
    build(params, frames, read_table(NOREF, NOREF_COLUMNS), read_samples(SAMPLES), read_curves(params),
          temporal=read_table(TEMPORAL, TEMPORAL_COLUMNS), clips=read_clips(CLIPS))


def build(params: dict, frames: pd.DataFrame, noref: pd.DataFrame, samples: list, curves: dict,
          out: Outputs = DEFAULT, note: str = "", temporal: pd.DataFrame | None = None,
          clips: list | None = None) -> None:
    """The report from evaluated frames. ``frames`` with a ``seed`` column (several training seeds,
    the bench tier): table cells are means ± sd over seeds; per-frame comparisons, pies and
    severity curves use the seed-averaged frames. ``curves``: run -> validation curve (with a
    ``val_psnr_sd`` column: a band)."""
    paper = tables.paper_results()
    per_frame = tables.seed_mean_frames(frames)
    temporal = pd.DataFrame(columns=list(TEMPORAL_COLUMNS)) if temporal is None else temporal
    for name, (md, csv) in {"table1": tables.table1(frames, paper, temporal), "table2": tables.table2(frames, paper),
                            "table3": tables.table3(frames, paper), "nme": tables.nme_table(per_frame),
                            "noref": tables.noref_table(noref), "temporal": tables.temporal_table(temporal)}.items():
        write_text(out.tables / f"{name}.md", md)
        write_csv(out.tables / f"{name}.csv", csv)
    write_text(out.tables / "per_clip.md", tables.per_clip(per_frame))
    rp = params["report"]
    cmp = stats.comparisons(per_frame, rp["bootstrap_samples"], rp["confidence"], rp["bootstrap_seed"])
    md, csv = tables.comparison_table(cmp, rp["bootstrap_samples"], rp["confidence"])
    write_text(out.tables / "comparisons.md", md)
    write_csv(out.tables / "comparisons.csv", csv)

    rates = tables.win_rates(per_frame)
    for s, entry in rates.items():          # each pie's pair with its interval on the blurred frames
        for key, pie in entry.items():
            r = cmp[(cmp.set == s) & (cmp.comparison == key) & (cmp.group == "blurred")]
            if not r.empty:
                r = r.iloc[0]
                pie["psnr_diff_blurred"] = {"mean": round(float(r.mean_diff), 4), "ci_lo": round(float(r.ci_lo), 4),
                                            "ci_hi": round(float(r.ci_hi), 4), "significant": bool(r.significant)}
    figures.pies(rates, out.pies_figure, paper.get("fig10"))
    write_text(out.pies, json.dumps(rates, indent=2) + "\n")

    sev = tables.severity(per_frame)
    write_csv(out.severity, sev)
    figures.severity(sev, out.severity_figure)
    figures.learning_curves(curves, out.curves)

    by_set: dict[str, list[dict]] = {}
    for sample in samples:
        by_set.setdefault(sample["set"], []).append(sample)
    names = []
    with atomic_dir(out.qualitative) as tmp:
        for s in tables.order_sets(by_set):
            name = safe_name(s)
            figures.qualitative(by_set[s], tmp / f"{name}.png", s)
            names.append(name)
    motion = []
    with atomic_dir(out.motion_clips) as tmp:
        for c in clips or []:
            name = safe_name(f"{c['set']}_{c['clip']}")
            figures.motion_clip(c["frames"], c["methods"], tmp / f"{name}.mp4")
            motion.append(name)
    write_text(out.index, index(params, per_frame, noref, rates, names, paper, frames, note, motion))


if __name__ == "__main__":
    import sys

    from ..cli import main

    sys.exit(main(["report", *sys.argv[1:]]))
