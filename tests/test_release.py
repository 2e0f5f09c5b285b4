"""The release model (finenet/tiers/release.py): the bench seed best on validation, copied with a
manifest whose digests match the bench report's, and checked byte for byte before use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from finenet.tiers import release
from finenet.checkpoint import content_digest, save_model
from finenet.errors import FineNetError
from finenet.layout import Layout, run_name


def fake_bench(root: Path, val: dict[int, float]) -> None:
    """Seed folders with small saved networks and combiner summaries, and the bench manifest."""
    models = {}
    for seed, psnr in val.items():
        layout = Layout(root / release.seed_dir(seed))
        digests = {}
        for k, (net, variant) in enumerate(release.FINENET_RUNS):
            torch.manual_seed(seed * 10 + k)
            path = layout.model_path(net, variant)
            save_model(path, "test", {"seed": seed}, torch.nn.Linear(3, 2))
            digests[run_name(net, variant)] = content_digest(path).hex()[:16]
        summary = layout.train_summary(*release.SELECT_BY)
        summary.parent.mkdir(parents=True, exist_ok=True)
        summary.write_text(json.dumps({"val_psnr_best": psnr}))
        models[str(seed)] = digests
    manifest = root / release.BENCH_MANIFEST
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"profile": "bench", "seeds": list(val), "models": models}))


@pytest.fixture
def bench(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake_bench(tmp_path, {1: 31.2, 2: 31.9, 3: 31.5})
    return tmp_path


def test_the_seed_best_on_validation_is_released_with_its_digests(bench):
    manifest = release.build([1, 2, 3])
    assert manifest["seed"] == 2 and manifest["val_psnr"] == {"1": 31.2, "2": 31.9, "3": 31.5}
    for net, variant in release.FINENET_RUNS:
        src = Layout(release.seed_dir(2)).model_path(net, variant)
        dst = Layout().model_path(net, variant).relative_to("models")
        copied = release.RELEASE / dst
        assert copied.read_bytes() == src.read_bytes()
        entry = manifest["files"][dst.as_posix()]
        assert entry["sha256"] == release.sha256(copied) and entry["run"] == run_name(net, variant)
    assert json.loads((release.RELEASE / "manifest.json").read_text()) == manifest
    assert release.verify(release.RELEASE) == manifest


def test_a_tie_goes_to_the_lowest_seed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake_bench(tmp_path, {3: 30.0, 1: 30.0, 2: 29.0})
    assert release.choose([3, 1, 2])[0] == 1


def test_weights_that_are_not_the_bench_reports_are_refused(bench):
    path = Layout(release.seed_dir(2)).model_path("interp", "full")
    save_model(path, "test", {"seed": 2}, torch.nn.Linear(3, 2))     # other random weights
    with pytest.raises(FineNetError, match="not the .* records for seed 2"):
        release.build([1, 2, 3])
    assert not release.RELEASE.exists()                              # nothing half-written


def test_a_flipped_byte_or_a_missing_file_fails_verification(bench):
    release.build([1, 2, 3])
    target = release.RELEASE / "enhance" / "full" / "model.pt"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(FineNetError, match="differs from its release manifest") as err:
        release.verify(release.RELEASE)
    assert str(target) in str(err.value)
    target.unlink()
    with pytest.raises(FineNetError, match="missing"):
        release.verify(release.RELEASE)


def test_a_folder_without_a_manifest_is_not_checked(tmp_path):
    assert release.verify(tmp_path) is None


def test_an_unfinished_seed_is_one_line(bench):
    Layout(release.seed_dir(3)).train_summary(*release.SELECT_BY).unlink()
    with pytest.raises(FineNetError, match="seed 3 of the bench tier has not finished"):
        release.build([1, 2, 3])


def test_the_committed_release_matches_its_manifest():
    """The release folder in the package is intact (what `finenet deblur` loads by default), and
    it is the bench run the committed reports/bench/ describes."""
    root = release.installed()
    assert root == Path(__file__).resolve().parents[1] / release.RELEASE
    manifest = release.verify(root)
    assert manifest is not None, f"{root}: no release manifest (python -m finenet.tiers.release)"
    bench = json.loads((root.parents[1] / release.BENCH_MANIFEST).read_text())["models"][str(manifest["seed"])]
    assert {e["run"]: e["content_digest"] for e in manifest["files"].values()} == \
        {k: v for k, v in bench.items() if k in {e["run"] for e in manifest["files"].values()}}
    assert manifest["seed"] == max(sorted(map(int, manifest["val_psnr"])), key=lambda s: manifest["val_psnr"][str(s)])
    assert {e["run"] for e in manifest["files"].values()} == {run_name(n, v) for n, v in release.FINENET_RUNS}


def test_deblur_loads_the_release_by_default_and_refuses_a_corrupted_copy(tmp_path):
    """``finenet deblur`` without --checkpoint assembles FineNet from the packaged release (with
    the repository's params); a copy with one flipped byte is refused before it is loaded."""
    import shutil

    from finenet.deblur import load_finenet
    from finenet.params import load_params

    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    model = load_finenet(None, params, torch.device("cpu"))
    assert sum(p.numel() for p in model.parameters()) > 0
    copy = tmp_path / "weights"
    shutil.copytree(release.installed(), copy)
    target = copy / "combine" / "late" / "model.pt"
    data = bytearray(target.read_bytes())
    data[-100] ^= 0x10
    target.write_bytes(bytes(data))
    with pytest.raises(FineNetError, match="differs from its release manifest"):
        load_finenet(copy, params, torch.device("cpu"))
