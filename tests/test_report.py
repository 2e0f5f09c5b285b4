"""The report stage on synthetic evaluate outputs with planted numbers: tables carry the computed
means, win rates count ties, missing methods print "—", the paper columns hold the paper's numbers
(checked against the paper's text), figures are valid PNGs, re-runs are byte-identical, and bad
input is one FineNetError naming the file."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from finenet.stages import report
from finenet.reporting import tables
from finenet.errors import FineNetError
from finenet.params import ROOT, load_params

PAPER_TEXT = Path("/work/shared/paper/finenet-paper.txt")
DASH = "—"

# vw300_test: 2 clips x 4 frames, kernels 1 (sharp), 5, 9, 11. Planted per-frame PSNRs:
#   enh vs int:  enh wins 5, int wins 2, 1 tie      comb vs enh: comb wins 7, 1 tie
#   comb vs int: comb wins all 8
KERNELS = [1, 5, 9, 11]
PLANTED = {
    "enhance/full": [30, 31, 32, 33, 34, 35, 36, 37],        # mean 33.5, blurred mean 34.0
    "interp/full": [29, 30, 32, 34, 35, 33, 35, 36],         # mean 33.0
    "finenet/late": [31, 31, 33, 35, 36, 36, 37, 39],        # mean 34.75, blurred mean 211/6
    "blurry": [60, 25, 24, 23, 60, 26, 25, 23],         # mean 33.25
}
SSIM = {"enhance/full": 0.95, "interp/full": 0.94, "finenet/late": 0.96, "blurry": 0.80}
OTHERS = ["predeblur", "enhance/no_foc", "enhance/no_landmarks", "interp/no_foc", "interp/no_landmarks",
          "interp/four_frames", "finenet/early", "finenet_oracle/late", "edvr", "dain"]


def frame_rows() -> pd.DataFrame:
    rows = []
    frames = [(clip, t, KERNELS[t]) for clip in ("vw_a", "vw_b") for t in range(4)]
    for method in list(PLANTED) + OTHERS:
        psnr = PLANTED[method] if method in PLANTED else \
            [27.0 + 0.25 * OTHERS.index(method) + 0.1 * i for i in range(8)]
        for i, (clip, t, k) in enumerate(frames):
            nme = {"blurry": 0.10, "finenet/late": 0.06 if i < 6 else 0.12}.get(method, 0.08)
            rows.append(dict(method=method, set="vw300_test", clip=clip, t=t, kernel=k, psnr=psnr[i],
                             ssim=SSIM.get(method, 0.9), nme=nme))
    # voxceleb_test: no interpolation branch, no baselines; no landmark ground truth
    for method, base in (("blurry", 24.0), ("enhance/full", 30.0), ("finenet/late", 31.0)):
        for t in range(4):
            rows.append(dict(method=method, set="voxceleb_test", clip="vox_0", t=t, kernel=KERNELS[t],
                             psnr=base + t, ssim=0.9, nme=np.nan))
    # embedded_test: everything at 28 except FineNet at 29 on clip e1
    for method in ("blurry", "enhance/full", "interp/full", "finenet/late"):
        for clip in ("e0", "e1"):
            for t in (0, 3):
                psnr = 29.0 if (method == "finenet/late" and clip == "e1") else 28.0
                rows.append(dict(method=method, set="embedded_test", clip=clip, t=t, kernel=KERNELS[t],
                                 psnr=psnr, ssim=0.85, nme=np.nan))
    return pd.DataFrame(rows)


def noref_rows() -> pd.DataFrame:
    rows = [("blurry", "embedded_realblur", "r0", 0, 0.5, 1), ("blurry", "embedded_realblur", "r0", 1, 0.6, 0),
            ("finenet/late", "embedded_realblur", "r0", 0, 0.3, 1),
            ("finenet/late", "embedded_realblur", "r0", 1, 0.4, 1),
            ("blurry", "youtube", "y0", 0, 0.7, 0)]
    return pd.DataFrame(rows, columns=["method", "set", "clip", "t", "blur_effect", "face_found"])


def write_samples(path: Path) -> None:
    rng = np.random.default_rng(0)
    specs = [("vw300_test", "vw_a", 2, 9, ["blurry", "enhance/full", "interp/full", "finenet/late", "sharp"]),
             ("embedded_realblur", "r0", 1, 1, ["blurry", "finenet/late"]),
             ("vw300_test", "vw_b", 3, 11, ["blurry", "enhance/full", "interp/full", "finenet/late", "sharp"])]
    with h5py.File(path, "w") as f:
        for k, (s, clip, t, kernel, methods) in enumerate(specs):
            g = f.create_group(f"samples/{k}")
            g.attrs.update(set=s, clip=clip, t=t, kernel=kernel, methods=json.dumps(methods))
            g["images"] = rng.integers(0, 256, (len(methods), 24, 24, 3), dtype=np.uint8)
            g["psnr"] = [np.nan if m in ("blurry", "sharp") or s == "embedded_realblur" else 30.0 + i
                         for i, m in enumerate(methods)]


# warping error x 10^3 per clip: enhance/full flickers more than its input, FineNet less
WARP = {"blurry": (2.0, 2.4), "enhance/full": (3.0, 3.4), "finenet/late": (1.5, 1.9), "sharp": (0.5, 0.7)}
CLIP_METHODS = ["blurry", "finenet/late", "edvr"]


def temporal_rows() -> pd.DataFrame:
    return pd.DataFrame([dict(method=m, set="vw300_test", clip=c, t0=0, frames=4, warp_error=v[k])
                         for m, v in WARP.items() for k, c in enumerate(("vw_a", "vw_b"))])


def clip_frames() -> np.ndarray:
    """(3 methods, 4 frames, 24x32, RGB): each method a flat grey that brightens over the run."""
    base = np.array([60, 120, 180], dtype=np.uint8)[:, None, None, None, None]
    ramp = (10 * np.arange(4, dtype=np.uint8))[None, :, None, None, None]
    return np.broadcast_to(base + ramp, (3, 4, 24, 32, 3)).copy()


def write_clips(path: Path) -> None:
    with h5py.File(path, "w") as f:
        g = f.create_group("embedded_realblur/r0")
        g.attrs.update(t0=3, methods=json.dumps(CLIP_METHODS))
        g["frames"] = clip_frames()


def write_curves(root: Path) -> None:
    """A validation curve for every run params.yaml trains (rising, then flat)."""
    from finenet.layout import Layout, training_runs

    raw = load_params(ROOT / "params.yaml")
    for k, (net, variant) in enumerate(training_runs(raw["variants"], raw["baselines"])):
        path = Layout(root).train_curve(net, variant, suffix="_val")
        path.parent.mkdir(parents=True, exist_ok=True)
        steps = [100, 200, 300]
        path.write_text("step,val_psnr\n" + "".join(f"{s},{28 + k * 0.1 + min(s, 200) / 100:.4f}\n" for s in steps))


def write_inputs(root: Path, frames: pd.DataFrame | None = None) -> None:
    ev = root / "reports" / "eval"
    ev.mkdir(parents=True, exist_ok=True)
    (frame_rows() if frames is None else frames).to_csv(ev / "frames.csv", index=False, float_format="%.4f")
    noref_rows().to_csv(ev / "noref.csv", index=False)
    write_samples(ev / "samples.h5")
    temporal_rows().to_csv(ev / "temporal.csv", index=False)
    write_clips(ev / "clips.h5")
    write_curves(root)


def test_learning_curves_figure_and_a_bad_curve_is_one_error(built, tmp_path, params):
    assert (built / "reports/figures/learning_curves.png").stat().st_size > 5000
    assert "figures/learning_curves.png" in (built / "reports/report.md").read_text()
    write_inputs(tmp_path)
    bad = tmp_path / "reports/train/enhance_full_val.csv"
    bad.write_text("step,val_psnr\n100,28.1\n100,28.3\n")
    with pytest.raises(FineNetError, match="step 100 appears twice"):
        run_in(tmp_path, params)
    bad.unlink()
    with pytest.raises(FineNetError, match="enhance_full_val.csv: validation curve not found"):
        run_in(tmp_path, params)


@pytest.fixture(scope="module")
def params():
    return load_params(ROOT / "params.yaml")


def run_in(root: Path, params) -> None:
    cwd = os.getcwd()
    os.chdir(root)
    try:
        report.run(params)
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def built(tmp_path_factory, params) -> Path:
    """One report built from the planted inputs (the checks below only read it)."""
    root = tmp_path_factory.mktemp("report")
    write_inputs(root)
    run_in(root, params)
    return root


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def md_row(text: str, key: str, section: str | None = None) -> list[str]:
    """The cells of the Markdown row whose first cell contains ``key`` (in ``## `section` `` if given)."""
    if section is not None:
        text = text.split(f"## `{section}`")[1].split("\n## ")[0]
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and key in cells[0]:
            return cells
    raise AssertionError(f"no row {key!r}")


def md_column(text: str, row_key: str, header: str, section: str | None = None) -> str:
    body = text.split(f"## `{section}`")[1].split("\n## ")[0] if section else text
    head = next(ln for ln in body.splitlines() if ln.startswith("|"))
    cols = [c.strip() for c in head.strip().strip("|").split("|")]
    return md_row(body, row_key)[cols.index(header)]


def test_outputs_exist(built):
    for path in report.outputs():
        assert (built / path).exists(), path
    assert not [p for p in built.rglob("*") if ".tmp" in p.name]
    index = (built / "reports/report.md").read_text()
    for target in re.findall(r"\]\(([^)]+)\)", index):
        assert (built / "reports" / target).is_file(), target


def test_table1_means_and_paper_columns(built):
    md = (built / "reports/tables/table1.md").read_text()
    assert md_column(md, "`finenet/late`", "`vw300_test` sharp (k=1)") == "33.50 / 0.9600"
    assert md_column(md, "`finenet/late`", "`vw300_test` blurred (k>1)") == "35.17 / 0.9600"
    assert md_column(md, "`enhance/full`", "`vw300_test` sharp (k=1)") == "32.00 / 0.9500"
    assert md_column(md, "`enhance/full`", "`vw300_test` blurred (k>1)") == "34.00 / 0.9500"
    assert md_column(md, "`interp/full`", "`vw300_test` sharp (k=1)") == "32.00 / 0.9400"
    assert md_column(md, "`finenet/late`", "`embedded_test` sharp (k=1)") == "28.50 / 0.8500"
    # the paper's numbers (Table 1) in the paper columns, none for embedded_test
    assert md_column(md, "`finenet/late`", "**paper** 300VW") == "38.22 / 0.9700"
    assert md_column(md, "`finenet/late`", "**paper** VoxCeleb") == "37.04 / 0.9612"
    assert md_column(md, "`edvr`", "**paper** 300VW") == "29.12 / 0.8775"
    assert "**paper** embedded" not in md
    # missing methods: UMSN not evaluated (paper number still shown), Super SloMo nowhere
    assert md_column(md, "`umsn`", "`vw300_test` sharp (k=1)") == DASH
    assert md_column(md, "`umsn`", "**paper** 300VW") == "31.35 / 0.9538"
    assert set(md_row(md, "`superslomo`")[1:]) == {DASH}
    assert md_column(md, "`interp/full`", "`voxceleb_test` sharp (k=1)") == DASH

    csv = pd.read_csv(built / "reports/tables/table1.csv")
    row = csv[(csv.method == "finenet/late") & (csv.set == "vw300_test")].iloc[0]
    assert row.psnr == pytest.approx(34.75) and row.psnr_blurred == pytest.approx(211 / 6, abs=1e-4)
    assert row.frames == 8 and row.frames_blurred == 6
    assert (row.paper_dataset, row.paper_psnr, row.paper_ssim) == ("300VW", 38.22, 0.97)
    emb = csv[(csv.method == "finenet/late") & (csv.set == "embedded_test")].iloc[0]
    assert np.isnan(emb.paper_psnr)


def test_table2_and_table3(built):
    md2 = (built / "reports/tables/table2.md").read_text()
    full = [ln for ln in md2.split("## `vw300_test`")[1].splitlines() if ln.startswith("| ✓ | ✓ |")][0]
    assert "34.00 / 0.9500 | 32.00 / 0.9500" in full and "32.00 / 0.9400" in full
    assert "37.81 / 0.9649" in full and "36.87 / 0.9633" in full        # paper, Table 2
    vox = [ln for ln in md2.split("## `voxceleb_test`")[1].splitlines() if ln.startswith("| ✓ | ✓ |")][0]
    cells = [c.strip() for c in vox.strip("|").split("|")]
    assert cells[2] == "32.00 / 0.9000" and cells[3] == "30.00 / 0.9000"    # enhance/full k>1: 31..33; k=1: 30
    assert cells[5] == DASH                                                 # no interp on VoxCeleb
    csv2 = pd.read_csv(built / "reports/tables/table2.csv")
    r = csv2[(csv2.set == "vw300_test") & csv2.foc & ~csv2.landmarks].iloc[0]
    assert r.enhance_method == "enhance/no_landmarks" and r.enhance_paper_psnr == 37.37

    md3 = (built / "reports/tables/table3.md").read_text()
    assert md_column(md3, "`finenet/late`", "PSNR / SSIM sharp", "vw300_test") == "33.50 / 0.9600"
    assert md_column(md3, "`finenet_oracle/late`", "**paper** 300VW", "vw300_test") == "38.22 / 0.9698"
    assert md_column(md3, "`interp/four_frames`", "**paper** 300VW", "vw300_test") == "36.83 / 0.9632"
    assert md_column(md3, "`finenet_oracle/late`", "PSNR / SSIM sharp", "voxceleb_test") == DASH


def test_per_clip_bold_best(built):
    md = (built / "reports/tables/per_clip.md").read_text()
    head = next(ln for ln in md.split("## `embedded_test`")[1].splitlines() if ln.startswith("|"))
    cols = [c.strip() for c in head.strip("|").split("|")]
    e1 = md_row(md, "`e1`", "embedded_test")
    assert e1[cols.index("`finenet/late`")] == "**29.00**"
    assert e1[cols.index("`blurry`")] == "28.00"
    e0 = md_row(md, "`e0`", "embedded_test")                              # a 4-way tie: all bold
    assert all(c == "**28.00**" for c in e0[1:])
    assert md_row(md, "*clips best*", "embedded_test")[cols.index("`finenet/late`")] == "2"


def test_win_rates_with_ties(built):
    rates = json.loads((built / "reports/pies.json").read_text())
    ci = rates["vw300_test"]["comb_vs_enh"].pop("psnr_diff_blurred")     # FineNet - Enh, k > 1
    assert ci["mean"] == pytest.approx(7 / 6, abs=1e-4) and ci["ci_lo"] > 0 and ci["significant"]
    for entry in rates.values():
        for pie in entry.values():
            pie.pop("psnr_diff_blurred", None)
    assert rates["vw300_test"]["enh_vs_int"] == {"frames": 8, "enh": 0.625, "int": 0.25, "tie": 0.125}
    assert rates["vw300_test"]["comb_vs_enh"] == {"frames": 8, "comb": 0.875, "enh": 0.0, "tie": 0.125}
    assert rates["vw300_test"]["comb_vs_int"] == {"frames": 8, "comb": 1.0, "int": 0.0, "tie": 0.0}
    assert rates["embedded_test"]["enh_vs_int"]["tie"] == 1.0
    assert rates["embedded_test"]["comb_vs_enh"] == {"frames": 4, "comb": 0.5, "enh": 0.0, "tie": 0.5}
    assert set(rates["voxceleb_test"]) == {"comb_vs_enh"}                  # no interp/full there


def test_comparisons_table(built):
    """Paired intervals in the report: FineNet - Enh on vw300's blurred frames (+1.17 dB, all
    six differences >= 0) is significant; embedded_test's sharp frames (all equal) are not."""
    md = (built / "reports/tables/comparisons.md").read_text()
    row = md_row(md, "FineNet − Enh", "vw300_test")
    assert row[2].startswith("+1.17 dB [") and "n.s." not in row[2] and row[2].endswith("(6)")
    cmp = pd.read_csv(built / "reports/tables/comparisons.csv")
    same = cmp[(cmp.set == "embedded_test") & (cmp.comparison == "enh_vs_int")]
    assert (same.mean_diff == 0).all() and not same.significant.any()


def test_nme_and_noref(built):
    md = (built / "reports/tables/nme.md").read_text()
    row = md_row(md, "`finenet/late`", "vw300_test")
    assert row[1:6] == ["8", "0.0750", "0.1000", "-0.0250", "75.0%"]
    assert "`embedded_test`" not in md and "`voxceleb_test`" not in md    # no landmark ground truth
    nme = pd.read_csv(built / "reports/tables/nme.csv")
    assert set(nme.set) == {"vw300_test"}

    md = (built / "reports/tables/noref.md").read_text()
    assert md_row(md, "`finenet/late`", "embedded_realblur")[1:] == ["2", "**0.3500**", "**100.0%**"]
    assert md_row(md, "`blurry`", "embedded_realblur")[1:] == ["2", "0.5500", "50.0%"]
    assert "## `youtube`" in md
    csv = pd.read_csv(built / "reports/tables/noref.csv")
    assert csv[(csv.set == "youtube")].face_found.tolist() == [0.0]


def test_severity(built):
    sev = pd.read_csv(built / "reports/eval/severity.csv")
    r = sev[(sev.set == "vw300_test") & (sev.method == "finenet/late")].set_index("kernel").psnr
    assert r.to_dict() == {1: 33.5, 5: 33.5, 9: 35.0, 11: 37.0}


def test_figures_are_pngs(built):
    from PIL import Image

    pngs = [built / "reports/figures/fig10_pies.png", built / "reports/figures/psnr_vs_severity.png",
            built / "reports/figures/qualitative/vw300_test.png",
            built / "reports/figures/qualitative/embedded_realblur.png"]
    for path in pngs:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            assert im.format == "PNG" and min(im.size) > 100
            assert "Software" not in im.info
    assert sorted(p.name for p in (built / "reports/figures/qualitative").iterdir()) == \
        ["embedded_realblur.png", "vw300_test.png"]


def test_paper_numbers_match_paper_text():
    if not PAPER_TEXT.is_file():
        pytest.skip("paper text not available")
    text = PAPER_TEXT.read_text(encoding="utf-8")
    paper = yaml.safe_load(tables.PAPER_RESULTS.read_text())
    names = {"deblurgan": "DeblurGAN [12]", "umsn": "UMSN [29]", "ren": "Ren et al. [15]",
             "srn_deblur": "SRN-Deblur [22]", "edvr": "EDVR [26]", "finenet/late": "FineNet (proposed)"}
    for method, name in names.items():
        line = next(ln for ln in text.splitlines() if ln.startswith(name + "\t"))
        vox_psnr, vox_ssim, vw_psnr, vw_ssim = map(float, line.split("\t")[1:5])
        assert paper["table1"]["VoxCeleb"][method] == {"psnr": vox_psnr, "ssim": vox_ssim}
        assert paper["table1"]["300VW"][method] == {"psnr": vw_psnr, "ssim": vw_ssim}
    t2 = text.split("Table 2. Benefits")[1].split("ble 1. As can be seen")[0]
    for marks, variant in (("x\tx", "no_foc"), ("✓\tx", "no_landmarks"), ("✓\t✓", "full")):
        line = next(ln for ln in t2.splitlines() if ln.startswith(marks + "\t"))
        enh, inp = line.split("\t")[2:4]
        for net, cell in (("enhance", enh), ("interp", inp)):
            psnr, ssim = map(float, cell.split("/"))
            assert paper["table2"][f"{net}/{variant}"] == {"psnr": psnr, "ssim": ssim}
    t3 = text.split("Table 3. Benefits")[1].split("Figure 11.")[0]
    cells = re.findall(r"(\d+\.\d+)/(0\.\d+)", t3)
    order = ["enhance/full", "interp/full", "finenet/early", "finenet/late", "finenet_oracle/late"]
    assert [paper["table3"][m] for m in order] == [{"psnr": float(p), "ssim": float(s)} for p, s in cells]
    assert "36.83/0.9632" in text
    assert paper["table3"]["interp/four_frames"] == {"psnr": 36.83, "ssim": 0.9632}
    assert "95.3% and 85.0%" in text
    assert paper["fig10"]["comb_vs_enh"]["comb"] == 0.953 and paper["fig10"]["comb_vs_int"]["comb"] == 0.85


def test_rerun_is_byte_identical(built, tmp_path, params):
    root = tmp_path / "again"
    shutil.copytree(built / "reports" / "eval", root / "reports" / "eval")
    shutil.copytree(built / "reports" / "train", root / "reports" / "train")
    (root / "reports/eval/severity.csv").unlink()
    run_in(root, params)
    run_in(root, params)                                                   # over its own outputs
    for path in report.outputs():
        if (built / path).is_dir():                       # the qualitative PNGs, the motion clips
            assert sorted(p.name for p in (root / path).iterdir()) == sorted(p.name for p in (built / path).iterdir())
            for png in (built / path).iterdir():
                assert (root / path / png.name).read_bytes() == png.read_bytes(), png.name
        else:
            assert (root / path).read_bytes() == (built / path).read_bytes(), path


def test_temporal_table_and_table1_warp_column(built):
    md = (built / "reports/tables/temporal.md").read_text()
    assert md_column(md, "`blurry`", "E_warp ×10³ ↓", "vw300_test") == "2.20"
    assert md_column(md, "`enhance/full`", "vs input", "vw300_test") == "+1.00"
    assert md_column(md, "`finenet/late`", "vs input", "vw300_test") == "-0.50"
    assert md_column(md, "Sharp frames", "E_warp ×10³ ↓", "vw300_test") == "0.60"
    assert "flickers more than the input: `enhance/full` (+1.00)" in md
    csv = pd.read_csv(built / "reports/tables/temporal.csv")
    assert csv.set_index("method").loc["finenet/late", "vs_input"] == pytest.approx(-0.5)
    table1 = (built / "reports/tables/table1.md").read_text()
    assert md_column(table1, "`finenet/late`", "`vw300_test` E_warp ×10³ ↓") == "1.70"
    assert md_column(table1, "`edvr`", "`vw300_test` E_warp ×10³ ↓") == DASH   # not in temporal.csv


def test_motion_clip_is_a_labelled_grid_of_every_method(built):
    from finenet.video.stream import VideoSource

    path = built / "reports/figures/fig9_clips/embedded_realblur_r0.mp4"
    assert f"(figures/fig9_clips/{path.name})" in (built / "reports/report.md").read_text()
    src = VideoSource(path)
    frames = np.stack([p.rgb for p in src])
    src.close()
    label = 14
    assert frames.shape == (4, 24 + label, 3 * 32, 3)          # one row of 3 tiles, a label strip above each
    planted = clip_frames()
    for col, method in enumerate(["blurry", "edvr", "finenet/late"]):   # input first, then the tables' order
        tile = frames[:, label:, 32 * col:32 * (col + 1)].astype(int)
        assert np.abs(tile - planted[CLIP_METHODS.index(method)]).max() <= 2, method    # lossless but for YUV rounding
        assert frames[0, :label, 32 * col:32 * (col + 1)].max() > 128                   # a white label


def test_only_blurry_evaluated(work, params):
    frames = frame_rows()
    write_inputs(work, frames[frames.method == "blurry"])
    report.run(params)
    md = (work / "reports/tables/table3.md").read_text()
    assert md_column(md, "`finenet/late`", "PSNR / SSIM sharp", "vw300_test") == DASH
    assert md_column(md, "`finenet/late`", "**paper** 300VW", "vw300_test") == "38.22 / 0.9700"
    md = (work / "reports/tables/table1.md").read_text()
    assert md_column(md, "`finenet/late`", "`vw300_test` sharp (k=1)") == DASH
    assert md_column(md, "`blurry`", "`vw300_test` sharp (k=1)") == "60.00 / 0.8000"
    assert json.loads((work / "reports/pies.json").read_text()) == {
        "embedded_test": {}, "voxceleb_test": {}, "vw300_test": {}}
    assert (work / "reports/figures/fig10_pies.png").stat().st_size > 0


def test_missing_frames_csv(work, params):
    with pytest.raises(FineNetError) as excinfo:
        report.run(params)
    assert "frames.csv" in str(excinfo.value) and "evaluate" in str(excinfo.value)
    assert "\n" not in str(excinfo.value)


@pytest.mark.parametrize("damage, fragment", [
    (lambda root: pd.read_csv(root / "reports/eval/frames.csv").drop(columns=["ssim", "kernel"])
     .to_csv(root / "reports/eval/frames.csv", index=False), "missing columns kernel, ssim"),
    (lambda root: (root / "reports/eval/frames.csv").write_text(
        "method,set,clip,t,kernel,psnr,ssim,nme\nblurry,s,c,0,5,abc,0.9,\n"), "column 'psnr'"),
    (lambda root: (root / "reports/eval/frames.csv").write_text(""), "empty"),
    (lambda root: (root / "reports/eval/noref.csv").unlink(), "noref.csv: not found"),
    (lambda root: (root / "reports/eval/samples.h5").write_text("not hdf5"), "samples.h5: not a readable HDF5"),
    (lambda root: (root / "reports/eval/temporal.csv").unlink(), "temporal.csv: not found"),
    (lambda root: (root / "reports/eval/temporal.csv").write_text(
        "method,set,clip,t0,frames,warp_error\nblurry,s,c,0,4,x\n"), "column 'warp_error'"),
    (lambda root: (root / "reports/eval/clips.h5").write_text("not hdf5"), "clips.h5: unreadable"),
])
def test_bad_input(work, params, damage, fragment):
    write_inputs(work)
    damage(work)
    with pytest.raises(FineNetError) as excinfo:
        report.run(params)
    message = str(excinfo.value)
    assert "\n" not in message and excinfo.value.__cause__ is None
    assert fragment in message
    assert not [p for p in work.rglob("*") if ".tmp" in p.name]
