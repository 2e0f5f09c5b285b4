"""tools/paper_tree.py: the dataset trees the paper profile's dry run reads are in the real
VoxCeleb2 / 300VW / YouTube layouts, made of real video, and the adapters read them as they read
the real datasets."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from finenet.data import voxceleb, vw300, youtube
from finenet.params import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import paper_tree  # noqa: E402

FRAMES = 6


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return paper_tree.build(tmp_path_factory.mktemp("paper_tree"), frames=FRAMES, videos=2)


def test_the_layouts_are_the_datasets_own(tree):
    vox = sorted(p.relative_to(tree["voxceleb"]).as_posix() for p in tree["voxceleb"].rglob("*.mp4"))
    assert vox == ["dev/mp4/id10001/FgNetTalk01/00001.mp4", "dev/mp4/id10001/FgNetTalk01/00002.mp4",
                   "dev/mp4/id10002/Cap12Webcam/00001.mp4", "dev/mp4/id10002/Cap12Webcam/00002.mp4",
                   "test/mp4/id10003/Cap13Webcam/00001.mp4", "test/mp4/id10003/Cap13Webcam/00002.mp4"]
    for video in ("001", "002"):
        assert (tree["vw300"] / video / "vid.avi").is_file()
        assert sorted(p.name for p in (tree["vw300"] / video / "annot").iterdir()) == \
            [f"{t:06d}.pts" for t in range(1, FRAMES + 1)]
    assert [p.name for p in tree["youtube"].iterdir()] == ["carphone_distorted.mp4"]


def test_the_adapters_read_them(tree):
    cfg = dict(root=str(tree["voxceleb"]), train_videos=3, val_videos=1, test_videos=2, frames_per_clip=None)
    clips = voxceleb.plan(cfg, seed=0)
    train = [c for c in clips if c.set == "train"]
    assert len(train) == 3 and len([c for c in clips if c.set == "voxceleb_test"]) == 2
    val = [c for c in clips if c.set == "val"]          # only an identity no training video shows
    assert all(c.clip_id.split("_")[1] not in {t.clip_id.split("_")[1] for t in train} for c in val)
    frames, fps, gt = voxceleb.load(train[0], {})
    assert frames.shape[0] == FRAMES and frames.dtype == np.uint8 and gt is None and fps == pytest.approx(25)

    (clip, *_), = [vw300.plan(dict(root=str(tree["vw300"]), test_videos=1, frames_per_clip=None), seed=0)]
    frames, _, gt = vw300.load(clip, {})
    assert frames.shape[0] == FRAMES and gt.shape == (FRAMES, 68, 2) and np.isfinite(gt).all()
    h, w = frames.shape[1:3]                            # dlib's points lie on the face, inside the frame
    assert (gt[..., 0] > 0).all() and (gt[..., 0] < w).all() and (gt[..., 1] > 0).all() and (gt[..., 1] < h).all()

    (real,) = youtube.plan(dict(root=str(tree["youtube"]), frames_per_clip=None))
    frames, _, gt = youtube.load(real, {})
    assert frames.shape[0] == FRAMES and gt is None


def test_pieces_are_evenly_spaced_and_deterministic():
    assert paper_tree.starts(0, 100, 10, 3) == [0, 45, 90]
    assert paper_tree.starts(4000, 4010, 10, 2) == [4000, 4000]
    with pytest.raises(ValueError, match="does not fit"):
        paper_tree.starts(0, 5, 10, 1)
