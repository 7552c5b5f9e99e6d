"""Trained models: the file format, loading, preprocessing (and prediction, export, serving)."""

from raynas.model.artifact import ModelCard, model_dir, read_model, save_model
from raynas.model.load import load_model
from raynas.model.preprocess import Preprocess

__all__ = ["ModelCard", "Preprocess", "load_model", "model_dir", "read_model", "save_model"]
