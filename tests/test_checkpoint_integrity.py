"""Checkpoint integrity (issue 16, holes 4-6): a model file's recorded digest catches a flipped
byte in its weights; a training state never unpickles arbitrary objects; an unreadable training
state is reported, kept aside, and the previous one is used."""

from __future__ import annotations

import pathlib

import pytest
import torch

from finenet.checkpoint import content_digest, load_model, load_state, previous_state, save_model, save_state
from finenet.errors import FineNetError
from finenet.models import build

MARK = 0.123456789          # a value whose float32 bytes are found in the file


def small_model():
    model = build("combine_late", feat=4, blocks=1)
    with torch.no_grad():
        model.head.weight.fill_(MARK)
    return model


def flip_in_tensor(path: pathlib.Path) -> None:
    data = bytearray(path.read_bytes())
    needle = torch.tensor([MARK] * 4, dtype=torch.float32).numpy().tobytes()
    at = data.find(needle)
    assert at > 0, "the weights' bytes were not found in the file"
    data[at + 1] ^= 0x10                        # one bit of one weight
    path.write_bytes(bytes(data))


def test_a_model_with_a_flipped_weight_byte_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    save_model(path, "combine_late", {"feat": 4, "blocks": 1}, small_model())
    assert load_model(path) is not None
    blob = torch.load(path, weights_only=True)
    assert blob["digest"] == content_digest(path).hex()        # the recorded digest is the content's
    flip_in_tensor(path)
    torch.load(path, weights_only=True)                         # torch itself does not notice
    with pytest.raises(FineNetError, match=r"corrupt model file: its weights do not match the SHA-256"):
        load_model(path)
    try:
        load_model(path)
    except FineNetError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)


def test_a_model_saved_without_a_digest_still_loads_and_keeps_its_content_digest(tmp_path):
    """Files written before digests were recorded (the bench's, the release's) load as before, and
    the digest entry does not change a file's content digest."""
    model = small_model()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    old = tmp_path / "old.pt"
    torch.save({"arch": "combine_late", "config": {"feat": 4, "blocks": 1}, "state_dict": state}, old)
    new = tmp_path / "new.pt"
    save_model(new, "combine_late", {"feat": 4, "blocks": 1}, model)
    assert content_digest(old) == content_digest(new)
    assert load_model(old) is not None


class Planted:
    """Unpickling this runs code: it would create the file named."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.target),)


def test_a_training_state_with_a_pickled_object_runs_no_code(tmp_path):
    ckpt = tmp_path / "last.pt"
    flag = tmp_path / "code_ran"
    torch.save({"step": 3, "payload": Planted(flag)}, ckpt)      # what a hostile remote could serve
    warnings = []
    assert load_state(ckpt, warn=warnings.append) is None
    assert not flag.exists()
    assert len(warnings) == 1 and "unreadable training checkpoint" in warnings[0] and str(ckpt) in warnings[0]
    assert (tmp_path / "last.pt.corrupt").is_file() and not ckpt.exists()


def test_the_state_saved_before_is_kept_and_used_when_the_last_is_unreadable(tmp_path):
    ckpt = tmp_path / "last.pt"
    save_state(ckpt, step=3, model={"w": torch.ones(2)}, history=[[1, 0.5, 1e-3]])
    assert not previous_state(ckpt).exists()
    save_state(ckpt, step=6, model={"w": torch.zeros(2)}, history=[[1, 0.5, 1e-3]])
    assert load_state(ckpt)["step"] == 6 and load_state(previous_state(ckpt))["step"] == 3
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])      # a torn write, a bad disk
    warnings = []
    state = load_state(ckpt, warn=warnings.append)
    assert state["step"] == 3 and torch.equal(state["model"]["w"], torch.ones(2))
    assert "unreadable training checkpoint" in warnings[0] and "kept aside" in warnings[0]
    assert "resuming from the previous checkpoint" in warnings[1] and "step 3" in warnings[1]
    assert (tmp_path / "last.pt.corrupt").is_file()


def test_no_state_at_all_is_a_fresh_start(tmp_path):
    warnings = []
    assert load_state(tmp_path / "last.pt", warn=warnings.append) is None and warnings == []
