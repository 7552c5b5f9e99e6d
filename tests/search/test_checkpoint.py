import pytest
import torch

from raynas.errors import RaynasError
from raynas.search.checkpoint import TENSORS_FILE, load_checkpoint, save_checkpoint


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


def test_tampered_tensor_file_is_refused(tmp_path):
    save_checkpoint(tmp_path, {"w": torch.zeros(10)})
    data = bytearray((tmp_path / TENSORS_FILE).read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / TENSORS_FILE).write_bytes(bytes(data))
    with pytest.raises(RaynasError, match="checksum"):
        load_checkpoint(tmp_path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(RaynasError, match="no checkpoint"):
        load_checkpoint(tmp_path)
