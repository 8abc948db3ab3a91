"""Language models built from the library's layers."""

from keras_gated.models.generate import generate
from keras_gated.models.language_model import LanguageModel, language_model

__all__ = ["LanguageModel", "generate", "language_model"]
