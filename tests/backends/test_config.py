"""Every constructor argument round-trips through get_config/from_config; `unroll=True` and
the legacy `implementation` are accepted and change nothing.

Each class is built with a non-default value for every argument it takes. The test fails if a
constructor gains an argument this table lacks, if get_config returns a key the table lacks,
if a value is not the default (so the round-trip proves something), or if the clone differs.
"""

import inspect

import keras
import numpy as np
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
# Keras's cell arguments, each with a value other than its default.
CELL = {
    "use_bias": False,
    "kernel_regularizer": keras.regularizers.L2(0.01),
    "recurrent_regularizer": keras.regularizers.L1(0.02),
    "bias_regularizer": keras.regularizers.L1L2(0.01, 0.03),
    "kernel_constraint": keras.constraints.MaxNorm(2.0),
    "recurrent_constraint": keras.constraints.UnitNorm(),
    "bias_constraint": keras.constraints.NonNeg(),
    "dropout": 0.25,
    "recurrent_dropout": 0.15,
    "seed": 11,
}
GATED = {
    "activation": "relu",
    "recurrent_activation": "hard_sigmoid",
    "implementation": 1,
    "zoneout": 0.1,
    "zoneout_variational": True,
}
RECURRENT = {
    "weight_dropout": 0.35,
    "return_sequences": True,
    "return_state": True,
    "go_backwards": True,
    "stateful": True,
    "zero_output_for_mask": True,
    "unroll": True,
    "activity_regularizer": keras.regularizers.L2(0.05),
}
CELL_OPTIONS = {
    "SimpleRNN": {"activation": "relu"},
    "IndRNN": {"activation": "relu", "recurrent_max_abs": 0.5},
    "LSTM": {
        **GATED,
        "unit_forget_bias": False,
        "peephole": True,
        "layer_norm": True,
        "cell_zoneout": 0.2,
    },
    "GRU": {**GATED, "reset_after": False, "layer_norm": True},
}
LAYER_OPTIONS = {
    "SimpleRNN": {},
    "IndRNN": {},
    "LSTM": {"use_cudnn": False},
    "GRU": {"use_cudnn": True},
}
CASES = {
    **{
        f"{k}Cell": (
            getattr(keras_gated, f"{k}Cell"),
            {"units": 7, **v, **CELL, **INITIALIZERS, **BASE_LAYER},
        )
        for k, v in CELL_OPTIONS.items()
    },
    **{
        k: (
            getattr(keras_gated, k),
            {
                "units": 7,
                **v,
                **CELL,
                **LAYER_OPTIONS[k],
                **INITIALIZERS,
                **RECURRENT,
                **BASE_LAYER,
            },
        )
        for k, v in CELL_OPTIONS.items()
    },
    "VariationalDropout": (keras_gated.VariationalDropout, {"rate": 0.3, "seed": 5, **BASE_LAYER}),
    "EmbeddingDropout": (
        keras_gated.EmbeddingDropout,
        {"vocab_size": 13, "rate": 0.3, "seed": 5, **BASE_LAYER},
    ),
    "LanguageModel": (
        keras_gated.LanguageModel,
        {
            "vocab_size": 13,
            "cell": "gru",
            "embed_dim": 6,
            "units": [4, 9, 6],
            "num_layers": 3,
            "dropout": 0.2,
            "recurrent_dropout": 0.1,
            "weight_dropout": 0.3,
            "embed_dropout": 0.05,
            "embed_weight_dropout": 0.15,
            "ar_alpha": 2.0,
            "tar_beta": 1.0,
            "tie_weights": False,
            "stateful": True,
            "seed": 9,
            "cell_options": {"reset_after": False},
            **BASE_LAYER,
        },
    ),
    "Perplexity": (Perplexity, {"name": "ppl", "dtype": "float64"}),
}
# Arguments that are defaults of the constructor only through **kwargs (Layer or RNN's).
KWARGS_ARGUMENTS = {
    "name",
    "trainable",
    "dtype",
    "zero_output_for_mask",
    "activity_regularizer",
    "use_cudnn",
}
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
    assert set(signature) <= set(kwargs), (
        f"arguments without a test value: {set(signature) - set(kwargs)}"
    )
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
def test_unroll_and_implementation_change_nothing(cls):
    """Keras's `unroll=True` and legacy `implementation=1` compute what the defaults compute
    (same weights, same inputs)."""
    x = np.random.default_rng(0).normal(size=(3, 5, 4)).astype("float32")
    extra = {} if cls is keras_gated.SimpleRNN else {"implementation": 1}
    plain = cls(6, return_sequences=True)
    unrolled = cls(6, return_sequences=True, unroll=True, **extra)
    y = keras.ops.convert_to_numpy(plain(x))
    unrolled.build(x.shape)
    unrolled.set_weights(plain.get_weights())
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(unrolled(x)), y)


def test_use_cudnn_is_checked_as_keras_checks_it():
    with plain_errors(), pytest.raises(ValueError, match=r"use_cudnn"):
        keras_gated.LSTM(4, use_cudnn="yes")
    for simple_rnn in (keras_gated.SimpleRNN, keras.layers.SimpleRNN):  # no such argument
        with plain_errors(), pytest.raises(ValueError, match=r"Unrecognized keyword.*use_cudnn"):
            simple_rnn(4, use_cudnn=False)
