"""The report stage's tables, computed from the evaluate stage's per-frame rows.

Every number is a mean over frames (``frames.csv``: one row per method, set, clip and frame) or a
count of them; the only numbers not computed here are the paper's, read from
``finenet/paper_results.yaml`` and printed in columns labelled "paper". A method or set that is
missing prints "—". Each ``table*`` function returns ``(markdown, csv DataFrame)``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..errors import FineNetError

PAPER_RESULTS = Path(__file__).parents[1] / "paper_results.yaml"
DASH = "—"
YES, NO = "✓", "✗"

# Every method the evaluate stage may write, in the order the tables list them, with its label.
METHODS = {
    "blurry": "Blurry input",
    "deblurgan": "DeblurGAN",
    "umsn": "UMSN",
    "ren": "Ren et al.",
    "srn_deblur": "SRN-Deblur",
    "edvr": "EDVR",
    "superslomo": "Super SloMo (interp.)",
    "dain": "DAIN (interp.)",
    "predeblur": "Pre-deblur (stage one)",
    "enhance/no_foc": "Enh, no FOC",
    "enhance/no_landmarks": "Enh, FOC w/o landmarks",
    "enhance/full": "Enh (enhancement branch)",
    "interp/no_foc": "Int, no FOC",
    "interp/no_landmarks": "Int, FOC w/o landmarks",
    "interp/four_frames": "Int, 4 input frames",
    "interp/full": "Int (interpolation branch)",
    "finenet/early": "FineNet, early fusion",
    "finenet/late": "FineNet",
    "finenet_oracle/late": "FineNet, oracle landmarks",
}
BASELINES = ["deblurgan", "umsn", "ren", "srn_deblur", "edvr", "superslomo", "dain"]
TABLE1 = ["blurry", *BASELINES, "predeblur", "enhance/full", "interp/full", "finenet/late"]
ABLATIONS = {m for m in METHODS if m not in TABLE1}
TABLE_SETS = ["embedded_test", "voxceleb_test", "vw300_test"]   # sets with ground truth, in this order

# Table 2 rows: (FOC, landmarks, variant); Table 3 rows: (method, label, Enh, Int, late, oracle).
TABLE2 = [(False, False, "no_foc"), (True, False, "no_landmarks"), (True, True, "full")]
TABLE3 = [
    ("enhance/full", "Enh", YES, NO, "", ""),
    ("interp/full", "Int (3 frames)", NO, YES, "", ""),
    ("interp/four_frames", "Int (4 frames)", NO, YES, "", ""),
    ("finenet/early", "Enh + Int, early fusion", YES, YES, NO, ""),
    ("finenet/late", "Enh + Int, late fusion (FineNet)", YES, YES, YES, ""),
    ("finenet_oracle/late", "Enh + Int, late fusion, oracle landmarks", YES, YES, YES, YES),
]


# --- ordering and formatting ------------------------------------------------------------------

def order_methods(methods) -> list[str]:
    known = [m for m in METHODS if m in set(methods)]
    return known + sorted(set(methods) - set(METHODS))


def order_sets(sets) -> list[str]:
    known = [s for s in TABLE_SETS if s in set(sets)]
    return known + sorted(set(sets) - set(TABLE_SETS))


def label(method: str) -> str:
    return f"{METHODS.get(method, method)} `{method}`"


def missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NA


def num(x, digits: int) -> str:
    return DASH if missing(x) else f"{float(x):.{digits}f}"


def pair(psnr, ssim, psnr_sd=float("nan")) -> str:
    """A "PSNR / SSIM" cell as the paper prints them (2 and 4 decimals); with the standard
    deviation over training seeds where there are several: "31.28 ± 0.12 / 0.9120"."""
    if missing(psnr) and missing(ssim):
        return DASH
    sd = "" if missing(psnr_sd) else f" ± {float(psnr_sd):.2f}"
    return f"{num(psnr, 2)}{sd} / {num(ssim, 4)}"


def measured(get, group: str) -> str:
    """The cell of one frame group (``blurred``, ``sharp``) from a ``lookup`` of ``means``."""
    return pair(get(f"psnr_{group}"), get(f"ssim_{group}"), get(f"psnr_{group}_sd"))


def markdown(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    """A GitHub-flavoured Markdown table; ``align`` is one letter per column (l, r, c)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = {"l": ":--", "r": "--:", "c": ":-:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule[a] for a in align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def rounded(df: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    out = df.copy()
    for col in out.columns:
        if pd.api.types.is_float_dtype(out[col]):
            out[col] = out[col].round(digits)
    return out


# --- the paper's numbers ---------------------------------------------------------------------

@lru_cache(maxsize=4)
def _paper(path: str) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise FineNetError(path, f"cannot read the paper's reference numbers ({exc.__class__.__name__})") from None
    for key in ("datasets", "table1", "table2", "table3", "fig10"):
        if not isinstance((data or {}).get(key), dict):
            raise FineNetError(path, f"missing section '{key}'")
    return data


def paper_results(path=PAPER_RESULTS) -> dict:
    return _paper(str(path))


def paper_entry(section: dict, method: str) -> tuple[float, float]:
    entry = section.get(method) or {}
    return entry.get("psnr", float("nan")), entry.get("ssim", float("nan"))


# --- means -------------------------------------------------------------------------------------

SHARP_NOTE = ("the frames the blur stage left sharp (k=1: what a method does to a frame that needs no "
              "deblurring; returning the input exactly scores the 60 dB cap)")


def means(frames: pd.DataFrame) -> pd.DataFrame:
    """Per (set, method): frames, PSNR/SSIM means over all frames and over the blurred ones
    (kernel > 1, the deblurring task), and over the frames the blur stage left sharp. Frames with a
    ``seed`` column (one training seed per run, the bench tier): each mean is the mean of the
    per-seed means, ``frames`` counts one seed's, and ``<mean>_sd`` is the standard deviation of
    the per-seed means (ddof 1)."""
    seeded = "seed" in frames.columns and frames.seed.nunique() > 1
    keys = ["set", "method", "seed"] if seeded else ["set", "method"]

    def agg(part: pd.DataFrame, suffix: str) -> pd.DataFrame:
        g = part.groupby(keys)
        per = pd.DataFrame({f"frames{suffix}": g.size(), f"psnr{suffix}": g.psnr.mean(),
                            f"ssim{suffix}": g.ssim.mean()})
        if not seeded:
            return per
        by = per.groupby(level=["set", "method"])
        out = by.mean()
        out[f"frames{suffix}"] = by[f"frames{suffix}"].max()
        for col in (f"psnr{suffix}", f"ssim{suffix}"):
            out[f"{col}_sd"] = by[col].std(ddof=1)
        return out

    out = pd.concat([agg(frames, ""), agg(frames[frames.kernel > 1], "_blurred"),
                     agg(frames[frames.kernel == 1], "_sharp")], axis=1)
    for col in ("frames_blurred", "frames_sharp"):
        out[col] = out[col].fillna(0).astype(int)
    return out


def seed_mean_frames(frames: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, set, clip, frame): the metrics averaged over training seeds (the
    per-frame comparisons, win rates and severity curves of the bench tier read these)."""
    if "seed" not in frames.columns:
        return frames
    keys = ["method", "set", "clip", "t", "kernel"]
    return frames.groupby(keys, sort=False)[["psnr", "ssim", "nme"]].mean().reset_index()


def lookup(m: pd.DataFrame, set_name: str, method: str, col: str):
    try:
        return m.at[(set_name, method), col]
    except KeyError:
        return float("nan")


# --- Table 1 -----------------------------------------------------------------------------------

def warp_means(temporal: pd.DataFrame | None) -> pd.DataFrame:
    """Per (set, method): the warping error ×10³ (``reports/eval/temporal.csv``) averaged over the
    set's clips; with a ``seed`` column, the mean of the per-seed means and ``warp_error_sd``."""
    if temporal is None or temporal.empty:
        return pd.DataFrame(columns=["warp_error", "warp_error_sd"],
                            index=pd.MultiIndex.from_tuples([], names=["set", "method"]))
    if "seed" in temporal.columns and temporal.seed.nunique() > 1:
        per = temporal.groupby(["set", "method", "seed"]).warp_error.mean()
        by = per.groupby(level=["set", "method"])
        return pd.DataFrame({"warp_error": by.mean(), "warp_error_sd": by.std(ddof=1)})
    out = temporal.groupby(["set", "method"]).warp_error.mean().to_frame()
    out["warp_error_sd"] = np.nan
    return out


def warp_cell(w: pd.DataFrame, set_name: str, method: str) -> str:
    value, sd = lookup(w, set_name, method, "warp_error"), lookup(w, set_name, method, "warp_error_sd")
    return num(value, 2) + ("" if missing(sd) else f" ± {float(sd):.2f}")


WARP_NOTE = ("E_warp ×10³: Lai et al.'s (ECCV 2018) warping error of each method's outputs on a run of "
             "consecutive frames of every clip (`evaluate.temporal_frames`), with the flow and occlusion "
             "masks of the sharp frames (`finenet/scoring/temporal.py`); lower is steadier")


def table1(frames: pd.DataFrame, paper: dict, temporal: pd.DataFrame | None = None) -> tuple[str, pd.DataFrame]:
    m = means(frames)
    w = warp_means(temporal)
    datasets = paper["datasets"]
    sets = order_sets(set(frames.set) | set(datasets))
    extra = [x for x in order_methods(set(frames.method)) if x not in TABLE1 and x not in ABLATIONS]
    methods = TABLE1 + extra
    header, rows, records = ["Method"], [], []
    for s in sets:
        header += [f"`{s}` blurred (k>1)", f"`{s}` sharp (k=1)", f"`{s}` E_warp ×10³ ↓"]
        if s in datasets:
            header.append(f"**paper** {datasets[s]}")
    for method in methods:
        row = [label(method)]
        for s in sets:
            get = lambda col: lookup(m, s, method, col)  # noqa: E731
            row += [measured(get, "blurred"), measured(get, "sharp"), warp_cell(w, s, method)]
            ds = datasets.get(s)
            p_psnr, p_ssim = paper_entry(paper["table1"].get(ds, {}), method) if ds else (np.nan, np.nan)
            if ds:
                row.append(pair(p_psnr, p_ssim))
            frames_n = get("frames")
            records.append(dict(method=method, set=s, frames=0 if missing(frames_n) else int(frames_n),
                                psnr=get("psnr"), ssim=get("ssim"),
                                frames_blurred=_int(get("frames_blurred")),
                                psnr_blurred=get("psnr_blurred"), ssim_blurred=get("ssim_blurred"),
                                psnr_blurred_sd=get("psnr_blurred_sd"),
                                frames_sharp=_int(get("frames_sharp")),
                                psnr_sharp=get("psnr_sharp"), ssim_sharp=get("ssim_sharp"),
                                psnr_sharp_sd=get("psnr_sharp_sd"),
                                warp_error=lookup(w, s, method, "warp_error"),
                                warp_error_sd=lookup(w, s, method, "warp_error_sd"),
                                paper_dataset=ds or "", paper_psnr=p_psnr, paper_ssim=p_ssim))
        rows.append(row)
    counts = ", ".join(f"`{s}`: {int(m.loc[s].frames.max())} frames ({int(m.loc[s].frames_blurred.max())} blurred, "
                       f"{int(m.loc[s].frames_sharp.max())} sharp)"
                       for s in sets if s in set(frames.set))
    md = ("# Table 1: comparison with the state of the art\n\n"
          "PSNR (dB) / SSIM on the face crops, means over the scored frames of each test set: the "
          f"blurred frames (kernel length k > 1, the deblurring task) and, separately, {SHARP_NOTE}. "
          f"{WARP_NOTE} ([the temporal table](temporal.md)). **paper** columns: the paper's Table 1 (VoxCeleb ↔ `voxceleb_test`, 300VW ↔ "
          f"`vw300_test`), printed for reference, not computed. {DASH}: not evaluated / not reported. "
          "The paper reports the interpolation baselines (Super SloMo, DAIN) only as \"FineNet is 1.2 dB "
          "higher than the best\" on 300VW.\n\n"
          + markdown(header, rows) + f"\nFrames scored: {counts}.\n")
    return md, rounded(pd.DataFrame(records))


def temporal_table(temporal: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    """Every method's warping error per set, its change against the blurry input (positive: the
    method's output flickers more than its input), and the sharp frames' own (the floor)."""
    cols = ["set", "method", "clips", "warp_error", "warp_error_sd", "vs_input"]
    intro = (f"# Temporal stability\n\n{WARP_NOTE}. `sharp`: the sharp frames' own warping error, the "
             "floor that the flow's errors leave.\n\n")
    if temporal.empty:
        return intro + "No set with ground truth was evaluated (`temporal.csv` has no rows).\n", pd.DataFrame(columns=cols)
    w = warp_means(temporal)
    records, sections = [], []
    for s in order_sets(set(temporal.set)):
        base = lookup(w, s, "blurry", "warp_error")
        part = temporal[temporal.set == s]
        rows, worse = [], []
        for method in [*order_methods(set(part.method) - {"sharp"}), *(["sharp"] if "sharp" in set(part.method) else [])]:
            value = lookup(w, s, method, "warp_error")
            diff = value - base
            if method not in ("blurry", "sharp") and diff > 0:
                worse.append(f"`{method}` (+{diff:.2f})")
            rows.append([label(method) if method != "sharp" else "Sharp frames `sharp`", warp_cell(w, s, method),
                         DASH if method in ("blurry", "sharp") else f"{diff:+.2f}"])
            records.append(dict(set=s, method=method, clips=int(part.loc[part.method == method, "clip"].nunique()),
                                warp_error=value, warp_error_sd=lookup(w, s, method, "warp_error_sd"),
                                vs_input=np.nan if method in ("blurry", "sharp") else diff))
        more = ("Output flickers more than the input: " + ", ".join(worse) + "." if worse
                else "No method's output flickers more than its input.")
        sections.append(f"## `{s}`\n\n" + markdown(["Method", "E_warp ×10³ ↓", "vs input"], rows) + f"\n{more}\n")
    return intro + "\n".join(sections), rounded(pd.DataFrame(records, columns=cols))


def _int(x) -> int:
    return 0 if missing(x) else int(x)


# --- Table 2 -----------------------------------------------------------------------------------

def table2(frames: pd.DataFrame, paper: dict) -> tuple[str, pd.DataFrame]:
    m = means(frames)
    p, ds = paper["table2"], paper["table2"].get("dataset", "300VW")
    sections, records = [], []
    for s in order_sets(set(frames.set)):
        rows = []
        for foc, lm, variant in TABLE2:
            row = [YES if foc else NO, YES if lm else NO]
            rec = dict(set=s, foc=foc, landmarks=lm)
            for net in ("enhance", "interp"):
                method = f"{net}/{variant}"
                get = lambda col: lookup(m, s, method, col)  # noqa: E731
                p_psnr, p_ssim = paper_entry(p, method)
                row += [measured(get, "blurred"), measured(get, "sharp"),
                        pair(p_psnr, p_ssim)]
                rec.update({f"{net}_method": method, f"{net}_frames": _int(get("frames")),
                            f"{net}_psnr": get("psnr"), f"{net}_ssim": get("ssim"),
                            f"{net}_psnr_blurred": get("psnr_blurred"),
                            f"{net}_ssim_blurred": get("ssim_blurred"),
                            f"{net}_psnr_sharp": get("psnr_sharp"), f"{net}_ssim_sharp": get("ssim_sharp"),
                            f"{net}_paper_psnr": p_psnr, f"{net}_paper_ssim": p_ssim})
            rows.append(row)
            records.append(rec)
        header = ["FOC", "Landmarks", "Enhancement k>1", "Enhancement sharp", f"Enhancement **paper** {ds}",
                  "Interpolation k>1", "Interpolation sharp", f"Interpolation **paper** {ds}"]
        sections.append(f"## `{s}`\n\n" + markdown(header, rows, "cc" + "r" * 6))
    md = ("# Table 2: FOC module and landmark heatmaps, both branches\n\n"
          "PSNR (dB) / SSIM of each branch on its own (`enhance/<variant>`, `interp/<variant>`): no FOC "
          "= `no_foc` (EDVR's plain offsets), FOC w/o landmarks = `no_landmarks`, FOC with landmarks = "
          f"`full`. Blurred frames (k>1) and, separately, {SHARP_NOTE}. **paper**: the paper's Table 2 ({ds}), "
          f"for reference. {DASH}: not evaluated.\n\n" + "\n".join(sections))
    return md, rounded(pd.DataFrame(records))


# --- Table 3 -----------------------------------------------------------------------------------

def table3(frames: pd.DataFrame, paper: dict) -> tuple[str, pd.DataFrame]:
    m = means(frames)
    p, ds = paper["table3"], paper["table3"].get("dataset", "300VW")
    sections, records = [], []
    for s in order_sets(set(frames.set)):
        rows = []
        for method, name, enh, inp, late, oracle in TABLE3:
            get = lambda col: lookup(m, s, method, col)  # noqa: E731
            p_psnr, p_ssim = paper_entry(p, method)
            rows.append([f"{name} `{method}`", enh, inp, late, oracle, measured(get, "blurred"),
                         measured(get, "sharp"), pair(p_psnr, p_ssim)])
            records.append(dict(set=s, method=method, model=name, enh=enh == YES, int=inp == YES,
                                late_fusion={YES: True, NO: False}.get(late), oracle_landmarks=oracle == YES,
                                frames=_int(get("frames")), psnr=get("psnr"), ssim=get("ssim"),
                                psnr_blurred=get("psnr_blurred"), ssim_blurred=get("ssim_blurred"),
                                psnr_sharp=get("psnr_sharp"), ssim_sharp=get("ssim_sharp"),
                                paper_psnr=p_psnr, paper_ssim=p_ssim))
        header = ["Model", "Enh", "Int", "Late fusion", "Oracle landmarks", "PSNR / SSIM k>1",
                  "PSNR / SSIM sharp", f"**paper** {ds}"]
        sections.append(f"## `{s}`\n\n" + markdown(header, rows, "lcccc" + "r" * 3))
    md = ("# Table 3: enhancement–interpolation fusion\n\n"
          "PSNR (dB) / SSIM of each branch alone, of their early and late fusion (late = FineNet), of "
          "FineNet fed landmark heatmaps from the sharp frames (oracle), and of the interpolation branch "
          f"with four instead of three input frames per side. Blurred frames (k>1) and, separately, {SHARP_NOTE}. "
          f"**paper**: the paper's Table 3 and Sec. 4.4 ({ds}; the 4-frame row is from the text), for "
          f"reference. {DASH}: not evaluated.\n\n" + "\n".join(sections))
    df = pd.DataFrame(records)
    df["late_fusion"] = df["late_fusion"].astype(object)
    return md, rounded(df)


# --- per clip ------------------------------------------------------------------------------------

def per_clip(frames: pd.DataFrame) -> str:
    sections = []
    for s in order_sets(set(frames.set)):
        part = frames[frames.set == s]
        table = part.pivot_table(index="clip", columns="method", values="psnr", aggfunc="mean")
        methods = order_methods(table.columns)
        table = table[methods].sort_index()
        shown = table.round(2)
        best = shown.max(axis=1)
        wins = {mth: 0 for mth in methods}
        rows = []
        for clip, values in shown.iterrows():
            cells = []
            for mth in methods:
                v = values[mth]
                is_best = not missing(v) and v == best[clip]
                wins[mth] += is_best
                cells.append(f"**{v:.2f}**" if is_best else num(v, 2))
            rows.append([f"`{clip}`", *cells])
        rows.append(["*clips best*", *[str(wins[mth]) for mth in methods]])
        n = part.groupby("clip").t.nunique()
        per = f"{n.min()}" if n.min() == n.max() else f"{n.min()}–{n.max()}"
        sections.append(f"## `{s}` ({len(table)} clip{'s' * (len(table) != 1)}, {per} frames scored per clip)\n\n"
                        + markdown(["Clip", *[f"`{mth}`" for mth in methods]], rows))
    return ("# PSNR per clip\n\n"
            "Mean PSNR (dB) over the scored frames of each clip, for every method evaluated on the set; "
            "the best of each clip in **bold** (ties all bold); the last row counts the clips on which each "
            f"method is best. {DASH}: the method was not evaluated on that clip. Compare FineNet "
            "(`finenet/late`) with the input (`blurry`) and its branches (`enhance/full`, `interp/full`).\n\n"
            + "\n".join(sections))


# --- landmark NME ------------------------------------------------------------------------------

def nme_table(frames: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    cols = ["set", "method", "frames", "nme", "nme_blurry", "delta", "better_than_blurry",
            "frames_blurred", "nme_blurred", "nme_blurry_blurred"]
    intro = ("# Landmark NME on each method's output\n\n"
             "The landmark detector run on each method's output, its normalised mean error against the "
             "ground-truth landmarks (lower is better), next to the same detector on the blurry input over "
             "the same frames: Δ = method − blurry; *better* = fraction of frames where the method's NME is "
             "below the input's. Also over the blurred frames only (k>1).\n\n")
    if "nme" not in frames or frames.nme.isna().all():
        return intro + ("No set with ground-truth landmarks: `frames.csv` has no NME value (empty or "
                        "no `nme` column).\n"), pd.DataFrame(columns=cols)
    records, sections = [], []
    for s in order_sets(set(frames.set)):
        part = frames[(frames.set == s) & frames.nme.notna()]
        if part.empty:
            continue
        base = part[part.method == "blurry"][["clip", "t", "nme"]].rename(columns={"nme": "nme_blurry"})
        rows = []
        for method in order_methods(set(part.method)):
            mine = part[part.method == method]
            joined = mine.merge(base, on=["clip", "t"], how="left")
            paired = joined[joined.nme_blurry.notna()]
            blurred = joined[joined.kernel > 1]
            rec = dict(set=s, method=method, frames=int(len(mine)), nme=mine.nme.mean(),
                       nme_blurry=paired.nme_blurry.mean() if len(paired) else np.nan,
                       delta=(paired.nme - paired.nme_blurry).mean() if len(paired) else np.nan,
                       better_than_blurry=(paired.nme < paired.nme_blurry).mean() if len(paired) else np.nan,
                       frames_blurred=int(len(blurred)), nme_blurred=blurred.nme.mean() if len(blurred) else np.nan,
                       nme_blurry_blurred=blurred.nme_blurry.mean() if len(blurred) else np.nan)
            if method == "blurry":
                rec.update(delta=np.nan, better_than_blurry=np.nan)
            records.append(rec)
            rows.append([label(method), str(rec["frames"]), num(rec["nme"], 4), num(rec["nme_blurry"], 4),
                         _signed(rec["delta"]), _pct(rec["better_than_blurry"]), num(rec["nme_blurred"], 4),
                         num(rec["nme_blurry_blurred"], 4)])
        sections.append(f"## `{s}`\n\n" + markdown(
            ["Method", "Frames", "NME", "NME blurry input", "Δ", "better", "NME k>1", "blurry k>1"], rows))
    return intro + "\n".join(sections), rounded(pd.DataFrame(records, columns=cols), 5)


def _signed(x) -> str:
    return DASH if missing(x) else f"{float(x):+.4f}"


def _pct(x) -> str:
    return DASH if missing(x) else f"{100 * float(x):.1f}%"


# --- sets without ground truth -----------------------------------------------------------------

def noref_table(noref: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    cols = ["set", "method", "frames", "blur_effect", "face_found"]
    intro = ("# Sets without ground truth (real blur)\n\n"
             "No-reference measures on each method's output: scikit-image's `blur_effect` (0 = sharp, "
             "1 = blurred; lower is sharper) and the fraction of frames on which the landmark detector "
             "finds a face. Best per set in **bold**.\n\n")
    if noref.empty:
        return intro + "No set without ground truth was evaluated (`noref.csv` has no rows).\n", \
            pd.DataFrame(columns=cols)
    g = noref.groupby(["set", "method"])
    stats = pd.DataFrame({"frames": g.size(), "blur_effect": g.blur_effect.mean(),
                          "face_found": g.face_found.mean()}).reset_index()
    records, sections = [], []
    for s in order_sets(set(stats.set)):
        part = stats[stats.set == s].set_index("method")
        lo, hi = part.blur_effect.round(4).min(), part.face_found.round(3).max()
        rows = []
        for method in order_methods(part.index):
            r = part.loc[method]
            be, ff = num(r.blur_effect, 4), _pct(r.face_found)
            rows.append([label(method), str(int(r.frames)),
                         f"**{be}**" if round(r.blur_effect, 4) == lo else be,
                         f"**{ff}**" if round(r.face_found, 3) == hi else ff])
            records.append(dict(set=s, method=method, frames=int(r.frames), blur_effect=r.blur_effect,
                                face_found=r.face_found))
        sections.append(f"## `{s}`\n\n" + markdown(["Method", "Frames", "blur_effect ↓", "face found ↑"], rows))
    return intro + "\n".join(sections), rounded(pd.DataFrame(records, columns=cols))


# --- paired bootstrap intervals ----------------------------------------------------------------

def comparison_table(cmp: pd.DataFrame, samples: int, confidence: float) -> tuple[str, pd.DataFrame]:
    """The paper's comparisons as mean per-frame PSNR differences with paired bootstrap intervals
    (``finenet.reporting.stats``), blurred and sharp frames in separate columns."""
    from .stats import COMPARISONS, describe

    level = f"{100 * confidence:g} %"
    sections = []
    for s in order_sets(set(cmp.set)):
        part = cmp[cmp.set == s]
        rows = []
        for key, label_text, a, b in COMPARISONS:
            cells = []
            for group in ("blurred", "sharp"):
                r = part[(part.comparison == key) & (part.group == group)]
                cells.append(DASH if r.empty else
                             f"{describe(*r[['mean_diff', 'ci_lo', 'ci_hi', 'significant']].iloc[0])} "
                             f"({int(r.frames.iloc[0])})")
            if cells != [DASH, DASH]:
                rows.append([label_text, f"`{a}` − `{b}`", *cells])
        header = ["Comparison", "methods", "blurred frames (k>1): mean [CI] (frames)", "sharp frames (k=1)"]
        sections.append(f"## `{s}`\n\n" + markdown(header, rows, "llrr"))
    md = ("# Paired comparisons with confidence intervals\n\n"
          f"Mean per-frame PSNR difference (dB) of the first method minus the second on the same frames, "
          f"with its {level} paired bootstrap interval ({samples} resamples of the frames); **n.s.**: "
          "the interval holds 0, the difference is not significant. Frames of one clip are correlated, "
          "so these frame-level intervals say what these frames support, not what another set of clips "
          f"would show. {DASH}: a method not evaluated.\n\n" + "\n".join(sections))
    return md, rounded(cmp)


# --- PSNR against blur severity ----------------------------------------------------------------

def severity(frames: pd.DataFrame) -> pd.DataFrame:
    g = frames.groupby(["set", "method", "kernel"])
    out = pd.DataFrame({"frames": g.size(), "psnr": g.psnr.mean(), "ssim": g.ssim.mean()}).reset_index()
    set_rank = {s: i for i, s in enumerate(order_sets(set(out.set)))}
    method_rank = {mth: i for i, mth in enumerate(order_methods(set(out.method)))}
    out = out.assign(_s=out.set.map(set_rank), _m=out.method.map(method_rank))
    out = out.sort_values(["_s", "_m", "kernel"]).drop(columns=["_s", "_m"]).reset_index(drop=True)
    out["kernel"] = out["kernel"].astype(int)
    return rounded(out)


# --- pairwise win rates (Fig. 10) --------------------------------------------------------------

PAIRS = [("enh_vs_int", ("enh", "enhance/full"), ("int", "interp/full")),
         ("comb_vs_enh", ("comb", "finenet/late"), ("enh", "enhance/full")),
         ("comb_vs_int", ("comb", "finenet/late"), ("int", "interp/full"))]


def win_rates(frames: pd.DataFrame) -> dict:
    """Per set and pair: the fraction of frames (matched by clip and frame) on which each method has
    the higher PSNR, and the fraction of ties (equal PSNR to the 4 decimals frames.csv keeps)."""
    out = {}
    for s in order_sets(set(frames.set)):
        part = frames[frames.set == s]
        entry = {}
        for key, (a, ma), (b, mb) in PAIRS:
            fa = part[part.method == ma][["clip", "t", "psnr"]]
            fb = part[part.method == mb][["clip", "t", "psnr"]]
            both = fa.merge(fb, on=["clip", "t"], suffixes=("_a", "_b")).dropna(subset=["psnr_a", "psnr_b"])
            if both.empty:
                continue
            pa, pb = both.psnr_a.round(4).to_numpy(), both.psnr_b.round(4).to_numpy()
            n = len(both)
            entry[key] = {"frames": n, a: round(float(np.sum(pa > pb)) / n, 4),
                          b: round(float(np.sum(pb > pa)) / n, 4), "tie": round(float(np.sum(pa == pb)) / n, 4)}
        out[s] = entry
    return out
