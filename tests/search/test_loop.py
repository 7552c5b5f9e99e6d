"""The bilevel loop: determinism, resume, warm-up, run directory contents, early errors."""

import json
import re

import pytest
import torch

from raynas.data import DatasetStore
from raynas.errors import RaynasError
from raynas.search.config import SearchConfig
from raynas.search.loop import StopSearch, check_config, run_search

QUICK = dict(dataset="digits", preset="tiny", epochs=3, max_steps_per_epoch=3, threads=1)  # fixed: bit-exact


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
    resumed = run_search(store=store, run_dir=tmp_path / "part", resume_from=tmp_path / "part" / "checkpoint",
                         verbose=False)  # the checkpoint holds the config
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
    ({"nodes": 1}, r"nodes \(--nodes\) must be >= 2"),
    ({"image_size": 4}, "image_size"),
    ({"image_size": 10, "preset": "cpu"}, "image size 10 is too small or not divisible by 4"),
    ({"w_lr": float("nan")}, "w_lr"),
    ({"device": "bogus"}, "unknown device 'bogus'"),
    ({"ops": ("none", "conv9")}, "unknown operation"),
])
def test_invalid_configurations_fail_before_training(store, tmp_path, changes, message):
    try:
        config = SearchConfig(**{**QUICK, **changes})
    except RaynasError as exc:  # a value out of range: the config itself refuses it
        assert re.search(message, str(exc))
        return
    with pytest.raises(RaynasError, match=message):
        check_config(config, store)  # the cheap check finds it already
    with pytest.raises(RaynasError, match=message):
        run_search(config, store=store, run_dir=tmp_path, verbose=False)
    assert not (tmp_path / "checkpoint").exists()


def test_resume_without_checkpoint(store, tmp_path):
    with pytest.raises(RaynasError, match="no checkpoint in"):
        run_search(SearchConfig(**QUICK), store=store, run_dir=tmp_path, resume_from=tmp_path, verbose=False)


def test_resume_refuses_another_config_or_changed_data(store, tmp_path):
    cfg = SearchConfig(**{**QUICK, "epochs": 2})
    run_search(cfg, store=store, run_dir=tmp_path, callbacks=[StopAt(1)], verbose=False)
    with pytest.raises(RaynasError, match="belongs to another search: epochs 2 there vs 3 here"):
        run_search(cfg.replace(epochs=3), store=store, resume_from=tmp_path / "checkpoint", verbose=False)
    from raynas.search.checkpoint import META_FILE

    meta_path = tmp_path / "checkpoint" / META_FILE
    meta = json.loads(meta_path.read_text())
    meta["info"]["datasets"][0]["content_hash"] = "0" * 16
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(RaynasError, match="dataset 'digits' changed since the search started"):
        run_search(store=store, resume_from=tmp_path / "checkpoint", verbose=False)


class Explode:
    """Makes the weights non-finite after the first epoch."""

    def on_epoch_end(self, metrics, state):
        with torch.no_grad():
            for p in state.model.weight_parameters():
                p.fill_(float("nan"))


def test_a_diverged_search_stops_and_says_so(store, tmp_path):
    result = run_search(SearchConfig(**QUICK), store=store, run_dir=tmp_path, callbacks=[Explode()], verbose=False)
    assert result.status == "diverged" and len(result.history) == 2
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "diverged"
    from raynas.search.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "checkpoint")["epoch"] == 1  # the diverged epoch is never a checkpoint


def test_bad_search_config_values():
    with pytest.raises(RaynasError, match="epochs"):
        SearchConfig("digits", epochs=0)
    with pytest.raises(RaynasError, match="warmup_epochs"):
        SearchConfig("digits", epochs=2, warmup_epochs=3)
    assert SearchConfig.from_json(SearchConfig("digits", ops=("none", "skip_connect")).to_json()).ops == (
        "none", "skip_connect")
