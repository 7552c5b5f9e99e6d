"""The data layer: the Parquet dataset format, importers, the built-in suite and loaders."""

from raynas.data.format import DatasetInfo, ImageDataset, make_dataset, read_dataset, read_info, write_dataset
from raynas.data.importers import IMPORTERS, from_torchvision
from raynas.data.store import DatasetStore

__all__ = ["DatasetInfo", "DatasetStore", "IMPORTERS", "ImageDataset", "from_torchvision", "make_dataset",
           "read_dataset", "read_info", "write_dataset"]
