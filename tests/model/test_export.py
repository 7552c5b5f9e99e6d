"""Exported files run without raynas and give the PyTorch model's outputs on real images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import raynas
from raynas.cli import main
from raynas.data import DatasetStore
from raynas.model.export import read_exported_card


def _real_inputs(suite_home, preprocess, count=32):
    x, _ = DatasetStore(suite_home).load("glyph-digits").split("test")
    return preprocess.batch(x[:count])


def test_torchscript_runs_in_plain_torch_and_matches_on_real_images(trained_run, suite_home, tmp_path, capsys):
    out = tmp_path / "net.pt"
    assert main(["export", str(trained_run), "--format", "torchscript", "--out", str(out), "--home", str(suite_home),
                 "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["path"] == str(out) and answer["checked_images"] == 16 and answer["max_abs_diff"] < 1e-4
    model, preprocess = raynas.load_model(trained_run)
    x = _real_inputs(suite_home, preprocess)
    exported = torch.jit.load(str(out))  # plain torch: no raynas class is needed to run it
    with torch.no_grad():
        diff = (exported(x) - model(x)).abs().max().item()
        assert torch.equal(exported(x).argmax(1), model(x).argmax(1))
    assert diff < 1e-4  # measured 0 on CPU (same kernels)
    card = read_exported_card(out)
    assert card["class_names"] == list(model.class_names) and card["preprocess"]["mean"] == list(preprocess.mean)


def test_onnx_runs_in_onnxruntime_and_matches_on_real_images(trained_run, suite_home, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    run = tmp_path / "run"
    import shutil

    shutil.copytree(trained_run, run)
    assert main(["export", str(run), "--format", "onnx", "--home", str(suite_home)]) == 0
    out = run / "model" / "model.onnx"
    assert "opset 18" in capsys.readouterr().out and out.is_file()
    model, preprocess = raynas.load_model(run)
    x = _real_inputs(suite_home, preprocess, 40)  # another batch size than the export's example
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": x.numpy()})[0]
    with torch.no_grad():
        want = model(x).numpy()
    assert np.abs(got - want).max() < 1e-4  # measured about 1e-6
    assert (got.argmax(1) == want.argmax(1)).all()
    assert read_exported_card(out)["dataset"]["name"] == "glyph-digits"


@pytest.mark.slow  # ~10-20 s; the default run keeps the same path's cheaper tests
def test_a_zoo_supernet_exports_too(suite_home, tmp_path, capsys):
    from tests.model.test_model import _publish_supernet

    storage = str(tmp_path / "shared")
    _publish_supernet(storage, DatasetStore(suite_home))
    out = tmp_path / "supernet.pt"
    assert main(["export", "zoo:glyph-digits", "--format", "torchscript", "--home", str(suite_home), "--storage",
                 storage, "--out", str(out)]) == 0
    model, preprocess = raynas.load_model("zoo:glyph-digits", home=suite_home, storage=storage)
    x = _real_inputs(suite_home, preprocess, 5)
    exported = torch.jit.load(str(out))
    with torch.no_grad():
        assert (exported(x) - model(x)).abs().max() < 1e-4
        assert (exported(x[:1]) - model(x)[:1]).abs().max() < 1e-4  # calibrated: per image, batch or not


@pytest.mark.parametrize("args, message", [
    (["--format", "tflite"], "invalid choice"),
    (["--format", "torchscript", "--out", "{tmp}"], "is a directory"),
])
def test_bad_export_requests_fail_clearly(trained_run, suite_home, tmp_path, capsys, args, message):
    argv = ["export", str(trained_run), *[a.format(tmp=tmp_path) for a in args], "--home", str(suite_home)]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own refusal
        code = exc.code
    assert code != 0 and message in capsys.readouterr().err


def test_exporting_a_zoo_entry_needs_an_out_file(suite_home, capsys):
    assert main(["export", "zoo:anything", "--format", "onnx", "--home", str(suite_home)]) == 1
    assert "needs --out" in capsys.readouterr().err
