import json

import pytest
import torch

from raynas.errors import RaynasError
from raynas.space.cells import edge_index
from raynas.space.config import PRESETS
from raynas.space.genotype import Genotype, alpha_entropy, derive_genotype, draw_alphas, draw_genotype
from raynas.space.supernet import create_supernet


def _steer(model, kind, wanted):
    """Set alphas so that edge (source -> node) prefers op; other edges stay near uniform."""
    alphas = getattr(model, f"alphas_{kind}")
    ops = model.space.ops
    with torch.no_grad():
        alphas.zero_()
        alphas[:, ops.index("none")] = 5.0  # 'none' must never be chosen, however strong
        for (src, node), op in wanted.items():
            e = edge_index(model.space.nodes).index((src, node))
            alphas[e, ops.index(op)] = 3.0


def test_derive_picks_the_two_strongest_non_none_inputs_per_node():
    model = create_supernet(PRESETS.get("tiny").space(nodes=3))
    wanted = {(0, 0): "sep_conv_3x3", (1, 0): "max_pool_3x3", (2, 1): "skip_connect", (0, 1): "dil_conv_5x5",
              (3, 2): "avg_pool_3x3", (1, 2): "sep_conv_5x5"}
    _steer(model, "normal", wanted)
    _steer(model, "reduce", wanted)
    g = derive_genotype(model)
    assert g.normal == (("sep_conv_3x3", 0), ("max_pool_3x3", 1), ("dil_conv_5x5", 0), ("skip_connect", 2),
                        ("sep_conv_5x5", 1), ("avg_pool_3x3", 3))
    assert g.skip_count == 1


def test_edge_normalisation_weights_take_part_in_derivation():
    model = create_supernet(PRESETS.get("tiny").space(channels=8, partial_channels=2, edge_norm=True, nodes=2))
    strong = edge_index(2).index((0, 1))  # edge source 0 -> node 1
    with torch.no_grad():
        model.alphas_normal.zero_()
        model.alphas_normal[strong, model.space.ops.index("sep_conv_3x3")] = 5.0
        model.betas_normal.zero_()
    assert ("sep_conv_3x3", 0) in derive_genotype(model).normal[2:]
    with torch.no_grad():
        model.betas_normal[strong] = -10.0  # its edge weight switches it off
    assert [inp for _, inp in derive_genotype(model).normal[2:]] == [1, 2]


def test_json_and_text_round_trip(tmp_path):
    g = Genotype(normal=(("sep_conv_3x3", 0), ("skip_connect", 1), ("dil_conv_3x3", 2), ("max_pool_3x3", 0)),
                 reduce=(("max_pool_3x3", 0), ("avg_pool_3x3", 1), ("skip_connect", 2), ("sep_conv_5x5", 1)),
                 nodes=2)
    path = g.save(tmp_path / "g.json")
    assert Genotype.load(path) == g
    assert json.loads(path.read_text())["normal"][0] == ["sep_conv_3x3", 0]
    assert "sep_conv_3x3(0)" in str(g) and str(g).startswith("normal:")


@pytest.mark.parametrize("bad, message", [
    ({"normal": [["sep_conv_3x3", 0]], "reduce": []}, "edges"),
    ({"normal": [["none", 0], ["skip_connect", 1]] * 1, "reduce": [["skip_connect", 0], ["skip_connect", 1]],
      "nodes": 1}, "not valid"),
    ({"normal": [["skip_connect", 5], ["skip_connect", 1]], "reduce": [["skip_connect", 0], ["skip_connect", 1]],
      "nodes": 1}, "not valid"),
    ({"normal": [["warp_drive", 0], ["skip_connect", 1]], "reduce": [["skip_connect", 0], ["skip_connect", 1]],
      "nodes": 1}, "unknown operation"),
    ({"cells": []}, "not a genotype"),
])
def test_invalid_genotypes_are_refused(bad, message):
    with pytest.raises(RaynasError, match=message):
        Genotype.from_json(bad)


def test_load_missing_or_corrupt_file(tmp_path):
    with pytest.raises(RaynasError, match="not found"):
        Genotype.load(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(RaynasError, match="not valid JSON"):
        Genotype.load(tmp_path / "bad.json")


def test_entropy_is_maximal_for_uniform_alphas_and_drops_when_peaked():
    model = create_supernet(PRESETS.get("tiny").space())
    with torch.no_grad():
        model.alphas_normal.zero_()
        model.alphas_reduce.zero_()
    uniform = alpha_entropy(model)
    assert uniform == pytest.approx(torch.log(torch.tensor(8.0)).item(), rel=1e-5)
    with torch.no_grad():
        model.alphas_normal[:, 4] = 10.0
    assert alpha_entropy(model) < uniform


def test_drawings_are_written(tmp_path):
    model = create_supernet(PRESETS.get("tiny").space())
    g = derive_genotype(model)
    for path in (draw_genotype(g, tmp_path / "cells.png", "t"), draw_alphas(model, tmp_path / "alphas.png")):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sampled_genotypes_are_valid_seeded_and_cover_the_space():
    import random
    from collections import Counter

    from raynas.space.genotype import sample_genotype

    ops = ("none", "max_pool_3x3", "skip_connect", "sep_conv_3x3")
    draws = [sample_genotype(ops, 4, random.Random(f"t/{k}")) for k in range(300)]
    assert sample_genotype(ops, 4, random.Random("t/0")) == draws[0]  # seeded
    assert len({str(g) for g in draws}) > 250  # not a handful of genotypes
    ops_seen = Counter(op for g in draws for op, _ in g.normal + g.reduce)
    assert set(ops_seen) == set(ops) - {"none"}  # never 'none', as derive_genotype never picks it
    assert max(ops_seen.values()) / min(ops_seen.values()) < 1.2  # uniform over the ops
    # the last node's two inputs: any 2 of its 5 predecessors, each pair about equally often
    pairs = Counter(tuple(inp for _, inp in g.normal[6:8]) for g in draws)
    assert len(pairs) == 10 and all(inputs[0] < inputs[1] for inputs in pairs)
    with pytest.raises(RaynasError, match="no op to sample"):
        sample_genotype(("none",), 4, random.Random(0))


def test_shared_edges_counts_edges_in_common_node_by_node_in_either_order():
    a = Genotype(normal=(("sep_conv_3x3", 0), ("skip_connect", 1), ("max_pool_3x3", 0), ("skip_connect", 2)),
                 reduce=(("avg_pool_3x3", 0), ("avg_pool_3x3", 1), ("max_pool_3x3", 1), ("skip_connect", 2)), nodes=2)
    assert a.shared_edges(a) == 1.0
    swapped = Genotype(normal=(("skip_connect", 1), ("sep_conv_3x3", 0), *a.normal[2:]), reduce=a.reduce, nodes=2)
    assert swapped.shared_edges(a) == 1.0  # the order of a node's two inputs does not matter
    # same op on another input, another op on the same input: neither is the same edge
    b = Genotype(normal=(("sep_conv_3x3", 1), ("max_pool_3x3", 1), *a.normal[2:]),
                 reduce=(("avg_pool_3x3", 0), ("avg_pool_3x3", 1), ("dil_conv_3x3", 1), ("skip_connect", 0)), nodes=2)
    assert b.shared_edges(a) == a.shared_edges(b) == 4 / 8
    # an edge of one node is not matched by the same edge of another node
    c = Genotype(normal=(("max_pool_3x3", 0), ("skip_connect", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)),
                 reduce=a.reduce, nodes=2)
    assert c.shared_edges(a) == 6 / 8
    with pytest.raises(RaynasError, match="cannot be compared"):
        a.shared_edges(Genotype(normal=a.normal * 2, reduce=a.reduce * 2, nodes=4))
