"""A trained model shared by the model tests: a tiny retrain on glyph-digits, made once."""

from __future__ import annotations

import shutil

import pytest

GENOTYPE = {"nodes": 4,
            "normal": [["sep_conv_3x3", 0], ["skip_connect", 1], ["skip_connect", 0], ["max_pool_3x3", 2],
                       ["sep_conv_3x3", 1], ["avg_pool_3x3", 3], ["dil_conv_3x3", 0], ["sep_conv_3x3", 4]],
            "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 0],
                       ["avg_pool_3x3", 1], ["skip_connect", 2], ["sep_conv_3x3", 0], ["dil_conv_3x3", 3]]}


@pytest.fixture(scope="session")
def trained_run(suite_home, tmp_path_factory):
    """A run directory holding genotype.json and a model retrained for 3 short epochs (about 3 s);
    its test accuracy is well above chance, so predictions differ between classes."""
    from raynas.data import DatasetStore
    from raynas.search.retrain import RetrainConfig, retrain
    from raynas.space.genotype import Genotype

    run = tmp_path_factory.mktemp("trained_run")
    genotype = Genotype.from_json(GENOTYPE)
    genotype.save(run / "genotype.json")
    config = RetrainConfig(dataset="glyph-digits", epochs=3, channels=6, cells=3, image_size=16, threads=1)
    result = retrain(genotype, config, DatasetStore(suite_home), run, verbose=False)
    assert result["test_acc"] > 0.3  # chance is 0.1
    return run


@pytest.fixture
def model_copy(trained_run, tmp_path):
    """A copy of the trained run that a test may change."""
    return shutil.copytree(trained_run, tmp_path / "run")
