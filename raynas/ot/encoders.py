"""Encoders turn images of any size and channel count into fixed-length feature vectors.

Every OT distance lives in an encoder's feature space, so an embedding records the encoder's
``version`` and embeddings of different versions are never compared. A version changes
whenever the features would (other weights, another input size, a refitted PCA).

Encoders are made by factories in :data:`ENCODERS`. Every factory is called as
``factory(storage=..., home=..., **kwargs)``: ``storage`` is the embedding storage (an encoder
may keep fitted state under ``encoders/`` there), ``home`` the raynas home, and the keyword
arguments are the factory's own options. A factory that needs more context, such as a zoo
handle for features of a pretrained supernet, declares it as a keyword argument
(``def supernet(*, storage, home=None, zoo, source=None)``) and receives it through
:func:`create_encoder`.

Built-ins:

* ``pixels`` (default, no download): images resized to 16x16, 3 channels, [0, 1] scale,
  flattened and projected by one fixed PCA to 64 dimensions. The PCA is fitted once on a
  seeded, stratified pool of the train splits of the eleven original built-in sets
  (:data:`PCA_POOL`) and stored, so every machine sharing the storage uses the same projection.
* ``edges`` (no download): the Sobel gradient magnitude of the grey image at 16x16, on a PCA to
  64 dimensions fitted the same way. Blind to polarity: a digit set and its negative get the
  same features here, and lie far apart in ``pixels``.
* ``resnet18``: global-pooled features (512-d) of torchvision's ImageNet ResNet-18, from the
  local torch hub cache or downloaded once.
* ``supernet``: global-pooled features of a multi-dataset supernet from the zoo (the newest,
  or ``source=NAME``): a feature space learnt on the zoo's own kind of data, no download.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from raynas.data.transforms import to_float
from raynas.errors import RaynasError
from raynas.ot.sampling import stratified_indices
from raynas.ot.threads import single_threaded_blas
from raynas.registry import Registry
from raynas.storage import Storage

DEFAULT_ENCODER = "pixels"
ENCODER_DIR = "encoders"  # fitted encoder state, inside the embedding storage
POOL_SEED = 0  # the reference pool of the pixel PCA
# The built-in sets the PCA encoders are fitted on: the eleven of the original suite, fixed here
# rather than read from BUILTINS. The fitted basis, and so the version of every stored embedding,
# must not change when sets are added to the suite, and fitting must not build the whole suite.
PCA_POOL = ("digits", "mnist5k", "mnist5k-rot", "mnist5k-inv", "glyph-digits", "glyph-upper", "glyph-lower",
            "glyph-greek", "textures", "photo-patches", "lfw-faces")


@runtime_checkable
class Encoder(Protocol):
    """Images -> features. ``version`` names the feature space: equal version, equal features."""

    name: str
    version: str
    dim: int

    def encode(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, C, H, W), any C and size -> float32 (N, dim)."""
        ...


ENCODERS: Registry[Callable[..., Encoder]] = Registry("encoder")


def create_encoder(name: str = DEFAULT_ENCODER, *, storage: Storage, home: Any = None, zoo: Any = None,
                   **kwargs: Any) -> Encoder:
    """Build the encoder registered as ``name``; extra keyword arguments go to its factory.

    ``zoo`` (a zoo or its actor handle) is passed only to factories that take it, so callers
    can always offer it.
    """
    factory = ENCODERS.get(name)
    if zoo is not None and "zoo" in inspect.signature(factory).parameters:
        kwargs["zoo"] = zoo
    return factory(storage=storage, home=home, **kwargs)


def _check_images(images: np.ndarray) -> torch.Tensor:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
        got = f"{getattr(images, 'dtype', type(images).__name__)} {getattr(images, 'shape', '')}"
        raise RaynasError(f"an encoder takes uint8 images of shape (N, C, H, W), got {got}",
                          "pass ImageDataset.images (or a slice of it)")
    return torch.from_numpy(np.ascontiguousarray(images))


def _batches(images: np.ndarray, batch_size: int):
    x = _check_images(images)
    for start in range(0, len(x), batch_size):
        yield x[start:start + batch_size]


# -- pixels + PCA ---------------------------------------------------------------------------

@single_threaded_blas
def fit_pca(x: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and the top ``dim`` principal axes (dim, D), each signed so that its
    largest-magnitude entry is positive (eigenvectors are only defined up to sign)."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    centred = x - mean
    _, vectors = np.linalg.eigh(centred.T @ centred / len(x))
    components = vectors[:, ::-1][:, :dim].T.copy()
    peak = components[np.arange(len(components)), np.abs(components).argmax(axis=1)]
    components *= np.sign(peak)[:, None]
    return mean, components


def pixel_features(images: torch.Tensor, image_size: int) -> torch.Tensor:
    """uint8 (N, C, H, W) -> resized RGB pixels in [0, 1], flattened: (N, 3 * size * size)."""
    return to_float(images, image_size, 3).reshape(len(images), -1)


_SOBEL = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8


def edge_features(images: torch.Tensor, image_size: int) -> torch.Tensor:
    """uint8 (N, C, H, W) -> Sobel gradient magnitude of the resized grey image: (N, size * size).

    Where intensity changes, not which way: an image and its negative (white digits on black,
    black digits on white) get the same features.
    """
    grey = F.pad(to_float(images, image_size, 1), (1, 1, 1, 1), mode="replicate")
    gradients = F.conv2d(grey, torch.stack([_SOBEL, _SOBEL.T])[:, None])
    return gradients.pow(2).sum(dim=1).sqrt().reshape(len(images), -1)


# name -> (features, channels of the image they come from): the encoders that project onto a fitted PCA
PCA_FEATURES: dict[str, tuple[Callable[[torch.Tensor, int], torch.Tensor], int]] = {
    "pixels": (pixel_features, 3),
    "edges": (edge_features, 1),
}


def reference_pool(home: Any, image_size: int, per_dataset: int, features: Callable = pixel_features
                   ) -> tuple[np.ndarray, dict[str, str]]:
    """``features`` of a fixed stratified sample of the train split of every built-in set in
    :data:`PCA_POOL`, and the content hashes of the datasets it came from."""
    from raynas.data import DatasetStore

    store = DatasetStore(home)
    parts, hashes = [], {}
    for name in PCA_POOL:
        ds = store.load(name)
        images, labels = ds.split("train")
        idx = stratified_indices(labels, per_dataset, POOL_SEED)
        parts.append(features(torch.from_numpy(images[idx]), image_size).numpy())
        hashes[name] = ds.info.content_hash
    return np.concatenate(parts).astype(np.float64), hashes


class PCAEncoder:
    """Hand-made image features (:data:`PCA_FEATURES`) projected onto a stored PCA basis."""

    def __init__(self, name: str, image_size: int, mean: np.ndarray, components: np.ndarray, digest: str,
                 batch_size: int = 1024):
        self.name, self.image_size, self.batch_size = name, image_size, batch_size
        self.features = PCA_FEATURES[name][0]
        self.mean = mean.astype(np.float32)
        self.components = components.astype(np.float32)
        self.dim = len(components)
        self.version = f"{name}-{image_size}px-pca{self.dim}-{digest[:8]}"

    @single_threaded_blas
    def encode(self, images: np.ndarray) -> np.ndarray:
        out = [(self.features(b, self.image_size).numpy() - self.mean) @ self.components.T
               for b in _batches(images, self.batch_size)]
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.dim), np.float32)


def _pca_bytes(mean: np.ndarray, components: np.ndarray, meta: dict[str, str]) -> bytes:
    from safetensors.numpy import save

    # one metadata key holding sorted JSON: safetensors writes several keys in random order
    return save({"mean": mean.astype(np.float32), "components": components.astype(np.float32)},
                metadata={"raynas": json.dumps(meta, sort_keys=True)})


def _read_pca(storage: Storage, key: str, name: str, image_size: int, dim: int) -> PCAEncoder:
    from safetensors.numpy import load

    data = storage.read_bytes(ENCODER_DIR, key)
    try:
        arrays = load(data)
        mean, components = arrays["mean"], arrays["components"]
    except Exception as exc:  # safetensors raises its own error types for damaged headers
        raise RaynasError(f"cannot read the fitted PCA {storage.path(ENCODER_DIR, key)}: {exc}",
                          "delete the file; it is fitted again on next use") from exc
    width = PCA_FEATURES[name][1] * image_size * image_size
    if mean.shape != (width,) or components.shape != (dim, width):
        raise RaynasError(f"the fitted PCA {storage.path(ENCODER_DIR, key)} has shapes {mean.shape}, "
                          f"{components.shape}, not those of {name} features at {image_size}px and {dim} dims",
                          "delete the file; it is fitted again on next use")
    return PCAEncoder(name, image_size, mean, components, hashlib.sha256(data).hexdigest())


def _fitted_pca(name: str, storage: Storage, home: Any, image_size: int, dim: int, per_dataset: int) -> PCAEncoder:
    """Load the stored PCA of ``name``'s features, or fit it on the :data:`PCA_POOL` sets (built
    in ``home`` if needed) and store it.

    After writing, the stored file is read back, so concurrent fitters end up with the bytes
    that won the race and agree on the version. ``per_dataset`` (the pool size) only matters
    for the first fit: a stored PCA of the same size and dimension is used as it is.
    """
    features, channels = PCA_FEATURES[name]
    if dim > channels * image_size * image_size:
        raise RaynasError(f"a {dim}-d PCA of {name} features at {image_size}px is impossible",
                          f"choose dim <= {channels * image_size * image_size}")
    key = f"{name}-{image_size}px-pca{dim}.safetensors"
    if not storage.exists(ENCODER_DIR, key):
        pool, hashes = reference_pool(home, image_size, per_dataset, features)
        mean, components = fit_pca(pool, dim)
        meta = {"format": "raynas-pca/1", "image_size": str(image_size), "channels": str(channels), "dim": str(dim),
                "pool": f"built-in train splits, {per_dataset} per dataset, stratified, seed {POOL_SEED}",
                "datasets": json.dumps(hashes, sort_keys=True)}
        storage.write_bytes(_pca_bytes(mean, components, meta), ENCODER_DIR, key)
    return _read_pca(storage, key, name, image_size, dim)


@ENCODERS.register("pixels")
def pixels(*, storage: Storage, home: Any = None, image_size: int = 16, dim: int = 64,
           per_dataset: int = 300) -> PCAEncoder:
    """Resized RGB pixels on a PCA fitted to the built-in suite (see :func:`_fitted_pca`)."""
    return _fitted_pca("pixels", storage, home, image_size, dim, per_dataset)


@ENCODERS.register("edges")
def edges(*, storage: Storage, home: Any = None, image_size: int = 16, dim: int = 64,
          per_dataset: int = 300) -> PCAEncoder:
    """Gradient magnitudes (:func:`edge_features`) on a PCA fitted to the built-in suite."""
    return _fitted_pca("edges", storage, home, image_size, dim, per_dataset)


# -- ResNet-18 ------------------------------------------------------------------------------

_IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
_IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def resnet18_weights_url() -> str:
    from torchvision.models import ResNet18_Weights

    return ResNet18_Weights.IMAGENET1K_V1.url


def resnet18_weights_path() -> Path:
    """Where torch hub keeps the ImageNet ResNet-18 weights ($TORCH_HOME/hub/checkpoints/...)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / resnet18_weights_url().rsplit("/", 1)[-1]


def load_resnet18_weights() -> tuple[dict[str, torch.Tensor], str]:
    """The state dict and the sha256 of its file; downloads once when absent."""
    path, url = resnet18_weights_path(), resnet18_weights_url()
    if not path.is_file():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(path), progress=False)
        except Exception as exc:  # offline machines fail in many ways (URLError, OSError, SSL, HTTP)
            raise RaynasError(
                f"the ImageNet ResNet-18 weights are not in {path} and could not be downloaded ({exc})",
                f"copy {path.name} (from {url}) to {path.parent} (set TORCH_HOME to choose the folder), "
                "or use `--encoder pixels`, which needs no download") from exc
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or foreign files raise pickle, zip or runtime errors
        raise RaynasError(f"cannot read the ResNet-18 weights {path}: {exc}",
                          "delete the file and download it again, or use `--encoder pixels`") from exc
    return state, hashlib.sha256(path.read_bytes()).hexdigest()


class ResNet18Encoder:
    """Global-pooled ResNet-18 features at a fixed input size, ImageNet normalisation."""

    name = "resnet18"
    dim = 512

    def __init__(self, state: dict[str, torch.Tensor], digest: str, image_size: int = 64, batch_size: int = 256):
        from torchvision.models import resnet18

        model = resnet18(weights=None)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise RaynasError(f"the ResNet-18 weights do not fit torchvision's ResNet-18: {exc}",
                              f"replace {resnet18_weights_path()} with the ImageNet weights") from exc
        model.fc = torch.nn.Identity()
        self.model = model.eval()
        self.image_size, self.batch_size = image_size, batch_size
        self.version = f"resnet18-imagenet-{image_size}px-{digest[:8]}"

    def encode(self, images: np.ndarray) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for b in _batches(images, self.batch_size):
                x = (to_float(b, self.image_size, 3) - _IMAGENET_MEAN) / _IMAGENET_STD
                out.append(self.model(x).numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.dim), np.float32)


@ENCODERS.register("resnet18")
def resnet18(*, storage: Storage, home: Any = None, image_size: int = 64, batch_size: int = 256) -> ResNet18Encoder:
    """ImageNet ResNet-18 (fc removed); ``storage`` and ``home`` are not needed."""
    state, digest = load_resnet18_weights()
    return ResNet18Encoder(state, digest, image_size=image_size, batch_size=batch_size)


# -- multi-dataset supernet ------------------------------------------------------------------

class SupernetEncoder:
    """Pooled last-cell features of a zoo supernet at its own input size and channels.

    Images are standardised per channel with the statistics of the images given (one call
    per dataset, as the supernet's training normalised each dataset with its own), and pass
    in fixed batches of a seeded permutation: the supernet's BatchNorm uses batch
    statistics, so equal inputs give equal features.
    """

    name = "supernet"

    def __init__(self, model: torch.nn.Module, entry: str, digest: str, batch_size: int = 256):
        self.model = model.eval()
        self.space = model.space
        self.dim = model.feature_dim
        self.batch_size = batch_size
        self.version = f"supernet-{entry}-{digest[:8]}-{self.space.image_size}px"

    def encode(self, images: np.ndarray) -> np.ndarray:
        x = to_float(_check_images(images), self.space.image_size, self.space.in_channels)
        if len(x) == 0:
            return np.zeros((0, self.dim), np.float32)
        mean, std = x.mean(dim=(0, 2, 3), keepdim=True), x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-3)
        x = (x - mean) / std
        # batches in a fixed shuffled order: class-sorted input would give one-class batches, and
        # batch-statistics BatchNorm would normalise the class away
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            out = torch.cat([self.model.features(x[order[i:i + self.batch_size]])
                             for i in range(0, len(x), self.batch_size)])
        features = torch.empty_like(out)
        features[order] = out
        return features.numpy().astype(np.float32)


@ENCODERS.register("supernet")
def supernet(*, storage: Storage, home: Any = None, zoo: Any = None, source: str | None = None,
             batch_size: int = 256) -> SupernetEncoder:
    """Features of a multi-dataset zoo supernet (``source``, default the newest one)."""
    from raynas.space.supernet import create_supernet

    if zoo is None:
        raise RaynasError("the 'supernet' encoder needs the zoo", "pass zoo=... (the CLI does this for you)")
    if source is None:
        multi = [m for m in zoo.list() if m.kind == "multi"]
        if not multi:
            raise RaynasError("the 'supernet' encoder needs a multi-dataset supernet in the zoo, and there is none",
                              "build one with `raynas zoo build --multi NAME --datasets A,B,...`, "
                              "or use `--encoder pixels`")
        source = max(multi, key=lambda m: m.created).name
    weights, manifest = zoo.load_weights(source)
    model = create_supernet(manifest.space_config)
    state = {k: torch.tensor(np.asarray(v)) for k, v in weights.items() if not k.startswith(("heads.", "classifier."))}
    missing, _ = model.load_state_dict(state, strict=False)
    if [k for k in missing if not k.startswith("classifier.")]:
        raise RaynasError(f"zoo entry '{source}' does not hold a complete supernet (missing {missing[:3]}...)",
                          f"rebuild it, or choose another with source=NAME")
    return SupernetEncoder(model, source, manifest.weights_sha256, batch_size)
