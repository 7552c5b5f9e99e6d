"""The benchmark's config: which budget and warm-start settings each arm's search gets."""

import pytest

from raynas.bench.config import TransferBenchConfig
from raynas.errors import RaynasError


@pytest.mark.parametrize("start, epochs", [("scratch", 16), ("glyph-upper", 4), ("auto", 4)])
def test_warm_starts_search_their_own_budget(start, epochs):
    config = TransferBenchConfig(epochs=16, warm_epochs=4, transfer_mode="weights", alpha_temperature=2.0,
                                 probe_min_cut=0.5)
    search = config.search("digits", seed=1, transfer=start)
    assert (search.epochs, search.seed, search.transfer) == (epochs, 1, start)
    assert (search.transfer_mode, search.alpha_temperature, search.probe_min_cut) == ("weights", 2.0, 0.5)


def test_without_warm_epochs_every_arm_searches_the_same_budget():
    config = TransferBenchConfig(epochs=6)
    assert {config.search("digits", transfer=t).epochs for t in ("scratch", "ot", "digits")} == {6}


@pytest.mark.parametrize("warm_lr, start, lrs", [(None, "ot", (0.025, 0.001)), (0.005, "scratch", (0.025, 0.001)),
                                                 (0.005, "glyph-upper", (0.005, 0.001)),
                                                 (0.0005, "auto", (0.0005, 0.0005))])
def test_warm_lr_sets_only_the_warm_starts_weight_lr(warm_lr, start, lrs):
    search = TransferBenchConfig(warm_lr=warm_lr).search("digits", transfer=start)
    assert (search.w_lr, search.w_lr_min) == lrs


def test_the_config_round_trips_and_refuses_bad_budgets():
    config = TransferBenchConfig(warm_epochs=3, warm_lr=0.01, arms=("ot",))
    assert TransferBenchConfig.from_json(config.to_json()) == config
    assert config.arms == ("scratch", "ot")  # every speed-up is over scratch
    with pytest.raises(RaynasError, match="warm_epochs"):
        TransferBenchConfig(warm_epochs=0)
    with pytest.raises(RaynasError, match="warm_lr"):
        TransferBenchConfig(warm_lr=0)


def test_the_encoder_reaches_every_search_and_an_unknown_one_fails_at_once():
    config = TransferBenchConfig(encoder="edges")
    assert config.search("digits", transfer="ot").encoder == "edges"
    # how sources pretrain does not depend on it: a zoo pretrained once serves runs of every encoder
    assert config.source_search("mnist5k") == TransferBenchConfig().source_search("mnist5k")
    assert TransferBenchConfig.from_json(config.to_json()).encoder == "edges"
    assert TransferBenchConfig().search("digits").encoder == "pixels"
    with pytest.raises(RaynasError, match="unknown encoder 'edgs'") as err:
        TransferBenchConfig(encoder="edgs")
    assert "did you mean 'edges'" in err.value.fix


def test_the_default_sources_are_the_default_domains_and_all_means_every_one():
    from raynas.bench.config import DEFAULT_DOMAINS
    from raynas.bench.transfer import builtin_sources
    from raynas.data.builtin import BUILTINS

    default = builtin_sources()
    assert {BUILTINS.get(n).domain for n in default} == set(DEFAULT_DOMAINS)
    assert len(default) == 11 and builtin_sources(("all",)) == tuple(n for n in BUILTINS if BUILTINS.get(n).suite)
    assert len(builtin_sources(("all",))) == 29
    assert builtin_sources(("shapes",)) == ("shape-types", "shape-counts", "shape-relations")
    # the shifted copies of mnist5k stay buildable but are not in the suite
    assert builtin_sources(("handwriting",)) == ("digits", "mnist5k", "pen-digits", "pen-letters")
    with pytest.raises(RaynasError, match="unknown domain"):
        builtin_sources(("cats",))


def test_the_default_arms_answer_the_headline_and_leave_the_costly_side_questions_out():
    from raynas.bench.config import ALL_ARMS, DEFAULT_ARMS

    config = TransferBenchConfig()
    assert config.arms == DEFAULT_ARMS and set(DEFAULT_ARMS) < set(ALL_ARMS)
    assert {"scratch", "ot", "multi", "random", "random-genotype"} <= set(config.arms)
    assert not {"race", "farthest", "probe"} & set(config.arms)  # each runs when named in --arms
    assert TransferBenchConfig(arms=ALL_ARMS).arms == ALL_ARMS
