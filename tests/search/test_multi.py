"""Multi-dataset pretraining: shared cells and alphas, a head per dataset, proportional interleaving."""

import collections

import pytest
import torch

from raynas.data import DatasetStore
from raynas.errors import RaynasError
from raynas.search.config import SearchConfig
from raynas.search.loop import build_state, run_search
from raynas.space.multihead import MultiHeadSupernet

MULTI = dict(dataset="handwritten", multi=("digits", "glyph-digits", "photo-patches"), preset="tiny", epochs=2,
             max_steps_per_epoch=4, threads=1)  # a fixed thread count: runs are bit-exact


@pytest.fixture(scope="module")
def store(suite_home):
    return DatasetStore(suite_home)


def test_model_has_one_head_per_dataset_and_takes_rgb_if_any_source_is(store):
    state = build_state(SearchConfig(**MULTI), store)
    model = state.model
    assert isinstance(model, MultiHeadSupernet) and model.space.in_channels == 3  # photo-patches is RGB
    counts = [store.info(n).num_classes for n in MULTI["multi"]]
    assert [h.out_features for h in model.heads] == counts
    assert not any(k.startswith("classifier.") for k in model.state_dict())
    x = torch.randn(5, 3, 8, 8)
    for i, k in enumerate(counts):
        model.select(i)
        assert model(x).shape == (5, k)
    with pytest.raises(IndexError):
        model.select(3)


def test_schedule_visits_every_batch_once_in_proportion(store):
    data = build_state(SearchConfig(**MULTI), store).data
    for epoch in (0, 1):
        schedule = data.schedule(epoch)
        assert collections.Counter(schedule) == {i: len(d.train) for i, d in enumerate(data.datasets)}
    assert data.schedule(0) != data.schedule(1)  # reshuffled every epoch
    assert data.schedule(0) == build_state(SearchConfig(**MULTI), store).data.schedule(0)  # seeded
    steps = list(data.epoch(0))
    assert [h for h, _, _ in steps] == data.schedule(0)
    for head, (x, y), (xv, yv) in steps[:6]:  # each step's train and val batches come from the same dataset
        k = store.info(MULTI["multi"][head]).num_classes
        assert int(y.max()) < k and int(yv.max()) < k and x.shape[1] == 3


def test_multi_search_trains_all_heads_and_reports_each_dataset(store, tmp_path):
    result = run_search(SearchConfig(**MULTI), store=store, run_dir=tmp_path / "run", verbose=False)
    last = result.history[-1]
    for name in MULTI["multi"]:
        assert 0.0 <= last[f"val_acc/{name}"] <= 1.0
    assert [d["name"] for d in result.datasets] == list(MULTI["multi"])
    assert all(len(d["content_hash"]) == 64 for d in result.datasets)
    init = build_state(SearchConfig(**MULTI), store).model
    for i in range(3):  # every head moved away from its initial weights
        assert not torch.equal(result.model.heads[i].weight, init.heads[i].weight)


def test_resume_equals_uninterrupted(store, tmp_path):
    from raynas.search.loop import StopSearch

    class StopAfterFirst:
        def on_epoch_end(self, metrics, state):
            raise StopSearch

    cfg = SearchConfig(**MULTI)
    full = run_search(cfg, store=store, run_dir=tmp_path / "a", verbose=False)
    run_search(cfg, store=store, run_dir=tmp_path / "b", callbacks=[StopAfterFirst()], verbose=False)
    resumed = run_search(cfg, store=store, run_dir=tmp_path / "b", resume_from=tmp_path / "b" / "checkpoint",
                         verbose=False)
    sa, sb = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("multi, message", [(("digits",), "at least two distinct"),
                                            (("digits", "digits"), "at least two distinct")])
def test_bad_multi_configs(multi, message):
    with pytest.raises(RaynasError, match=message):
        SearchConfig(dataset="x", multi=multi)


def test_unknown_source_dataset_fails_before_training(store):
    with pytest.raises(RaynasError, match="dataset 'nope' not found"):
        build_state(SearchConfig(**{**MULTI, "multi": ("digits", "nope")}), store)
