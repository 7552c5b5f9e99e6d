"""How much of its source's genotype a warm start kept, measured against scratch's share."""

import random
from types import SimpleNamespace

import pytest

from raynas.bench.kinship import kinship, source_genotypes
from raynas.errors import RaynasError
from raynas.space.config import PRESETS
from raynas.space.genotype import derive_genotype, sample_genotype
from raynas.space.supernet import create_supernet

OPS = PRESETS.get("tiny").space().ops


def _genotype(seed):
    return sample_genotype(OPS, 3, random.Random(seed)).to_json()


def _run(arm, target, seed, source, genotype, acc):
    return {"arm": arm, "target": target, "seed": seed, "source": source, "genotype": genotype,
            "retrain_test_acc": acc}


def test_kept_share_is_measured_against_scratch_and_related_to_the_retrain_gain():
    src = _genotype("src")
    scratch_g = _genotype("scratch")
    runs = [_run("scratch", "t", 0, "scratch", scratch_g, 0.90),
            _run("ot", "t", 0, "a", src, 0.85),  # kept every edge, retrained 5 points lower
            _run("farthest", "t", 0, "b", scratch_g, 0.95),  # kept nothing more than scratch, retrained higher
            _run("zero-shot", "t", 0, "a", src, 0.80),  # the source's genotype by construction: left out
            _run("random-genotype", "t", 0, "uniform", _genotype("r"), 0.70),
            _run("ot", "u", 0, "a", src, 0.80)]  # no scratch run on 'u' to compare with: left out
    sources = {"a": src, "b": src}
    out = kinship(runs, sources)
    by = {r["arm"]: r for r in out["runs"]}
    assert set(by) == {"ot", "farthest"} and len(out["runs"]) == 2
    from raynas.space.genotype import Genotype

    chance = Genotype.from_json(scratch_g).shared_edges(Genotype.from_json(src))
    assert by["ot"]["kept"] == 1.0 and by["ot"]["scratch_kept"] == pytest.approx(chance)
    assert by["farthest"]["kept"] == pytest.approx(chance)
    assert by["ot"]["retrain_gain"] == pytest.approx(-0.05) and by["farthest"]["retrain_gain"] == pytest.approx(0.05)
    arms = {a["arm"]: a for a in out["arms"]}
    assert arms["ot"]["unchanged"] == 1 and arms["farthest"]["unchanged"] == 0
    assert out["all"]["runs"] == 2 and out["all"]["median_kept"] == pytest.approx((1.0 + chance) / 2)
    assert out["all"]["excess_vs_retrain_gain"]["rho"] is None  # two runs: too few for a correlation


def test_more_kept_with_lower_retrain_gives_a_negative_rho():
    src = _genotype("src")
    runs = [_run("scratch", f"t{i}", 0, "scratch", _genotype(f"s{i}"), 0.9) for i in range(5)]
    # each target's warm start keeps its source's first i nodes and loses i points
    for i in range(5):
        mixed = {"nodes": 3, "normal": src["normal"][:2 * i] + runs[i]["genotype"]["normal"][2 * i:],
                 "reduce": src["reduce"][:2 * i] + runs[i]["genotype"]["reduce"][2 * i:]}
        mixed["normal"], mixed["reduce"] = mixed["normal"][:6], mixed["reduce"][:6]
        runs.append(_run("ot", f"t{i}", 0, "a", mixed, 0.9 - 0.01 * i))
    out = kinship(runs, {"a": src})
    assert out["all"]["runs"] == 5
    assert out["all"]["excess_vs_retrain_gain"]["rho"] < 0


def test_source_genotypes_come_from_the_entries_alphas():
    model = create_supernet(PRESETS.get("tiny").space())
    with __import__("torch").no_grad():
        model.alphas_normal.normal_()
        model.alphas_reduce.normal_()
    weights = {k: v.numpy() for k, v in model.state_dict().items()}

    class Zoo:
        def load_weights(self, name):
            if name != "a":
                raise RaynasError(f"no zoo entry '{name}'")
            return weights, SimpleNamespace(space_config=model.space)

    out = source_genotypes(["a", "a", "gone"], Zoo())
    assert out == {"a": derive_genotype(model).to_json()}
