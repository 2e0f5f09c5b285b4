"""The dataset adapters on tiny trees in the real VoxCeleb2 / 300VW / YouTube layouts, made of real
face video: what ``plan()`` picks, what ``load()`` returns, and the data stages end to end."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from finenet.data import voxceleb, vw300, youtube
from finenet.data.clips import ClipSpec, load_source, plan_clips

PIECE = 10  # frames per video in the conftest trees


def split_videos(tree, part: str) -> list[str]:
    """The tree's videos of one VoxCeleb2 split, as idNNNNN/<youtube_id>/NNNNN.mp4."""
    base = tree.root / part / "mp4"
    return sorted(str(p.relative_to(base)) for p in tree.videos if p.is_relative_to(base))


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def vox_id(rel: str) -> str:
    ident, yt, utt = Path(rel).parts
    return f"vox_{ident}_{yt}_{Path(utt).stem}"


def vox_cfg(root, train=100, test=100, frames=None, val=0) -> dict:
    return dict(root=str(root), train_videos=train, val_videos=val, test_videos=test, frames_per_clip=frames)


def vw_cfg(root, test=100, frames=None) -> dict:
    return dict(root=str(root), test_videos=test, frames_per_clip=frames)


def assert_frames(frames, n, shape=(144, 176)):
    assert isinstance(frames, np.ndarray)
    assert frames.dtype == np.uint8
    assert frames.shape == (n, *shape, 3)


# --------------------------------------------------------------------------------------- VoxCeleb2

def test_voxceleb_tree_is_as_built(voxceleb_tree):
    assert all(len(v) == PIECE for v in voxceleb_tree.videos.values())
    assert len(split_videos(voxceleb_tree, "dev")) == 4 and len(split_videos(voxceleb_tree, "test")) == 2


def test_voxceleb_plan_takes_every_video_of_each_split_when_counts_exceed_them(voxceleb_tree):
    VOX_DEV, VOX_TEST = split_videos(voxceleb_tree, "dev"), split_videos(voxceleb_tree, "test")
    clips = voxceleb.plan(vox_cfg(voxceleb_tree.root), seed=2026)
    train = [c for c in clips if c.set == "train"]
    test = [c for c in clips if c.set == "voxceleb_test"]
    assert len(clips) == len(train) + len(test)
    # capped by what exists; stray files outside idNNNNN/<yt>/NNNNN.mp4 are not videos of the split
    assert sorted(c.clip_id for c in train) == sorted(vox_id(r) for r in VOX_DEV)
    assert sorted(c.clip_id for c in test) == sorted(vox_id(r) for r in VOX_TEST)
    root = voxceleb_tree.root
    assert {c.source for c in train} == {str(root / "dev" / "mp4" / r) for r in VOX_DEV}
    assert {c.source for c in test} == {str(root / "test" / "mp4" / r) for r in VOX_TEST}
    assert all(c.dataset == "voxceleb" and c.has_gt and c.start == 0 and c.length is None for c in clips)


def test_voxceleb_plan_samples_the_requested_counts_deterministically(voxceleb_tree):
    VOX_DEV, VOX_TEST = split_videos(voxceleb_tree, "dev"), split_videos(voxceleb_tree, "test")
    cfg = vox_cfg(voxceleb_tree.root, train=2, test=1, frames=7)
    first = voxceleb.plan(cfg, seed=11)
    assert first == voxceleb.plan(cfg, seed=11)
    assert [c.set for c in first] == ["train", "train", "voxceleb_test"]
    assert all(c.length == 7 for c in first)
    ids = [c.clip_id for c in first]
    assert len(set(ids)) == 3
    assert set(ids[:2]) <= {vox_id(r) for r in VOX_DEV}
    assert ids[2] in {vox_id(r) for r in VOX_TEST}
    # in the listing's (sorted) order whatever the draw
    assert [c.source for c in first[:2]] == sorted(c.source for c in first[:2])


def test_voxceleb_seed_changes_the_sample(voxceleb_tree):
    cfg = vox_cfg(voxceleb_tree.root, train=2, test=1)
    samples = {tuple(c.clip_id for c in voxceleb.plan(cfg, seed=s)) for s in range(12)}
    # 6 possible pairs of 4 dev videos x 2 test videos: 12 seeds must not all agree
    assert len(samples) > 1
    assert all(len(s) == 3 for s in samples)


def test_voxceleb_zero_count_skips_the_split_entirely(voxceleb_tree, tmp_path):
    VOX_DEV, VOX_TEST = split_videos(voxceleb_tree, "dev"), split_videos(voxceleb_tree, "test")
    only_dev = tmp_path / "vox"
    src = voxceleb_tree.root / "dev" / "mp4" / VOX_DEV[2]
    dst = only_dev / "dev" / "mp4" / VOX_DEV[2]
    dst.parent.mkdir(parents=True)
    shutil.copy(src, dst)
    clips = voxceleb.plan(vox_cfg(only_dev, train=5, test=0), seed=0)
    assert [(c.clip_id, c.set) for c in clips] == [(vox_id(VOX_DEV[2]), "train")]
    assert voxceleb.plan(vox_cfg(voxceleb_tree.root, train=0, test=5), seed=0)[0].set == "voxceleb_test"
    assert len(voxceleb.plan(vox_cfg(voxceleb_tree.root, train=0, test=5), seed=0)) == len(VOX_TEST)


def test_voxceleb_load_returns_the_video_frames(voxceleb_tree):
    clips = voxceleb.plan(vox_cfg(voxceleb_tree.root), seed=0)
    for spec in clips:
        frames, fps, gt = voxceleb.load(spec, {})
        assert_frames(frames, PIECE)
        assert gt is None
        assert fps == pytest.approx(25.0)
        source = voxceleb_tree.videos[Path(spec.source)]
        assert mean_abs_diff(frames, source) < 8          # the same pictures, after x264
        others = [v for p, v in voxceleb_tree.videos.items() if str(p) != spec.source]
        assert all(mean_abs_diff(frames, o) > mean_abs_diff(frames, source) for o in others)


def test_voxceleb_load_honours_frames_per_clip(voxceleb_tree):
    spec = voxceleb.plan(vox_cfg(voxceleb_tree.root, train=1, test=0, frames=6), seed=0)[0]
    frames, _, _ = voxceleb.load(spec, {})
    assert_frames(frames, 6)
    full, _, _ = voxceleb.load(ClipSpec(**{**spec.to_dict(), "length": None}), {})
    np.testing.assert_array_equal(frames, full[:6])


# -------------------------------------------------------------------------------------------- 300VW

def test_vw300_plan_lists_numbered_folders_only(vw300_tree):
    clips = vw300.plan(vw_cfg(vw300_tree.root), seed=2026)
    assert [c.clip_id for c in clips] == ["300vw_002", "300vw_007", "300vw_114"]   # not 'extra'
    assert [c.source for c in clips] == [str(vw300_tree.root / n / "vid.avi") for n in ("002", "007", "114")]
    assert all(c.set == "vw300_test" and c.dataset == "vw300" and c.has_gt for c in clips)


def test_vw300_plan_is_seeded(vw300_tree):
    cfg = vw_cfg(vw300_tree.root, test=2, frames=8)
    clips = vw300.plan(cfg, seed=5)
    assert clips == vw300.plan(cfg, seed=5)
    assert len(clips) == 2 and all(c.length == 8 for c in clips)
    samples = {tuple(c.clip_id for c in vw300.plan(cfg, seed=s)) for s in range(12)}
    assert len(samples) > 1
    assert all(len(set(s)) == 2 and set(s) <= {"300vw_002", "300vw_007", "300vw_114"} for s in samples)


def test_vw300_load_returns_frames_and_the_pts_ground_truth(vw300_tree):
    for spec in vw300.plan(vw_cfg(vw300_tree.root), seed=0):
        frames, fps, gt = vw300.load(spec, {})
        assert_frames(frames, PIECE)
        assert fps == pytest.approx(25.0)
        assert mean_abs_diff(frames, vw300_tree.videos[Path(spec.source)]) < 8
        assert gt.shape == (PIECE, 68, 2) and gt.dtype == np.float32
        # the .pts hold 1-based coordinates; the adapter gives 0-based ones
        np.testing.assert_allclose(gt, vw300_tree.gt[Path(spec.source)], atol=1e-3)


def test_vw300_pts_are_matched_to_frames_by_number(vw300_tree):
    spec = vw300.plan(vw_cfg(vw300_tree.root), seed=0)[1]
    cut = ClipSpec(**{**spec.to_dict(), "start": 3, "length": 4})
    frames, _, gt = vw300.load(cut, {})
    full, _, full_gt = vw300.load(spec, {})
    np.testing.assert_array_equal(frames, full[3:7])
    np.testing.assert_allclose(gt, vw300_tree.gt[Path(spec.source)][3:7], atol=1e-3)
    np.testing.assert_array_equal(gt, full_gt[3:7])


def test_vw300_frame_without_pts_gets_nan_ground_truth(vw300_tree, tmp_path):
    src = vw300_tree.root / "007"
    shutil.copytree(src, tmp_path / "300VW" / "007")
    (tmp_path / "300VW" / "007" / "annot" / "000004.pts").unlink()
    spec = vw300.plan(vw_cfg(tmp_path / "300VW"), seed=0)[0]
    _, _, gt = vw300.load(spec, {})
    assert np.isnan(gt[3]).all()
    keep = np.arange(PIECE) != 3
    assert not np.isnan(gt[keep]).any()
    np.testing.assert_allclose(gt[keep], vw300_tree.gt[src / "vid.avi"][keep], atol=1e-3)


# ------------------------------------------------------------------------------------------ YouTube

def test_youtube_plan_finds_videos_in_nested_folders(youtube_tree):
    clips = youtube.plan(dict(root=str(youtube_tree.root), frames_per_clip=None))
    ids = [c.clip_id for c in clips]        # spaces in the names: readable part + a digest of them
    assert [i.rsplit("-", 1)[0] for i in ids[:2]] == ["yt_channel-A-2019-Interview", "yt_channel-A-clip-01"]
    assert all(len(i.rsplit("-", 1)[1]) == 10 for i in ids[:2]) and ids[2] == "yt_talk"
    assert sorted(c.source for c in clips) == sorted(str(p) for p in youtube_tree.videos)
    assert all(c.set == "youtube" and c.dataset == "youtube" and not c.has_gt for c in clips)
    assert clips == youtube.plan(dict(root=str(youtube_tree.root), frames_per_clip=None))


def test_youtube_load_reads_every_container(youtube_tree):
    for spec in youtube.plan(dict(root=str(youtube_tree.root), frames_per_clip=8)):
        frames, fps, gt = youtube.load(spec, {})
        assert_frames(frames, 8)
        assert gt is None and fps > 0
        source = youtube_tree.videos[Path(spec.source)]
        if spec.source.endswith(".MKV"):                             # ffv1 in bgr0 is lossless
            np.testing.assert_array_equal(frames, source[:8])
        else:
            assert mean_abs_diff(frames, source[:8]) < 8


# ---------------------------------------------------------------------------------- all adapters

def test_plan_clips_combines_the_datasets(make_params, voxceleb_tree, vw300_tree, youtube_tree):
    params = make_params(voxceleb=vox_cfg(voxceleb_tree.root, train=3, test=1),
                         vw300=vw_cfg(vw300_tree.root, test=2), youtube=dict(root=youtube_tree.root))
    clips = plan_clips(params)
    sets = [c.set for c in clips]
    assert {s: sets.count(s) for s in set(sets)} == {"train": 3, "voxceleb_test": 1, "vw300_test": 2,
                                                     "youtube": 3}
    assert not any(c.dataset == "embedded" for c in clips)
    spec = {c.dataset: c for c in clips}
    for dataset, n_gt in (("voxceleb", None), ("vw300", PIECE), ("youtube", None)):
        frames, _, gt = load_source(spec[dataset], params)
        assert_frames(frames, PIECE)
        assert (gt is None) if n_gt is None else gt.shape == (n_gt, 68, 2)


def test_stages_end_to_end_on_the_three_layouts(make_params, voxceleb_tree, vw300_tree, youtube_tree,
                                                tmp_path, monkeypatch):
    from finenet.stages import blur, heatmaps, pack, sample

    params = make_params(voxceleb=vox_cfg(voxceleb_tree.root, train=3, test=2, frames=6),
                         vw300=vw_cfg(vw300_tree.root, test=2, frames=6),
                         youtube=dict(root=youtube_tree.root, frames_per_clip=6))
    clips = plan_clips(params)
    crop = params["data"]["crop_size"]
    monkeypatch.chdir(tmp_path)
    for stage in (sample, blur, heatmaps, pack):
        stage.run(params)

    expected = {s: sorted(c.clip_id for c in clips if c.set == s)
                for s in ("train", "voxceleb_test", "vw300_test", "youtube")}
    assert [len(v) for v in expected.values()] == [3, 2, 2, 3]
    sets = tmp_path / "data" / "sets"
    assert sorted(p.name for p in sets.glob("*.h5")) == sorted(f"{s}.h5" for s in expected)
    for set_name, ids in expected.items():
        with h5py.File(sets / f"{set_name}.h5", "r") as f:
            assert f.attrs["set"] == set_name
            assert sorted(f) == ids
            for clip_id in ids:
                g = f[clip_id]
                assert g["blurry"].shape == (6, crop, crop, 3) and g["blurry"].dtype == np.uint8
                assert g["landmarks"].shape == (6, 68, 2)
                assert g["heatmaps"].shape[:2] == (6, 68)
                if set_name == "youtube":
                    assert "sharp" not in g and "landmarks_gt" not in g
                    assert (g["kernel"][:, 0] == 0).all()           # real blur: left as it is
                else:
                    assert g["sharp"].shape == (6, crop, crop, 3)
                    assert ("landmarks_gt" in g) == (set_name == "vw300_test")
                if set_name == "vw300_test":
                    gt = g["landmarks_gt"][:]
                    assert gt.shape == (6, 68, 2) and not np.isnan(gt).any()
                    # the ground truth lands on the face, which the crop centres
                    centre = gt.mean(axis=1)
                    assert (np.abs(centre - crop / 2) < crop / 4).all()
                    # and agrees with the landmarks fitted on the sharp crops (same detector made it)
                    err = np.linalg.norm(g["landmarks_sharp"][:] - gt, axis=-1).mean()
                    assert err < crop / 20
    assert (tmp_path / "reports" / "data_summary.json").is_file()
    leftovers = [p for p in (tmp_path / "data").rglob("*") if ".tmp" in p.name]
    assert leftovers == []


def test_voxceleb_val_clips_are_every_dev_video_of_identities_no_training_video_shows(voxceleb_tree):
    dev = split_videos(voxceleb_tree, "dev")
    clips = voxceleb.plan(vox_cfg(voxceleb_tree.root, train=1, test=0, val=100), seed=3)
    train = [c for c in clips if c.set == "train"]
    train_ids = {Path(c.source).parts[-3] for c in train}
    val = sorted(c.clip_id for c in clips if c.set == "val")
    assert len(train) == 1 and val
    assert val == sorted(vox_id(r) for r in dev if r.split("/")[0] not in train_ids)


# ------------------------------------------------------------------- names from datasets are data

ODD_NAMES = ["id 00012", "idünïcödé", "id..", "id" + "a" * 240, "id00012"]   # VoxCeleb2 wants id*


def test_names_from_a_tree_become_safe_distinct_bounded_ids(voxceleb_tree, youtube_tree, tmp_path,
                                                            make_params, monkeypatch):
    """VoxCeleb2 identities, YouTube ids and file names with spaces, unicode, ``..`` or 240
    characters give ids that are one short path component each and stay distinct, and the data
    stages write only inside the output folders."""
    from finenet.stages import blur, sample

    root = tmp_path / "vox"
    video = next(p for p in voxceleb_tree.videos if "/dev/" in str(p))
    for k, name in enumerate(ODD_NAMES):
        dest = root / "dev" / "mp4" / name / ("yt ü" if k % 2 else "..x") / f"{k:05d}.mp4"
        dest.parent.mkdir(parents=True)
        shutil.copy(video, dest)
    (root / "test" / "mp4").mkdir(parents=True)
    clips = voxceleb.plan(vox_cfg(root, train=10, test=0, frames=6), seed=0)
    ids = [c.clip_id for c in clips]
    assert len(ids) == len(set(ids)) == len(ODD_NAMES)
    for i in ids:
        assert re.fullmatch(r"vox_[A-Za-z0-9_-]+", i) and len(i) <= 100 and ".." not in i, i
    assert "vox_id00012_x_00004" not in ids      # '..x' is not 'x': the lossy parts carry a digest

    params = make_params(voxceleb=vox_cfg(root, train=10, test=0, frames=6))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = {p for p in tmp_path.rglob("*") if not p.is_relative_to(work)}
    for stage in (sample, blur):
        stage.run(params)
    assert {p for p in tmp_path.rglob("*") if not p.is_relative_to(work)} == before
    written = sorted(p.name for p in (work / "data" / "clips").iterdir())
    assert written == sorted(f"{i}.npz" for i in ids)


def test_two_names_that_reduce_to_one_id_are_refused_naming_a_file(tmp_path, youtube_tree):
    """``x/y.mp4`` and ``x-y.mp4`` both read as ``yt_x-y``: one line naming one of them."""
    from finenet.errors import FineNetError

    video = next(iter(youtube_tree.videos))
    for rel in ("x/y.mp4", "x-y.mp4"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(video, tmp_path / rel)
    params = dict(root=str(tmp_path), frames_per_clip=None)
    assert [c.clip_id for c in youtube.plan(params)] == ["yt_x-y", "yt_x-y"]
    from finenet.data import clips as clips_module

    with pytest.raises(FineNetError) as info:
        clips_module.check_unique(youtube.plan(params))
    msg = str(info.value)
    assert "\n" not in msg and "'yt_x-y'" in msg and str(tmp_path / "x") in msg


# -------------------------------------------------------------------------- the plan file (--plan)

def test_a_per_clip_job_reads_the_plan_file_and_does_not_list_the_tree(make_params, voxceleb_tree,
                                                                       tmp_path, monkeypatch):
    """What Snakemake does: list once (the Snakefile), write the plan, run per-clip jobs with
    ``--plan``. With the dataset tree gone, a job given the plan still finds its clip (blur reads
    only the sampled clip); without it, it fails listing the tree."""
    from finenet.stages import blur, sample
    from finenet.data.clips import plan_file, read_plan, write_plan
    from finenet.errors import FineNetError

    root = tmp_path / "vox"
    shutil.copytree(voxceleb_tree.root, root)
    params = make_params(voxceleb=vox_cfg(root, train=2, test=1, frames=6))
    monkeypatch.chdir(tmp_path)
    planned = plan_clips(params)
    path = write_plan(planned, params, plan_file("embedded"))
    assert read_plan(path, params) == planned
    stamp = path.stat().st_mtime_ns
    assert write_plan(planned, params, path) == path and path.stat().st_mtime_ns == stamp  # unchanged: kept
    clip = planned[0].clip_id
    sample.run(params, [clip], str(path))
    root.rename(tmp_path / "gone")
    with pytest.raises(FineNetError, match="VoxCeleb2 root not found"):
        blur.run(params, [clip])
    blur.run(params, [clip], str(path))
    assert (tmp_path / "data" / "blurred" / f"{clip}.npz").is_file()


def test_a_stale_or_damaged_plan_file_is_one_line(make_params, tmp_path):
    from finenet.data.clips import read_plan, write_plan
    from finenet.errors import FineNetError

    params = make_params()
    path = write_plan(plan_clips(params), params, tmp_path / "plan.json")
    other = {**params, "seed": params["seed"] + 1}
    problems = {"made from other parameters": lambda: read_plan(path, other),
                "plan file not found": lambda: read_plan(tmp_path / "none.json", params)}
    for expected, call in problems.items():
        with pytest.raises(FineNetError, match=expected) as info:
            call()
        assert "\n" not in str(info.value)
    path.write_text(path.read_text()[:40])
    with pytest.raises(FineNetError, match="unreadable plan file"):
        read_plan(path, params)
