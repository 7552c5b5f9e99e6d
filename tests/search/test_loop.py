"""The bilevel loop: determinism, resume, warm-up, run directory contents, early errors."""

import json

import pytest
import torch

from raynas.data import DatasetStore
from raynas.errors import RaynasError
from raynas.search.config import SearchConfig
from raynas.search.loop import StopSearch, run_search

QUICK = dict(dataset="digits", preset="tiny", epochs=3, max_steps_per_epoch=3)


@pytest.fixture(scope="module")
def store(suite_home):
    return DatasetStore(suite_home)


def _states_equal(a, b):
    sa, sb = a.model.state_dict(), b.model.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_same_seed_same_result(store):
    cfg = SearchConfig(**QUICK)
    a, b = run_search(cfg, store=store, verbose=False), run_search(cfg, store=store, verbose=False)
    assert _states_equal(a, b) and a.genotype == b.genotype
    c = run_search(cfg.replace(seed=1), store=store, verbose=False)
    assert not torch.equal(a.model.alphas_normal, c.model.alphas_normal)


class StopAt:
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, metrics, state):
        if state.epoch == self.epoch:
            raise StopSearch


@pytest.mark.parametrize("algo", ["darts", "drnas"])
def test_resume_equals_uninterrupted(store, tmp_path, algo):
    cfg = SearchConfig(**QUICK, algo=algo, warmup_epochs=1)
    full = run_search(cfg, store=store, run_dir=tmp_path / "full", verbose=False)
    stopped = run_search(cfg, store=store, run_dir=tmp_path / "part", callbacks=[StopAt(2)], verbose=False)
    assert stopped.status == "stopped" and len(stopped.history) == 2
    resumed = run_search(cfg, store=store, run_dir=tmp_path / "part", resume=True, verbose=False)
    assert resumed.status == "finished" and len(resumed.history) == 3
    assert _states_equal(full, resumed)
    assert [h["val_loss"] for h in full.history] == [h["val_loss"] for h in resumed.history]


def test_warmup_keeps_alphas_fixed(store):
    cfg = SearchConfig(**{**QUICK, "epochs": 2}, warmup_epochs=2)
    torch.manual_seed(cfg.seed)
    result = run_search(cfg, store=store, verbose=False)
    from raynas.space.supernet import create_supernet

    initial = create_supernet(result.space, seed=cfg.seed)
    assert torch.equal(initial.alphas_normal, result.model.alphas_normal)
    assert not any(h["arch_updates"] for h in result.history)


def test_run_directory_contents(store, tmp_path):
    result = run_search(SearchConfig(**{**QUICK, "epochs": 2}), store=store, run_dir=tmp_path, verbose=False)
    data = json.loads((tmp_path / "result.json").read_text())
    assert data["status"] == "finished" and data["epochs_done"] == 2
    assert data["config"]["dataset"] == "digits" and data["space"]["image_size"] == 8
    assert data["dataset"]["content_hash"] == store.info("digits").content_hash
    epoch = data["history"][0]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "alpha_entropy", "skip_count", "epoch_s", "lr",
                "search_step_s"):
        assert key in epoch, key
    assert epoch["steps"] == 3
    assert json.loads((tmp_path / "genotype.json").read_text()) == result.genotype.to_json()
    for png in ("genotype.png", "alphas.png", "curves.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    assert len(list((tmp_path / "checkpoint").glob("checkpoint-*.safetensors"))) == 1
    assert "Genotype" in (tmp_path / "summary.md").read_text()


@pytest.mark.parametrize("changes, message", [
    ({"dataset": "no-such-data"}, "not found"),
    ({"algo": "enas"}, "unknown search algorithm"),
    ({"preset": "xl"}, "unknown preset"),
    ({"nodes": 1}, "at least 2 intermediate nodes"),
    ({"image_size": 4}, "image size"),
    ({"ops": ("none", "conv9")}, "unknown operation"),
])
def test_invalid_configurations_fail_before_training(store, tmp_path, changes, message):
    with pytest.raises(RaynasError, match=message):
        run_search(SearchConfig(**{**QUICK, **changes}), store=store, run_dir=tmp_path, verbose=False)
    assert not (tmp_path / "checkpoint").exists()


def test_resume_without_checkpoint(store, tmp_path):
    with pytest.raises(RaynasError, match="nothing to resume"):
        run_search(SearchConfig(**QUICK), store=store, run_dir=tmp_path, resume=True, verbose=False)


def test_bad_search_config_values():
    with pytest.raises(RaynasError, match="epochs"):
        SearchConfig("digits", epochs=0)
    with pytest.raises(RaynasError, match="warmup_epochs"):
        SearchConfig("digits", epochs=2, warmup_epochs=3)
    assert SearchConfig.from_json(SearchConfig("digits", ops=("none", "skip_connect")).to_json()).ops == (
        "none", "skip_connect")
