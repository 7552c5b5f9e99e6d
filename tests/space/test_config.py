import pytest

from raynas.errors import RaynasError
from raynas.space.config import PRESETS, SpaceConfig


@pytest.mark.parametrize("changes, message", [
    ({"ops": ("none", "conv_7x7")}, "unknown operation 'conv_7x7'"),
    ({"ops": ("none",)}, "include an op other than 'none'"),
    ({"nodes": 1}, "at least 2 intermediate nodes"),
    ({"cells": 2}, "at least 3 cells"),
    ({"image_size": 6}, "image size 6"),
    ({"image_size": 4}, "too small"),
    ({"channels": 6, "partial_channels": 2}, "multiple of 2 x partial_channels"),
    ({"num_classes": 1}, "num_classes"),
    ({"mixing": "gumbel"}, "unknown mixing"),
])
def test_invalid_spaces_are_refused_with_a_clear_error(changes, message):
    with pytest.raises(RaynasError, match=message):
        SpaceConfig(**changes)


def test_json_round_trip():
    space = PRESETS.get("cpu").space(in_channels=3, num_classes=7, partial_channels=2, edge_norm=True)
    assert SpaceConfig.from_json(space.to_json()) == space
    with pytest.raises(RaynasError, match="unknown search-space field"):
        SpaceConfig.from_json({**space.to_json(), "wings": 2})


def test_presets():
    assert PRESETS.names() == ["tiny", "cpu", "gpu"]
    gpu = PRESETS.get("gpu")
    assert (gpu.channels, gpu.cells, gpu.image_size) == (16, 8, 32)  # the DARTS paper's search network
    assert PRESETS.get("cpu").space().reduction_cells == (1, 3)
    with pytest.raises(RaynasError, match="unknown preset"):
        PRESETS.get("huge")
