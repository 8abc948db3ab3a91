"""Out-of-range token ids are caught before a compiled step, with XLA as `train` compiles it."""

import numpy as np
import pytest

VOCAB = 50


@pytest.fixture(params=[False, True], ids=["no-xla", "xla"])
def model(request, tiny_corpus):
    from keras_gated.training.build import build_model
    from keras_gated.training.config import TrainConfig

    config = TrainConfig(
        corpus=str(tiny_corpus), embed_dim=8, units=8, layers=1, xla=request.param, batch_size=2
    )
    model = build_model(config, VOCAB, stateful=False)
    assert model.jit_compile is request.param
    return model


def _batch(bad_at=None, bad_id=99):
    x = np.zeros((2, 5), "int32")
    y = np.ones((2, 5), "int32")
    if bad_at == "x":
        x[1, 3] = bad_id
    if bad_at == "y":
        y[0, 1] = bad_id
    return x, y


def test_train_on_batch_refuses_an_out_of_range_id(model):
    before = [w.copy() for w in model.get_weights()]
    for bad_at, bad_id in (("x", 99), ("y", VOCAB), ("x", -1)):
        with pytest.raises(ValueError, match=f"token ids must be in \\[0, vocab_size={VOCAB}\\)"):
            model.train_on_batch(*_batch(bad_at, bad_id))
    for w, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(w, b)
    model.train_on_batch(*_batch())  # in range: trains


def test_a_dataset_with_an_out_of_range_id_stops_fit(model):
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices(_batch("x")).batch(2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="token ids must be in"):
        model.fit(data, verbose=0, shuffle=False)
