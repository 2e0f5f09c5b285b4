"""Issue 17, stable artifacts: content-stable model files, training fingerprints on weights, the
torch thread count, ``loader.num_frames`` checked against the networks, damaged HDF5 shards as one
line, kernel ranges honoured, variable-frame-rate timing kept."""

from __future__ import annotations

import copy
import hashlib
import inspect
import os
import shutil
from fractions import Fraction
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch

from finenet.stages import train
from finenet.checkpoint import load_model, load_state, save_model, save_state
from finenet.errors import FineNetError
from finenet.layout import model_path, run_name
from finenet.models import build
from finenet.models.config import net_config
from finenet.params import resolve
from finenet.tiers.release import FINENET_RUNS


def md5(path) -> str:
    return hashlib.md5(open(path, "rb").read()).hexdigest()


def tiny_predeblur():
    torch.manual_seed(0)
    config = dict(feat=4, input_stride=1, levels=2, extract_blocks=1)
    return config, build("predeblur", **config)


# ------------------------------------------------------------------- 1. content-stable model files

def test_same_weights_give_the_same_model_file_bytes(tmp_path):
    config, model = tiny_predeblur()
    a, b = tmp_path / "a" / "model.pt", tmp_path / "b" / "model.pt"
    save_model(a, "predeblur", config, model, fingerprint="f")
    save_model(b, "predeblur", config, model, fingerprint="f")
    save_model(a, "predeblur", config, model, fingerprint="f")     # again onto itself
    assert md5(a) == md5(b)
    loaded = load_model(a)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
    state = dict(fingerprint="f", step=3, model=model.state_dict(), history=[[1, 0.5, 1e-3]])
    save_state(tmp_path / "s1.pt", **state)
    save_state(tmp_path / "s2.pt", **state)
    assert md5(tmp_path / "s1.pt") == md5(tmp_path / "s2.pt")
    assert load_state(tmp_path / "s1.pt")["step"] == 3


# --------------------------------------------------------- 2. fingerprints hash weights, not bytes

def test_fingerprint_sees_upstream_weights_not_file_bytes(tmp_path, monkeypatch, raw_params):
    monkeypatch.chdir(tmp_path)
    params = resolve(copy.deepcopy(raw_params))
    config, model = tiny_predeblur()
    upstream = model_path("predeblur")
    save_model(upstream, "predeblur", config, model, fingerprint="up")
    arch, cfg = net_config(params, "enhance", "full")
    before = train.fingerprint(params, "enhance", "full", arch, cfg)

    # the same weights and metadata, saved by torch.save to a file: other bytes (zip folder name)
    blob = torch.load(upstream, weights_only=True)
    other = tmp_path / "elsewhere.pt"
    torch.save(blob, other)
    assert md5(other) != md5(upstream)
    shutil.copy(other, upstream)
    assert train.fingerprint(params, "enhance", "full", arch, cfg) == before

    blob["state_dict"] = {k: v + 1e-3 if v.is_floating_point() else v for k, v in blob["state_dict"].items()}
    torch.save(blob, upstream)                      # other weights: the run must restart
    assert train.fingerprint(params, "enhance", "full", arch, cfg) != before


# ------------------------------------------------------------------------------ 3. thread count

def test_threads_param_is_validated(raw_params):
    assert resolve(copy.deepcopy(raw_params))["train"]["threads"] == 2
    for bad in (0, -1, 1.5):
        raw = copy.deepcopy(raw_params)
        raw["train"]["threads"] = bad
        with pytest.raises(FineNetError, match="train.threads"):
            resolve(raw)


def test_train_sets_threads_before_building_and_records_them(tmp_path, monkeypatch, raw_params):
    monkeypatch.chdir(tmp_path)
    raw = copy.deepcopy(raw_params)
    raw["train"].update(threads=1, device="cpu")
    params = resolve(raw)
    before = torch.get_num_threads()
    seen = []

    class Built(Exception):
        pass

    def fake_build(arch, **config):
        seen.append(torch.get_num_threads())
        raise Built

    monkeypatch.setattr(train, "build", fake_build)
    try:
        with pytest.raises(Built):
            train.run(params, "predeblur")
        assert seen == [1]

        config, model = tiny_predeblur()     # the summary written at the end records the count
        given = dict(net="predeblur", variant=None, arch="predeblur", config=config, model=model,
                     history=[[1, 0.5, 1e-3], [2, 0.4, 1e-3]], seconds=1.0, fp="f",
                     curve=[[2, 30.0]], best={"step": 2, "psnr": 30.0}, val_frames="blurred centres", lr=1e-3)
        names = inspect.signature(train.finish).parameters
        result = train.finish(**{k: given[k] for k in names})
        assert result["threads"] == 1 and result["lr"] == 1e-3   # and the rate it trained at
        import json
        assert json.loads((tmp_path / "reports/train/predeblur.json").read_text())["threads"] == 1
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------- 4. loader.num_frames vs the networks

@pytest.mark.parametrize("n,needle", [(3, "loader.num_frames"), (4, "loader.num_frames"),
                                      (6, "loader.num_frames")])
def test_num_frames_the_networks_cannot_use_is_rejected(raw_params, n, needle):
    raw = copy.deepcopy(raw_params)
    raw["loader"]["num_frames"] = n
    with pytest.raises(FineNetError, match=needle) as err:
        resolve(raw)
    assert "\n" not in str(err.value)


def test_num_frames_seven_is_usable_and_a_baseline_must_agree(raw_params):
    raw = copy.deepcopy(raw_params)
    raw["loader"]["num_frames"] = 7
    raw["baselines"] = {k: {kk: vv for kk, vv in v.items() if kk != "num_frames"}
                        for k, v in raw["baselines"].items()}
    resolve(copy.deepcopy(raw))                                   # interp reads t-2 .. t+2 of 7
    for net in ("enhance", "interp"):                             # and the networks build
        arch, cfg = net_config(resolve(copy.deepcopy(raw)), net, "full")
        build(arch, **cfg)
    raw["baselines"]["edvr"]["num_frames"] = 5
    with pytest.raises(FineNetError, match=r"baselines\.edvr\.num_frames: 5 differs from loader.num_frames \(7\)"):
        resolve(raw)


# ------------------------------------------------------------------------- 5. damaged HDF5 shards

def make_set(root, clips=("c0", "c1"), frames=8, size=32):
    """A packed set in the pipeline's layout: shards written by the heatmaps stage's writer
    (gzip, one chunk per frame), a set file of external links (as the pack stage makes)."""
    from finenet.stages.heatmaps import write_shard

    rng = np.random.default_rng(0)
    (root / "data" / "h5").mkdir(parents=True)
    (root / "data" / "sets").mkdir(parents=True)
    yy, xx = np.mgrid[:size, :size]
    for k, clip in enumerate(clips):
        base = ((np.sin(xx / 3 + k) + np.cos(yy / 4)) * 60 + 128)[None, ..., None]
        img = np.clip(base + rng.normal(0, 20, (frames, size, size, 3)), 0, 255).astype(np.uint8)
        heat = rng.integers(0, 255, (frames, 68, size // 2, size // 2), dtype=np.uint8)
        kernel = np.zeros((frames, 4), np.float32)
        kernel[:, 0] = 5
        write_shard(root / "data" / "h5" / f"{clip}.h5", SimpleNamespace(clip_id=clip), {},
                    dict(blurry=img, sharp=img, heatmaps=heat, heatmaps_sharp=heat, kernel=kernel), {})
    with h5py.File(root / "data" / "sets" / "test.h5", "w") as f:
        for clip in clips:
            f[clip] = h5py.ExternalLink(f"../h5/{clip}.h5", f"/{clip}")
    return root / "data" / "sets" / "test.h5"


def one_line(exc) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text, text
    return text


def test_truncated_shard_fails_before_training_naming_the_file(tmp_path, monkeypatch):
    from finenet.stages import evaluate
    from finenet.data.windows import WindowDataset

    set_path = make_set(tmp_path)
    shard = tmp_path / "data" / "h5" / "c1.h5"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    with pytest.raises(FineNetError) as err:
        WindowDataset(set_path, 5, 16, True)
    assert "c1.h5" in one_line(err.value) and "unreadable HDF5 shard" in str(err.value)
    monkeypatch.chdir(tmp_path)                                  # evaluate: the same line
    with pytest.raises(FineNetError, match="c1.h5"):
        evaluate.test_sets(True)
    shard.unlink()
    with pytest.raises(FineNetError, match="c1.h5.*not found"):
        WindowDataset(set_path, 5, 16, True)


def test_corrupt_chunk_fails_on_read_naming_the_file(tmp_path):
    from finenet.data.windows import WindowDataset

    set_path = make_set(tmp_path)
    shard = tmp_path / "data" / "h5" / "c0.h5"
    with h5py.File(shard, "r") as f:
        info = f["c0/blurry"].id.get_chunk_info(3)        # frame 3's chunk
    assert info.size > 200
    with open(shard, "r+b") as fh:
        fh.seek(info.byte_offset + info.size // 2)
        fh.write(bytes(np.random.default_rng(1).integers(0, 256, 64, dtype=np.uint8)))
    ds = WindowDataset(set_path, 5, 16, True)                # metadata intact: opens
    with pytest.raises(FineNetError) as err:
        for i in range(len(ds)):
            ds[(i, 0)]
    assert "c0.h5" in one_line(err.value) and "damaged" in str(err.value)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=1)   # from a worker too
    with pytest.raises(FineNetError) as err:
        for _ in loader:
            pass
    assert "c0.h5" in one_line(err.value)


# ----------------------------------------------------------------------- 6. kernel ranges honoured

def test_line_kernel_sizes_stay_in_the_configured_range(raw_params):
    from finenet.ops.degrade import sample_degradation

    raw = copy.deepcopy(raw_params)
    raw["blur"].update(p_sharp=0.0, p_mild=0.0, families={"line": 1.0, "trajectory": 0.0})
    raw["blur"]["line"]["kernel_size"] = [4, 10]
    cfg = resolve(raw)["blur"]
    rng = np.random.default_rng(0)
    ks = []
    for _ in range(3000):
        deg = sample_degradation(rng, cfg)
        ks.append(deg.params["k"])
        assert deg.kernel.shape == (deg.params["k"],) * 2 and deg.length == deg.params["k"]
    assert set(ks) == {5, 7, 9}


# ------------------------------------------------------------------------------------ 7. VFR timing

def vfr_clip(path, steps_ms=(40, 80), frames=30, rate=25):
    """A clip whose header says ``rate`` fps but whose frames are ``steps_ms`` apart in turn."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=rate)
        s.width = s.height = 64
        s.pix_fmt = "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        t = 0
        for i in range(frames):
            img = np.full((64, 64, 3), (i * 8) % 256, np.uint8)
            img[:, : i + 2] = 255
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = t, Fraction(1, 1000)
            t += steps_ms[i % len(steps_ms)]
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def timestamps(path) -> list[float]:
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [float(f.pts * s.time_base) for f in c.decode(s)]


@pytest.mark.parametrize("out_name,fmt", [("out.mp4", "mp4"), ("out.mkv", "matroska")])
def test_variable_frame_rate_keeps_its_timing(tmp_path, out_name, fmt):
    from finenet.video.stream import VideoSink, VideoSource

    src = vfr_clip(tmp_path / "vfr.mkv")
    truth = timestamps(src)
    assert truth[-1] == pytest.approx(1.72)           # 30 frames 40/80 ms apart; the header says 25 fps
    video = VideoSource(src)
    assert video.fps == 25
    note = video.check_timing()
    assert note and "\n" not in note and "25 fps" in note and video.variable_rate
    sink = VideoSink(tmp_path / out_name, video.width, video.height, video.fps, fmt,
                     layout=video.layout, time_base=video.time_base)
    for picture in video:
        sink.write(picture)
    sink.close()
    video.close()
    got = timestamps(tmp_path / out_name)
    assert len(got) == 30 and np.allclose(got, truth, atol=1e-3)


def test_constant_rate_input_is_left_as_it_was(tmp_path, encode):
    from finenet.video.stream import VideoSource

    frames = np.zeros((10, 32, 32, 3), np.uint8)
    for path, kw in ((tmp_path / "a.mp4", {}), (tmp_path / "b.mkv", dict(rate=Fraction(30000, 1001))),
                     (tmp_path / "c.avi", dict(codec="mpeg4"))):
        video = VideoSource(encode(path, frames, **kw))
        assert video.check_timing() is None and not video.variable_rate, path
        video.close()


def test_deblur_keeps_a_variable_frame_rate_clips_duration(tmp_path, carphone, raw_params, params_writer,
                                                         capfd):
    """``finenet deblur`` on a face clip whose header says 25 fps but whose 20 frames span 1.14 s:
    one warning line, and the output keeps the source timestamps (before: 0.8 s)."""
    import av

    from finenet.cli import main

    raw = copy.deepcopy(raw_params)
    raw["model"].update(feat=8, groups=2, extract_blocks=1, recon_blocks=1, heatmap_ch=4, max_offset=4.0,
                        combine_feat=4, combine_blocks=1)
    raw["data"]["crop_size"], raw["landmarks"]["heatmap_size"] = 64, 32
    params = resolve(raw, "embedded")
    torch.manual_seed(0)
    for net, variant in FINENET_RUNS:
        arch, config = net_config(params, net, variant)
        save_model(tmp_path / "models" / run_name(net, variant) / "model.pt", arch, config,
                   build(arch, **config))
    src = tmp_path / "face.mkv"
    with av.open(str(src), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.height, s.width = carphone.shape[1:3]
        s.pix_fmt = "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        for i, frame in enumerate(carphone[:20]):
            f = av.VideoFrame.from_ndarray(frame, format="rgb24")
            f.pts, f.time_base = i * 60, Fraction(1, 1000)        # 16.7 fps, the header says 25
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        capfd.readouterr()
        rc = main(["deblur", str(src), "-o", str(tmp_path / "out.mp4"), "--checkpoint", str(tmp_path / "models"),
                   "--params", str(params_writer(tmp_path / "params.yaml", params)), "--preset", "ultrafast"])
    finally:
        torch.set_num_threads(before)
    err = capfd.readouterr().err
    assert rc == 0, err[-2000:]
    warnings = [ln for ln in err.splitlines() if "warning" in ln]
    assert len(warnings) == 1 and "timestamps" in warnings[0], err
    assert np.allclose(timestamps(tmp_path / "out.mp4"), timestamps(src), atol=1e-3)
