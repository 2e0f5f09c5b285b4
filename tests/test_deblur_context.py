"""``finenet deblur --context``: FineNet runs on a crop R times the face crop's side at the face
crop's scale, so that the paste-back's feather band lies around the face. Geometry, the face crop
inside it, the keep model judging that face crop, and the command end to end (pixels beyond the
larger crop untouched)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from conftest import small_finenet
from finenet import deblur
from finenet.deblur.paste import ContextCrop, check_context, context_crop
from finenet.deblur.tracking import crop_near
from finenet.errors import FineNetError

pytestmark = pytest.mark.usefixtures("one_torch_thread")   # conftest.py


@pytest.mark.parametrize("context, size", [(1, 96), (1.0, 96), (1.01, 100), (1.25, 120), (1.43, 140),
                                           (1.5, 144), (2, 192)])
def test_the_crop_is_the_smallest_allowed_side_at_least_context_times_the_face(context, size):
    crop = context_crop(96, 48, context, 4)
    assert crop == ContextCrop(96, size, size // 2)
    assert crop.size >= context * 96 and crop.size % 4 == 0 and (crop.size - 96) % 2 == 0
    assert crop.offset * 2 + crop.face == crop.size and crop.ratio == size / 96


def test_the_step_honours_the_networks_and_the_heatmaps():
    crop = context_crop(256, 64, 1.5, 16)                  # paper profile: heatmaps at 1/4, x16
    assert crop.size == 384 and crop.heatmap_size == 96
    assert context_crop(96, 32, 1.1, 4).size == 108        # heatmaps at 1/3: a multiple of 12


@pytest.mark.parametrize("bad", [0.5, 0.999, 4.5, float("nan"), float("inf"), True, "1.5", None])
def test_a_bad_context_is_one_line(bad):
    with pytest.raises(FineNetError) as err:
        check_context(bad)
    assert str(err.value).startswith("--context: must be a number from 1 to 4")
    assert "\n" not in str(err.value)


def test_the_face_crop_is_the_centre_of_the_context_crop(carphone):
    """The crop's centre ``face`` pixels sample the frame where the face crop does (the same
    window, the same scale): equal to within rounding."""
    frame = carphone[10]
    window = np.array([88.0, 70.0, 60.0], np.float32)       # (cx, cy, side): the crop enlarges
    for context in (1.25, 1.5):
        crop = context_crop(48, 24, context, 4)
        wide = crop_near(frame, window * np.array([1, 1, crop.ratio], np.float32), crop.size)
        face = crop_near(frame, window, crop.face)
        o = crop.offset
        diff = np.abs(wide[o:o + crop.face, o:o + crop.face].astype(int) - face)
        assert diff.max() <= 1, (context, diff.max())


@pytest.fixture(scope="module")
def small(tmp_path_factory, raw_params, params_writer):
    """Small random networks for 64-pixel face crops (``conftest.small_finenet``)."""
    return small_finenet(tmp_path_factory.mktemp("context"), raw_params, params_writer)


def test_the_keep_model_judges_the_face_crop_inside_the_context(small, monkeypatch):
    """``restore_residuals`` with a face crop inside the crop: the combiner's keep model (its
    blur measures) reads exactly the centre ``face`` pixels of each window, while the networks
    see the whole crop; without ``face`` it reads the whole crop."""
    from finenet.deblur.tracking import BufferStats, Frame
    from finenet.models import combine

    seen = []
    measure = combine.window_blur
    monkeypatch.setattr(combine, "window_blur", lambda w: (seen.append(w.clone()), measure(w))[1])
    model = deblur.load_finenet(small["models"], small["params"], torch.device("cpu"))
    gen = torch.Generator().manual_seed(1)
    frames = [Frame(i, np.zeros((4, 4, 3), np.uint8), crop=torch.rand(3, 96, 96, generator=gen),
                    heat=torch.rand(68, 48, 48, generator=gen)) for i in range(5)]
    windows = [(frames[2], frames)]
    for face, side in ((64, 64), (None, 96)):
        seen.clear()
        out = list(deblur.model.restore_residuals(iter(windows), model, torch.device("cpu"), 96,
                                                  BufferStats(), "models", face=face))
        assert len(out) == 1 and out[0][1].shape == (96, 96, 3)
        assert len(seen) == 1 and seen[0].shape == (1, 5, 3, side, side)
        lo = (96 - side) // 2
        expected = torch.stack([f.crop for f in frames])[None, ..., lo:lo + side, lo:lo + side]
        assert torch.equal(seen[0], expected)


def test_the_command_runs_on_the_larger_crop_and_leaves_what_lies_beyond_it(small, carphone, encode,
                                                                           tmp_path, detector, monkeypatch):
    """``--context 1.5`` end to end on a face in a wide frame: the summary names the crop, the
    face changes, and every column beyond the larger crop (plus smoothing slack) is untouched."""
    from finenet.data.video import read_video

    monkeypatch.setattr(deblur.model, "DlibDetector", lambda upsample=1: detector)
    faces = carphone[40:48]                                   # 176x144, a ~50 px face
    wide = np.concatenate([np.repeat(faces[:, :, :1], 150, 2), faces,
                           np.repeat(faces[:, :, -1:], 150, 2)], axis=2)   # 476x144
    src = encode(tmp_path / "wide.mkv", wide, options={"qp": "0"}, pix_fmt="yuv444p")
    params = small["params"]
    out = tmp_path / "out.mkv"
    summary = deblur.run(params, src, out, small["models"], "cpu", progress=False, lossless=True,
                         context=1.5)
    assert summary["context"] == 1.5 and summary["crop_size"] == 96     # 64 x 1.5
    (got, _), (given, _) = read_video(out, 0, len(wide)), read_video(src, 0, len(wide))
    margin = params["data"]["crop_margin"]
    for t in range(len(wide)):
        x0, y0, x1, y1 = detector.detect_faces(given[t])[0]
        diff = np.abs(got[t].astype(int) - given[t]).max(-1)
        assert diff[int(y0) + 5:int(y1) - 5, int(x0) + 5:int(x1) - 5].mean() > 15
        half = max(x1 - x0, y1 - y0) * margin * 1.5 / 2 + 10
        far = np.abs(np.arange(diff.shape[1]) - (x0 + x1) / 2) > half
        assert far.sum() >= 100 and diff[:, far].max() == 0, t


def test_judging_the_whole_window_is_finenets_own_output(small):
    """``output`` with ``judged`` = the input window is ``FineNet.forward``'s output exactly: the
    deblur path composes the networks as FineNet does."""
    model = deblur.load_finenet(small["models"], small["params"], torch.device("cpu"))
    gen = torch.Generator().manual_seed(2)
    frames, heat = torch.rand(2, 5, 3, 64, 64, generator=gen), torch.rand(2, 5, 68, 32, 32, generator=gen)
    with torch.inference_mode():
        torch.testing.assert_close(deblur.model.output(model, frames, heat, frames),
                                   model(frames, heat)["output"], rtol=0, atol=0)


@pytest.mark.parametrize("bad", [-0.1, 10.5, float("nan"), True, "1"])
def test_a_bad_keep_bias_is_one_line(bad):
    from finenet.deblur.model import check_keep_bias

    with pytest.raises(FineNetError) as err:
        check_keep_bias(bad)
    assert str(err.value).startswith("--keep-bias: must be a number from 0 to 10")


def test_keep_bias_returns_frames_the_keep_model_scores_above_minus_the_bias(small):
    """A keep logit of -0.5 on every window: deblurred at bias 0 and 0.25, returned exactly as it
    is at bias 1 (with or without a judged face crop)."""
    model = copy.deepcopy(deblur.load_finenet(small["models"], small["params"], torch.device("cpu")))
    c = model.combiner
    with torch.no_grad():
        c.frame_keep.weight.zero_()
        c.frame_keep.bias.fill_(-0.5 / c.keep_gain)
    gen = torch.Generator().manual_seed(3)
    frames, heat = torch.rand(2, 5, 3, 64, 64, generator=gen), torch.rand(2, 5, 68, 32, 32, generator=gen)
    with torch.inference_mode():
        plain = deblur.model.output(model, frames, heat)
        for judged in (None, frames[..., 8:56, 8:56]):
            assert torch.equal(deblur.model.output(model, frames, heat, judged, 0.25),
                               deblur.model.output(model, frames, heat, judged))
            assert torch.equal(deblur.model.output(model, frames, heat, judged, 1.0), frames[:, 2])
    assert (plain - frames[:, 2]).abs().max() > 0.05
