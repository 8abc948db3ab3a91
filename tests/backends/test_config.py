"""Every constructor argument round-trips through get_config/from_config; unroll=True is refused.

Each class is built with a non-default value for every argument it takes. The test fails if a
constructor gains an argument this table lacks, if get_config returns a key the table lacks,
if a value is not the default (so the round-trip proves something), or if the clone differs.
"""

import inspect

import keras
import pytest

import keras_gated
from keras_gated.training import Perplexity
from tests.oracles.harness import plain_errors

BASE_LAYER = {"name": "custom_name", "trainable": False, "dtype": "float64"}
INITIALIZERS = {
    "kernel_initializer": keras.initializers.RandomNormal(stddev=0.3, seed=1),
    "recurrent_initializer": keras.initializers.GlorotNormal(seed=2),
    "bias_initializer": keras.initializers.Constant(0.25),
}
RECURRENT = {
    "dropout": 0.25, "recurrent_dropout": 0.15, "weight_dropout": 0.35, "seed": 11,
    "return_sequences": True,
    "return_state": True, "go_backwards": True, "stateful": True, "zero_output_for_mask": True,
}
CELL_OPTIONS = {
    "SimpleRNN": {"activation": "relu"},
    "LSTM": {"unit_forget_bias": False, "peephole": True, "layer_norm": True},
    "GRU": {"reset_after": False},
}
CASES = {
    **{f"{k}Cell": (getattr(keras_gated, f"{k}Cell"), {"units": 7, **v, **INITIALIZERS, **BASE_LAYER})
       for k, v in CELL_OPTIONS.items()},
    **{k: (getattr(keras_gated, k), {"units": 7, **v, **INITIALIZERS, **RECURRENT, **BASE_LAYER})
       for k, v in CELL_OPTIONS.items()},
    "VariationalDropout": (keras_gated.VariationalDropout, {"rate": 0.3, "seed": 5, **BASE_LAYER}),
    "EmbeddingDropout": (keras_gated.EmbeddingDropout,
                         {"vocab_size": 13, "rate": 0.3, "seed": 5, **BASE_LAYER}),
    "LanguageModel": (keras_gated.LanguageModel, {
        "vocab_size": 13, "cell": "gru", "embed_dim": 6, "units": [4, 9, 6], "num_layers": 3,
        "dropout": 0.2, "recurrent_dropout": 0.1, "weight_dropout": 0.3, "embed_dropout": 0.05,
        "embed_weight_dropout": 0.15, "ar_alpha": 2.0, "tar_beta": 1.0, "tie_weights": False,
        "stateful": True, "seed": 9, "cell_options": {"reset_after": False},
        **BASE_LAYER,
    }),
    "Perplexity": (Perplexity, {"name": "ppl", "dtype": "float64"}),
}
# Arguments that are defaults of the constructor only through **kwargs (Layer or RNN's).
KWARGS_ARGUMENTS = {"name", "trainable", "dtype", "zero_output_for_mask"}
LAYERS = [keras_gated.SimpleRNN, keras_gated.LSTM, keras_gated.GRU]


def constructor_arguments(cls):
    """Named arguments of cls.__init__ and its bases up to Keras's own classes (and, for a
    sequence layer, its cell's), as {name: default}."""
    classes = [c for c in cls.__mro__ if c.__module__.startswith("keras_gated")]
    cell = getattr(cls, "cell_class", None)
    if cell is not None:
        classes += [c for c in cell.__mro__ if c.__module__.startswith("keras_gated")]
    args = {}
    for klass in classes:
        for name, p in inspect.signature(klass.__init__).parameters.items():
            if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                args.setdefault(name, p.default)
    return args


def serial(value):
    return keras.saving.serialize_keras_object(value) if hasattr(value, "get_config") else value


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_argument_round_trips(name):
    cls, kwargs = CASES[name]
    signature = constructor_arguments(cls)
    assert set(signature) <= set(kwargs), f"arguments without a test value: {set(signature) - set(kwargs)}"
    for arg, default in signature.items():
        if default is not inspect.Parameter.empty:
            assert kwargs[arg] != default, f"{arg}: test value equals the default"
    obj = cls(**kwargs)
    config = obj.get_config()
    extra = set(config) - set(kwargs)
    assert not extra, f"get_config keys the table lacks: {extra}"
    for arg, value in kwargs.items():
        assert arg in config, f"{arg} is not in get_config()"
        if arg == "dtype":
            assert keras.dtype_policies.get(config[arg]).name == value
        else:
            assert config[arg] == serial(value), (arg, config[arg], serial(value))
    clone = cls.from_config(config)
    assert type(clone) is cls
    assert clone.get_config() == config
    # Through Keras's own (de)serialisation as well, as a saved file would go.
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(obj))
    assert type(again) is cls and again.get_config() == config


@pytest.mark.parametrize("cls", LAYERS, ids=lambda c: c.__name__)
def test_unroll_is_refused_with_a_clear_error(cls):
    with plain_errors(), pytest.raises(ValueError, match=r"unroll=True is not supported"):
        cls(4, unroll=True)
    config = cls(4, name="rnn").get_config()
    with plain_errors(), pytest.raises(ValueError, match=r"unroll=True is not supported"):
        cls.from_config({**config, "unroll": True})
    assert cls(4, name="rnn", unroll=False).get_config() == config  # the default stays accepted
