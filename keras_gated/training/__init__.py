"""Training recipe, perplexity, callbacks and run directories."""

from keras_gated.training.config import TrainConfig
from keras_gated.training.perplexity import Perplexity, perplexity, token_nll
from keras_gated.training.trainer import load_run, stateless_copy, train

__all__ = ["Perplexity", "TrainConfig", "load_run", "perplexity", "stateless_copy", "token_nll", "train"]
