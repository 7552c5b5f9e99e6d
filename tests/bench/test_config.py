"""The benchmark's config: which budget and warm-start settings each arm's search gets."""

import pytest

from raynas.bench.config import TransferBenchConfig
from raynas.errors import RaynasError


@pytest.mark.parametrize("start, epochs", [("scratch", 16), ("glyph-upper", 4), ("auto", 4)])
def test_warm_starts_search_their_own_budget(start, epochs):
    config = TransferBenchConfig(epochs=16, warm_epochs=4, transfer_mode="weights", alpha_temperature=2.0)
    search = config.search("digits", seed=1, transfer=start)
    assert (search.epochs, search.seed, search.transfer) == (epochs, 1, start)
    assert (search.transfer_mode, search.alpha_temperature) == ("weights", 2.0)


def test_without_warm_epochs_every_arm_searches_the_same_budget():
    config = TransferBenchConfig(epochs=6)
    assert {config.search("digits", transfer=t).epochs for t in ("scratch", "ot", "digits")} == {6}


def test_the_config_round_trips_and_refuses_bad_budgets():
    config = TransferBenchConfig(warm_epochs=3, arms=("ot",))
    assert TransferBenchConfig.from_json(config.to_json()) == config
    assert config.arms == ("scratch", "ot")  # every speed-up is over scratch
    with pytest.raises(RaynasError, match="warm_epochs"):
        TransferBenchConfig(warm_epochs=0)
