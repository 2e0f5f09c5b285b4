"""The user-study page and its tally (finenet/userstudy/).

A small samples.h5 is written with the evaluate stage's own writer from real frames (the carphone
clip), each "method" a different image operation, so every option's image differs. Without a
browser: the page is deterministic, orders its options per case, holds each option's image at the
position the key says, names no method, loads nothing from outside; the tally counts hand-written
answers (duplicates: the latest counts; the interval is the participant bootstrap) and rejects each
kind of bad CSV with one line naming the file. With headless Chromium (skipped only when chromium,
chromedriver or selenium is missing): a participant answers every case by clicking, downloads the
CSV, and its tally equals the clicks mapped through the key; the page renders every image and
looks right in a screenshot.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter, ImageOps

from finenet.stages import evaluate
from finenet.reporting import tables
from finenet.errors import FineNetError
from finenet.userstudy import browser, main
from finenet.userstudy.build import FINENET, PAGE_NAME, build, paper_methods
from finenet.userstudy.page import COLUMNS
from finenet.userstudy.tally import bootstrap_shares, tally

DEBLUR = ["deblurgan", "edvr", "ren", "srn_deblur", "umsn"]      # the paper's Sec. 4 deblurring baselines
# every method the tiny samples.h5 holds (evaluate's names), and the image operation standing in for it
OPERATIONS = {
    "blurry": lambda im: im.filter(ImageFilter.GaussianBlur(1.6)),
    "predeblur": lambda im: im.filter(ImageFilter.GaussianBlur(0.8)),
    "enhance/full": lambda im: im.filter(ImageFilter.DETAIL),
    "interp/full": lambda im: im.filter(ImageFilter.BoxBlur(1)),
    "finenet/late": lambda im: im.filter(ImageFilter.UnsharpMask(2, 150, 2)),
    "edvr": lambda im: im.filter(ImageFilter.SHARPEN),
    "srn_deblur": lambda im: im.filter(ImageFilter.EDGE_ENHANCE),
    "deblurgan": lambda im: ImageOps.autocontrast(im, cutoff=5),
    "umsn": lambda im: im.filter(ImageFilter.MedianFilter(3)),
    "ren": lambda im: ImageOps.posterize(im, 4),
    "superslomo": lambda im: im.filter(ImageFilter.GaussianBlur(1.0)),
    "dain": lambda im: im.filter(ImageFilter.SMOOTH_MORE),
}
REAL, SYNTHETIC = "tiny_realblur", "tiny_test"
CLIPS = {REAL: [("r_a", 10), ("r_b", 40), ("r_c", 70)], SYNTHETIC: [("s_a", 25), ("s_b", 95)]}
DATA_URI = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")


def face(frames: np.ndarray, t: int) -> Image.Image:
    """A 96x96 crop around carphone's face (the right half of the frame), as the samples hold."""
    return Image.fromarray(frames[t][10:130, 56:176]).resize((96, 96), Image.LANCZOS)


@pytest.fixture(scope="module")
def samples_h5(tmp_path_factory, carphone) -> Path:
    path = tmp_path_factory.mktemp("eval") / "samples.h5"
    samples = []
    for set_name, clips in CLIPS.items():
        real = set_name == REAL
        for clip, t in clips:
            sharp = face(carphone, t)
            names = list(OPERATIONS) + ([] if real else ["sharp"])
            images = np.stack([np.asarray(OPERATIONS[n](sharp) if n in OPERATIONS else sharp) for n in names])
            samples.append(dict(set=set_name, clip=clip, t=t, kernel=0 if real else 5, methods=names,
                                images=images, psnr=np.full(len(names), np.nan, dtype=np.float32)))
    return write_h5(path, samples)


def write_h5(path: Path, samples: list[dict]) -> Path:
    """``samples`` written by the evaluate stage's own writer (into ``path``)."""
    mp = pytest.MonkeyPatch()
    mp.setattr(evaluate, "SAMPLES", path)
    try:
        evaluate.write_samples(samples)
    finally:
        mp.undo()
    return path


@pytest.fixture(scope="module")
def study(samples_h5, tmp_path_factory):
    """Real-blur and synthetic cases (5), the paper's methods (6 options each)."""
    out = tmp_path_factory.mktemp("study")
    s = build(samples_h5, out, with_synthetic=True, seed=3)
    return s, json.loads(s.key.read_text()), s.page.read_text()


def sample_images(samples_h5: Path) -> dict:
    from finenet.stages.report import read_samples

    return {(s["set"], s["clip"], s["t"]): dict(zip(s["methods"], s["images"])) for s in read_samples(samples_h5)}


def decode(uri: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"))


def forbidden_names() -> list[str]:
    """Every method id the samples hold, its first part (``finenet``, ``enhance``, ...) and its
    label in the tables (``FineNet``, ``Ren et al.`` ...)."""
    names = set(OPERATIONS) | {"sharp"}
    names |= {n.split("/")[0] for n in OPERATIONS} | {tables.METHODS[n] for n in OPERATIONS if n in tables.METHODS}
    return sorted(names)


def leaked(html: str) -> list[str]:
    """The method names in the page's text, script and attributes (the base64 image data is
    dropped first: random base64 can spell anything)."""
    text = DATA_URI.sub("data:", html)
    return [n for n in forbidden_names()
            if re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])", text, re.IGNORECASE)]


def write_answers(path: Path, rows, header=COLUMNS) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def position_of(key: dict, case: str, method: str) -> int:
    return next(c for c in key["cases"] if c["id"] == case)["options"].index(method) + 1


# --- the page, without a browser -------------------------------------------------------------------

def test_default_methods_are_finenet_and_the_deblurring_baselines():
    methods = paper_methods()
    assert methods[0] == FINENET and sorted(methods[1:]) == DEBLUR
    assert not {"superslomo", "dain", "blurry"} & set(methods)


def test_same_seed_same_bytes_other_seed_other_order(samples_h5, tmp_path):
    a, b, c = (build(samples_h5, tmp_path / name, with_synthetic=True, seed=seed)
               for name, seed in (("a", 3), ("b", 3), ("c", 4)))
    assert a.page.read_bytes() == b.page.read_bytes() and a.key.read_bytes() == b.key.read_bytes()
    assert a.page.read_bytes() != c.page.read_bytes() and a.study != c.study
    assert [x.options for x in a.cases] != [x.options for x in c.cases]
    key = json.loads(a.key.read_text())
    assert key["page_sha256"] == __import__("hashlib").sha256(a.page.read_bytes()).hexdigest()
    assert f'data-study="{a.study}"' in a.page.read_text()


def test_every_case_has_its_own_order_and_the_images_sit_where_the_key_says(study, samples_h5):
    s, key, html = study
    assert [c["id"] for c in key["cases"]] == ["case01", "case02", "case03", "case04", "case05"]
    orders = [tuple(c["options"]) for c in key["cases"]]
    assert all(sorted(o) == sorted(paper_methods()) for o in orders)
    assert len(set(orders)) == len(orders)                    # five cases, five different orders
    assert len({o.index(FINENET) for o in orders}) > 1        # FineNet is not always at one position
    truth = sample_images(samples_h5)
    uris = DATA_URI.findall(html)
    assert len(uris) == 5 * 7                                 # per case: the input, then 6 options
    for i, case in enumerate(key["cases"]):
        images = truth[case["set"], case["clip"], case["t"]]
        shown = [decode(u) for u in uris[7 * i:7 * i + 7]]
        np.testing.assert_array_equal(shown[0], images["blurry"])
        for pos, method in enumerate(case["options"], 1):
            np.testing.assert_array_equal(shown[pos], images[method])
        section = html.split(f'<section class="case" id="{case["id"]}">')[1].split("</section>")[0]
        assert re.findall(r'name="([^"]+)" value="(\d+)"', section) == [(case["id"], str(p)) for p in range(1, 7)]


def test_the_page_names_no_method_and_loads_nothing_from_outside(study):
    s, key, html = study
    assert leaked(html) == []
    assert leaked(html.replace("option 3", "EDVR 3")) == ["EDVR", "edvr"]     # the check can fail
    assert leaked(html.replace("Case 2", "case2 finenet")) == ["FineNet", "finenet"]
    srcs = re.findall(r'src="([^"]*)"', html)
    assert len(srcs) == 35 and all(u.startswith("data:image/png;base64,") for u in srcs)
    assert not re.search(r"https?:|<link|<script [^>]*src|@import|\burl\(", DATA_URI.sub("", html), re.I)
    assert "default-src 'none'" in html
    assert re.findall(r"\sdata-[a-z-]+(?==)", DATA_URI.sub("", html)) == [" data-study"]   # no other data attribute


def test_sets_methods_and_footer(samples_h5, tmp_path):
    real = build(samples_h5, tmp_path / "real", seed=0)
    assert real.sets == [REAL] and [c.clip for c in real.cases] == ["r_a", "r_b", "r_c"]
    assert "synthetically" not in real.page.read_text()
    both = build(samples_h5, tmp_path / "both", with_synthetic=True, seed=0)
    assert both.sets == [REAL, SYNTHETIC] and len(both.cases) == 5
    assert both.cases[0].options == real.cases[0].options      # a case's order does not depend on the others
    assert "2 of the 5 cases are frames of synthetically blurred test video (set tiny_test)" in both.page.read_text()
    assert "3 of the 5 cases are frames of real blurred video (set tiny_realblur)" in both.page.read_text()
    assert "All 3 cases are frames of real blurred video (set tiny_realblur)." in real.page.read_text()
    only = build(samples_h5, tmp_path / "only", sets=[SYNTHETIC], methods=["finenet/late", "edvr"], seed=0)
    assert [c.clip for c in only.cases] == ["s_a", "s_b"] and all(len(c.options) == 2 for c in only.cases)
    with pytest.raises(FineNetError, match="no samples of set 'nope'"):
        build(samples_h5, tmp_path / "x", sets=["nope"])
    with pytest.raises(FineNetError, match="has no output of sharp"):
        build(samples_h5, tmp_path / "x", methods=["finenet/late", "sharp"])
    with pytest.raises(FineNetError, match="named twice"):
        build(samples_h5, tmp_path / "x", methods=["edvr", "edvr"])


def test_no_real_blur_set_is_one_line_naming_the_samples(samples_h5, tmp_path, capsys):
    from finenet.stages.report import read_samples

    synthetic_only = write_h5(tmp_path / "synthetic.h5", [s for s in read_samples(samples_h5) if s["set"] == SYNTHETIC])
    assert main(["build", "--samples", str(synthetic_only), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"finenet: {synthetic_only}: no real-blur set")
    assert "--with-synthetic" in err and not (tmp_path / "o").exists()
    assert main(["build", "--samples", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith(f"finenet: {tmp_path / 'missing.h5'}: not found")
    assert main(["build", "--samples", str(synthetic_only), "--with-synthetic", "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "index.html").is_file() and (tmp_path / "o" / "key.json").is_file()


def test_a_set_without_ground_truth_is_real_blur_whatever_its_name(samples_h5, tmp_path):
    """The paper profile's real-blur set is ``youtube``: no sample of it has a sharp frame."""
    from finenet.stages.report import read_samples

    renamed = []
    for s in read_samples(samples_h5):
        if s["set"] == SYNTHETIC:
            keep = [i for i, m in enumerate(s["methods"]) if m != "sharp"]
            renamed.append({**s, "set": "youtube", "methods": [s["methods"][i] for i in keep],
                            "images": s["images"][keep], "psnr": s["psnr"][keep]})
        else:                                                  # the real-blur set becomes one with ground truth
            renamed.append({**s, "set": "embedded_test", "methods": s["methods"] + ["sharp"],
                            "images": np.concatenate([s["images"], s["images"][:1]]),
                            "psnr": np.append(s["psnr"], np.nan).astype(np.float32)})
    path = write_h5(tmp_path / "youtube.h5", renamed)
    study = build(path, tmp_path / "out", seed=0)
    assert study.sets == ["youtube"] and [c.clip for c in study.cases] == ["s_a", "s_b"]
    assert build(path, tmp_path / "all", seed=0, with_synthetic=True).sets == ["youtube", "embedded_test"]


# --- the tally, on hand-written answers --------------------------------------------------------------

def test_tally_counts_hand_written_answers(study, tmp_path):
    s, key, _ = study
    sid = key["study"]
    pos = lambda case, m: position_of(key, case, m)  # noqa: E731
    ann = write_answers(tmp_path / "ann.csv", [
        [sid, "Ann", "case01", pos("case01", FINENET), "2025-01-01T10:00:01.000Z"],
        [sid, "Ann", "case02", pos("case02", "edvr"), "2025-01-01T10:00:02.000Z"],
        [sid, "Ann", "case03", pos("case03", FINENET), "2025-01-01T10:00:03.000Z"],
    ])
    ann_again = write_answers(tmp_path / "ann2.csv", [          # Ann changed case02 later: FineNet counts
        [sid, " Ann ", "case02", pos("case02", FINENET), "2025-01-01T10:05:00.000Z"],
        [sid, "Ann", "case03", pos("case03", "umsn"), "2025-01-01T09:00:00.000Z"],   # older: ignored
    ])
    bob = write_answers(tmp_path / "bob.csv", [
        [sid, "Bob", "case01", pos("case01", "ren"), "2025-01-02T08:00:00+01:00"],
        [sid, "Bob", "case04", pos("case04", FINENET), "2025-01-02T08:00:01+01:00"],
        [sid, "Bob", "case05", pos("case05", "ren"), "2025-01-02T08:00:02"],
    ])
    r = tally(s.key, [ann, ann_again, bob], tmp_path / "out", samples=4000, seed=1)
    votes = {row["method"]: row["votes"] for row in r.rows}
    assert votes == {FINENET: 4, "ren": 2, "edvr": 0, "umsn": 0, "deblurgan": 0, "srn_deblur": 0}
    assert (r.participants, r.answers, r.duplicates, r.cases_answered, r.cases) == (2, 6, 2, 5, 5)
    assert [row["method"] for row in r.rows][:2] == [FINENET, "ren"]
    fn = next(row for row in r.rows if row["method"] == FINENET)
    assert fn["share"] == pytest.approx(4 / 6)
    # two participants: a resample is Ann+Ann (3/3 FineNet), Ann+Bob (4/6) or Bob+Bob (1/3), each
    # "both the same person" a quarter of the time, so the 95 % interval runs from Bob's to Ann's share
    assert (fn["ci_lo"], fn["ci_hi"]) == (pytest.approx(1 / 3), pytest.approx(1.0))
    ren = next(row for row in r.rows if row["method"] == "ren")
    assert (ren["ci_lo"], ren["ci_hi"]) == (pytest.approx(0.0), pytest.approx(2 / 3))

    out = tmp_path / "out"
    table = list(csv.DictReader(open(out / "userstudy.csv")))
    assert table[0] == {"method": FINENET, "label": "FineNet", "votes": "4", "share": "0.6667",
                        "ci_lo": "0.3333", "ci_hi": "1.0000"}
    md = (out / "userstudy.md").read_text()
    assert "| FineNet `finenet/late` | 4 | 66.7 % | [33.3 %, 100.0 %] |" in md
    assert "bootstrap over participants (4000 resamples, seed 1)" in md and "latest timestamp" in md
    summary = json.loads((out / "userstudy.json").read_text())
    assert summary["per_case"]["case01"]["votes"][FINENET] == 1 and summary["per_case"]["case01"]["votes"]["ren"] == 1
    assert summary["duplicates_replaced"] == 2 and summary["participants"] == 2
    png = Image.open(out / "userstudy_pie.png")
    assert png.format == "PNG" and png.width > 300 and np.asarray(png.convert("L")).std() > 10
    first = [(out / n).read_bytes() for n in ("userstudy.csv", "userstudy.md", "userstudy.json", "userstudy_pie.png")]
    tally(s.key, [ann, ann_again, bob], out, samples=4000, seed=1)
    assert first == [(out / n).read_bytes() for n in ("userstudy.csv", "userstudy.md", "userstudy.json",
                                                       "userstudy_pie.png")]


def test_equal_timestamps_the_one_read_last_counts(study, tmp_path):
    s, key, _ = study
    stamp = "2025-01-01T10:00:00Z"
    a = write_answers(tmp_path / "a.csv", [[key["study"], "Cy", "case01", position_of(key, "case01", "edvr"), stamp]])
    b = write_answers(tmp_path / "b.csv", [[key["study"], "Cy", "case01", position_of(key, "case01", "umsn"), stamp]])
    assert {r["method"]: r["votes"] for r in tally(s.key, [a, b], tmp_path / "o1").rows}["umsn"] == 1
    assert {r["method"]: r["votes"] for r in tally(s.key, [b, a], tmp_path / "o2").rows}["edvr"] == 1


def test_bootstrap_interval_is_seeded_and_covers_the_share():
    votes = np.random.default_rng(0).integers(0, 4, size=(30, 3))
    lo, hi = bootstrap_shares(votes, 3000, 0.95, seed=5)
    share = votes.sum(0) / votes.sum()
    assert np.all(lo < share) and np.all(share < hi)
    again = bootstrap_shares(votes, 3000, 0.95, seed=5)
    assert np.array_equal(lo, again[0]) and not np.array_equal(lo, bootstrap_shares(votes, 3000, 0.95, seed=6)[0])


BAD = {
    "wrong_columns": (["study", "participant", "case", "choice", "timestamp"], None, "wrong columns: expected study,participant,case,position,timestamp"),
    "missing_column": (["study", "participant", "case", "position"], None, "wrong columns"),
    "unknown_case": (None, dict(case="case99"), "line 2: unknown case id 'case99'"),
    "position_zero": (None, dict(position="0"), "line 2: position 0 out of range 1-6 for case case01"),
    "position_high": (None, dict(position="7"), "line 2: position 7 out of range 1-6"),
    "position_text": (None, dict(position="B"), "line 2: position 'B' is not a whole number"),
    "other_page": (None, dict(study="0123456789abcdef"), "line 2: answers for another page"),
    "no_participant": (None, dict(participant="  "), "line 2: empty participant"),
    "bad_time": (None, dict(timestamp="yesterday"), "line 2: timestamp 'yesterday' is not an ISO 8601"),
    "short_row": (None, "short", "line 2: 4 fields, the header has 5"),
    "header_only": (None, "none", "no answers (only the header)"),
    "empty": (None, "empty", "empty file (no header line)"),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_csv_is_one_line_naming_the_file(kind, study, tmp_path, capsys):
    s, key, _ = study
    header, change, problem = BAD[kind]
    path = tmp_path / f"{kind}.csv"
    row = dict(study=key["study"], participant="Dee", case="case01", position="2", timestamp="2025-01-01T10:00:00Z")
    if change == "empty":
        path.write_text("")
    elif change == "none":
        write_answers(path, [])
    elif change == "short":
        write_answers(path, [[row[c] for c in COLUMNS[:4]]])
    else:
        row.update(change or {})
        values = [row[c] for c in COLUMNS]
        write_answers(path, [values[:len(header)] if header else values], header or COLUMNS)
    good = write_answers(tmp_path / "good.csv", [[key["study"], "Eve", "case02", "1", "2025-01-01T10:00:00Z"]])
    with pytest.raises(FineNetError) as e:
        tally(s.key, [good, path], tmp_path / "out")
    assert e.value.where == str(path) and problem in e.value.problem
    assert not (tmp_path / "out").exists()                    # nothing written
    assert main(["tally", "--key", str(s.key), str(good), str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"finenet: {path}: ") and problem in err


def test_a_page_that_is_not_the_keys_is_refused(study, samples_h5, tmp_path):
    s, key, html = study
    good = write_answers(tmp_path / "good.csv", [[key["study"], "Eve", "case02", "1", "2025-01-01T10:00:00Z"]])
    other = build(samples_h5, tmp_path / "other", with_synthetic=True, seed=9)
    with pytest.raises(FineNetError, match="does not belong to the key") as e:
        tally(s.key, [good], tmp_path / "out", page=other.page)
    assert e.value.where == str(other.page)
    (tmp_path / "other" / "key.json").write_bytes(s.key.read_bytes())      # a key beside a page not its own
    with pytest.raises(FineNetError, match="does not belong to the key") as e:
        tally(tmp_path / "other" / "key.json", [good], tmp_path / "out")
    assert e.value.where == str(other.page)
    with pytest.raises(FineNetError, match="answers for another page"):
        tally(s.key, [write_answers(
            tmp_path / "o.csv", [[other.study, "Eve", "case02", "1", "2025-01-01T10:00:00Z"]])], tmp_path / "out")
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "something else"}')
    with pytest.raises(FineNetError, match="not a user-study key") as e:
        tally(broken, [good], tmp_path / "out")
    assert e.value.where == str(broken)
    assert tally(s.key, [good], tmp_path / "out", page=s.page).answers == 1


# --- in a real browser -------------------------------------------------------------------------------

BROWSER, DRIVER, WHY = browser.find()


@pytest.mark.skipif(bool(WHY), reason=f"headless browser test: {WHY}")
def test_a_participant_answers_in_headless_chromium(study, samples_h5, tmp_path):
    from selenium.webdriver.common.by import By

    s, key, _ = study
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    rng = np.random.default_rng(11)
    chosen = {c["id"]: int(rng.integers(1, len(c["options"]) + 1)) for c in key["cases"]}
    with browser.chrome(downloads, width=1280, height=1000) as d:
        d.get(s.page.resolve().as_uri())
        assert d.find_element(By.ID, "progress").text == "0 of 5 answered"
        source = d.page_source
        assert leaked(source) == [] and len(DATA_URI.findall(source)) == 35
        widths = d.execute_script("return Array.from(document.images).map(i => [i.complete, i.naturalWidth, "
                                  "i.naturalHeight])")
        assert widths == [[True, 96, 96]] * 35

        d.find_element(By.ID, "download").click()              # no name yet: nothing saved
        assert d.find_element(By.ID, "status").text == "Please enter your name first."
        for n, (case, pos) in enumerate(chosen.items(), 1):
            section = d.find_element(By.ID, case)
            images = section.find_elements(By.CSS_SELECTOR, "label.option img")
            if n == 1:                                          # a change of mind: the last click counts
                other = pos % len(images)
                d.execute_script("arguments[0].scrollIntoView({block: 'center'})", images[other])
                images[other].click()
            d.execute_script("arguments[0].scrollIntoView({block: 'center'})", images[pos - 1])
            images[pos - 1].click()
            assert d.find_element(By.ID, "progress").text == f"{n} of 5 answered"
            radios = section.find_elements(By.CSS_SELECTOR, "input[type=radio]")
            assert [r.is_selected() for r in radios] == [i == pos for i in range(1, 7)]
        d.find_element(By.ID, "participant").send_keys('Zoë "Z", tester')
        d.execute_script("window.scrollTo(0, 0)")
        d.find_element(By.ID, "download").click()
        deadline = time.monotonic() + 20
        while not (files := [p for p in downloads.glob("*.csv")]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [f.name for f in files] == ["answers-Zo_Z_tester.csv"]
        assert d.find_element(By.ID, "status").text == "Saved 5 of 5 answers as answers-Zo_Z_tester.csv."

        shot = Image.open(io.BytesIO(d.get_screenshot_as_png())).convert("RGB")
        viewport = d.execute_script("return [window.innerWidth, window.innerHeight, window.devicePixelRatio]")
        box = d.execute_script("var r = document.querySelector('#case01 figure img').getBoundingClientRect();"
                               "return [r.left, r.top, r.width, r.height]")
    rows = list(csv.DictReader(open(files[0], newline="")))
    assert [(r["participant"], r["case"], int(r["position"])) for r in rows] == \
        [('Zoë "Z", tester', c, p) for c, p in chosen.items()]
    assert {r["study"] for r in rows} == {key["study"]}

    result = tally(s.key, files, tmp_path / "tally", samples=500)
    options = {c["id"]: c["options"] for c in key["cases"]}
    expected = Counter(options[c][p - 1] for c, p in chosen.items())
    assert {r["method"]: r["votes"] for r in result.rows} == {m: expected.get(m, 0) for m in paper_methods()}
    assert (result.participants, result.answers, result.duplicates) == (1, 5, 0)

    # the screenshot: the window's size, not blank, and the first input image drawn where it is
    assert viewport[2] == 1 and shot.size == (viewport[0], viewport[1]) and shot.width == 1280
    pixels = np.asarray(shot).astype(float)
    assert pixels.std() > 20 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 1000
    assert box[2:] == [192, 192]                               # 96 px at 2x
    x, y = int(round(box[0])), int(round(box[1]))
    drawn = pixels[y:y + 192, x:x + 192]
    truth = sample_images(samples_h5)
    c1 = key["cases"][0]
    expect = np.repeat(np.repeat(truth[c1["set"], c1["clip"], c1["t"]]["blurry"], 2, 0), 2, 1).astype(float)
    assert drawn.shape == expect.shape and np.abs(drawn - expect).mean() < 8


def test_finenet_userstudy_is_a_finenet_command(capsys):
    """``finenet userstudy …`` reaches the same commands (and a bad key file is one line)."""
    from finenet.cli import main as finenet

    with pytest.raises(SystemExit) as info:
        finenet(["userstudy", "--help"])
    assert info.value.code == 0 and "usage: finenet userstudy" in capsys.readouterr().out
    assert finenet(["userstudy", "tally", "--key", "/nonexistent/key.json", "/nonexistent/a.csv",
                    "--out", "/tmp/x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("finenet: ") and err.count("\n") == 1, err
