"""Slow end-to-end checks of search quality (run by `make test-slow` and CI when time allows)."""

import pytest

from raynas.data import DatasetStore
from raynas.search.config import SearchConfig
from raynas.search.loop import run_search
from raynas.search.retrain import RetrainConfig, retrain


@pytest.mark.slow
def test_cpu_preset_search_on_digits_retrains_well_above_chance(suite_home, tmp_path):
    store = DatasetStore(suite_home)
    result = run_search(SearchConfig(dataset="digits", algo="darts", preset="cpu", epochs=10), store=store,
                        run_dir=tmp_path, verbose=False)
    assert result.history[-1]["val_acc"] > 0.5
    scores = retrain(result.genotype, RetrainConfig(dataset="digits", epochs=10, image_size=16, channels=8, cells=5),
                     store, tmp_path, verbose=False)
    assert scores["test_acc"] > 0.8  # chance is 0.1


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["darts2", "drnas", "pcdarts"])
def test_every_algorithm_learns_on_digits(suite_home, algo):
    result = run_search(SearchConfig(dataset="digits", algo=algo, preset="tiny", epochs=4, warmup_epochs=1),
                        store=DatasetStore(suite_home), verbose=False)
    assert result.history[-1]["val_acc"] > 0.3  # chance is 0.1
