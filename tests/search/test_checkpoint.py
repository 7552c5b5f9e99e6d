"""Checkpoints: nested states round-trip without pickle; damaged or half-written ones never load wrongly."""

import json

import pytest
import torch

from raynas.errors import RaynasError
from raynas.search.checkpoint import META_FILE, TENSORS_FILE, load_checkpoint, save_checkpoint


def test_nested_state_round_trip_keeps_types(tmp_path):
    opt_state = {"state": {0: {"momentum_buffer": torch.randn(3)}, 7: {"step": torch.tensor(4.0)}},
                 "param_groups": [{"lr": 0.1, "params": [0, 7], "betas": (0.5, 0.999)}]}
    state = {"epoch": 3, "opt": opt_state, "rng": torch.get_rng_state(), "history": [{"a": 1.5, "b": None}]}
    save_checkpoint(tmp_path, state)
    back = load_checkpoint(tmp_path)
    assert back["epoch"] == 3 and back["history"] == [{"a": 1.5, "b": None}]
    assert set(back["opt"]["state"]) == {0, 7}
    assert torch.equal(back["opt"]["state"][0]["momentum_buffer"], opt_state["state"][0]["momentum_buffer"])
    assert torch.equal(back["rng"], state["rng"])
    assert back["opt"]["param_groups"][0]["params"] == [0, 7]


def _tensor_file(directory):
    [path] = directory.glob("checkpoint-*.safetensors")
    return path


def test_tampered_tensor_file_is_refused(tmp_path):
    save_checkpoint(tmp_path, {"w": torch.zeros(10)})
    path = _tensor_file(tmp_path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(RaynasError, match="checksum"):
        load_checkpoint(tmp_path)


def test_a_crash_before_the_json_is_replaced_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import raynas.search.checkpoint as checkpoint

    save_checkpoint(tmp_path, {"epoch": 1, "w": torch.ones(3)})
    first = _tensor_file(tmp_path)

    def crash(*args, **kwargs):
        raise OSError("killed")

    monkeypatch.setattr(checkpoint, "atomic_write_text", crash)  # the new tensors are on disk, the JSON not
    with pytest.raises(OSError, match="killed"):
        save_checkpoint(tmp_path, {"epoch": 2, "w": torch.zeros(3)})
    assert len(list(tmp_path.glob("checkpoint-*.safetensors"))) == 2
    back = load_checkpoint(tmp_path)
    assert back["epoch"] == 1 and torch.equal(back["w"], torch.ones(3))
    monkeypatch.undo()
    save_checkpoint(tmp_path, {"epoch": 3, "w": torch.full((3,), 3.0)})
    assert [p.name for p in tmp_path.glob("checkpoint-*.safetensors")] != [first.name]  # old files cleaned
    assert len(list(tmp_path.glob("checkpoint-*.safetensors"))) == 1 and load_checkpoint(tmp_path)["epoch"] == 3


def test_checkpoints_of_the_old_layout_still_load(tmp_path):
    save_checkpoint(tmp_path, {"epoch": 4})
    meta = json.loads((tmp_path / META_FILE).read_text())
    _tensor_file(tmp_path).rename(tmp_path / TENSORS_FILE)
    del meta["tensors"]
    (tmp_path / META_FILE).write_text(json.dumps(meta))
    assert load_checkpoint(tmp_path)["epoch"] == 4


def test_missing_checkpoint(tmp_path):
    with pytest.raises(RaynasError, match="no checkpoint"):
        load_checkpoint(tmp_path)
