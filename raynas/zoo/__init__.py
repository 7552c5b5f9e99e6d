"""The supernet zoo: published supernets (weights and alphas) with manifests, and pretraining."""

from raynas.zoo.manifest import SourceDataset, ZooManifest
from raynas.zoo.store import Zoo

__all__ = ["SourceDataset", "Zoo", "ZooManifest"]
