"""Exporting a trained model to a file that runs without raynas: TorchScript or ONNX.

Either file takes float images N x C x H x W (already preprocessed: see the card) and
returns logits N x classes; the batch size is free. The model card (class names,
preprocessing, provenance) travels inside the file: TorchScript's extra file
``raynas_model.json``, ONNX's metadata property ``raynas_model``. Every export is run once
after writing and compared with the PyTorch model; the largest difference is returned.
"""

from __future__ import annotations

import contextlib
import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from raynas.errors import RaynasError
from raynas.model.architectures import Logits
from raynas.model.artifact import ModelCard
from raynas.registry import Registry
from raynas.storage import atomic_path

ONNX_OPSET = 18
CARD_NAME = "raynas_model.json"  # TorchScript extra file
CARD_KEY = "raynas_model"  # ONNX metadata property
INPUT_NAME, OUTPUT_NAME = "images", "logits"
CHECK_TOLERANCE = 1e-3  # largest logit difference accepted between the export and PyTorch


@dataclass(frozen=True)
class Exporter:
    suffix: str
    write: Callable[[Logits, torch.Tensor, str, Path], None]  # network, example input, card JSON, path
    run: Callable[[Path, torch.Tensor], np.ndarray]  # the written file on an input -> logits
    needs: str = ""  # the extra to install, when a package is missing


EXPORTERS: Registry[Exporter] = Registry("export format")


def _write_torchscript(network: Logits, example: torch.Tensor, card: str, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # trace's deprecation notice and tracer notes: nothing a user can act on
        traced = torch.jit.trace(network, example)
        torch.jit.save(traced, str(path), _extra_files={CARD_NAME: card})


def _run_torchscript(path: Path, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu")(x).numpy()


def _write_onnx(network: Logits, example: torch.Tensor, card: str, path: Path) -> None:
    import onnx

    batch = torch.export.Dim("batch", min=1)
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():  # the exporter reports progress on stdout
        warnings.simplefilter("ignore")
        program = torch.onnx.export(network, (example,), None, dynamo=True, opset_version=ONNX_OPSET,
                                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                    dynamic_shapes=({0: batch},), verbose=False)
    model = program.model_proto
    entry = model.metadata_props.add()
    entry.key, entry.value = CARD_KEY, card
    onnx.save_model(model, str(path))


def _run_onnx(path: Path, x: torch.Tensor) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {INPUT_NAME: x.numpy()})[0]


EXPORTERS.add("torchscript", Exporter(".pt", _write_torchscript, _run_torchscript))
EXPORTERS.add("onnx", Exporter(".onnx", _write_onnx, _run_onnx, needs="onnx"))


def _check_installed(name: str, exporter: Exporter) -> None:
    if not exporter.needs:
        return
    missing = [m for m in ("onnx", "onnxscript", "onnxruntime") if not _importable(m)]
    if missing:
        raise RaynasError(f"exporting to {name} needs {', '.join(missing)}, which is not installed",
                          f"pip install 'raynas[{exporter.needs}]'")


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def export_model(network: Logits, card: ModelCard, fmt: str, out: str | Path,
                 check_input: torch.Tensor | None = None) -> dict[str, Any]:
    """Write ``network`` as ``fmt`` to ``out`` (atomically), run the file on ``check_input``
    (default: 4 random inputs) and compare with PyTorch. Returns what was written and measured."""
    exporter = EXPORTERS.get(fmt)
    _check_installed(fmt, exporter)
    out = Path(out)
    if out.is_dir():
        raise RaynasError(f"{out} is a directory", f"give a file name, e.g. {out / ('model' + exporter.suffix)}")
    network = network.cpu().eval()
    pre = card.preprocessing()
    x = check_input if check_input is not None else torch.randn(4, *pre.input_shape, generator=torch.Generator().manual_seed(0))
    card_json = json.dumps(card.to_json())
    with atomic_path(out) as tmp:
        exporter.write(network, x[:2], card_json, tmp)
        got = exporter.run(tmp, x)
        with torch.no_grad():
            want = network(x).numpy()
        diff = float(np.abs(got - want).max())
        if not diff <= CHECK_TOLERANCE:  # also catches NaN
            raise RaynasError(f"the {fmt} export gives logits up to {diff:.3g} away from the PyTorch model's "
                              f"(tolerance {CHECK_TOLERANCE}); nothing was written",
                              "this is a bug in raynas or the exporter; export the other format meanwhile")
    return {"format": fmt, "path": str(out), "bytes": out.stat().st_size, "checked_images": len(x),
            "max_abs_diff": diff, "input": {"name": INPUT_NAME, "shape": ["batch", *pre.input_shape],
                                            "dtype": "float32"},
            "output": {"name": OUTPUT_NAME, "shape": ["batch", card.num_classes]},
            **({"opset": ONNX_OPSET} if fmt == "onnx" else {})}


def read_exported_card(path: str | Path) -> dict[str, Any]:
    """The model card stored inside an exported file (either format), without raynas' loader."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        return json.loads(props[CARD_KEY])
    files = {CARD_NAME: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    return json.loads(files[CARD_NAME])


def default_path(model_folder: Path, fmt: str) -> Path:
    return model_folder / f"model{EXPORTERS.get(fmt).suffix}"



def sample_input(card: ModelCard, store: Any, count: int = 16) -> torch.Tensor | None:
    """Up to ``count`` test images of the model's dataset, preprocessed: real inputs to check an
    export on. None when the dataset is not in ``store`` or has changed since training."""
    name, digest = card.dataset.get("name"), card.dataset.get("content_hash")
    if not name or not store.exists(name) or store.info(name).content_hash != digest:
        return None
    from raynas.data.loader import first_images

    images = first_images(store.local_path(name), store.info(name), "test", count)
    return card.preprocessing().batch(images) if len(images) else None
