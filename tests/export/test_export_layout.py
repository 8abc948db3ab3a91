"""Weight reorders: labelled gate blocks land where the ONNX spec wants them, and an oracle
written from the ONNX operator spec, in its own names (W, R, B, P, iofc), run on the reordered
weights equals our Keras layers on random weights and random non-zero states."""

import numpy as np
import pytest

import keras_gated
from keras_gated.export.layout import (
    keras_to_onnx_gru,
    keras_to_onnx_lstm,
    keras_to_onnx_lstm_peephole,
    keras_to_onnx_rnn,
    onnx_rnn_activation,
)
from tests.export.helpers import randomize

BT, TT, D, UU = 2, 5, 4, 3  # batch, time, input width, units (U != D)
# float64 oracle vs float32 Keras over 5 steps: O(1e-6); 1e-5 leaves a 10x margin.
ORACLE_ATOL = 1e-5


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def onnx_lstm(X, W, R, B, H0, C0, P):
    """ONNX LSTM, one direction, layout 0 (X (T, B, D)), default activations -> Y, Y_h, Y_c."""
    Wi, Wo, Wf, Wc = np.split(W[0], 4)
    Ri, Ro, Rf, Rc = np.split(R[0], 4)
    Wbi, Wbo, Wbf, Wbc, Rbi, Rbo, Rbf, Rbc = np.split(B[0], 8)
    Pi, Po, Pf = np.split(P[0], 3)
    H, C, Y = H0[0], C0[0], []
    for Xt in X:
        it = _sigmoid(Xt @ Wi.T + H @ Ri.T + Pi * C + Wbi + Rbi)
        ft = _sigmoid(Xt @ Wf.T + H @ Rf.T + Pf * C + Wbf + Rbf)
        ct = np.tanh(Xt @ Wc.T + H @ Rc.T + Wbc + Rbc)
        C = ft * C + it * ct
        ot = _sigmoid(Xt @ Wo.T + H @ Ro.T + Po * C + Wbo + Rbo)
        H = ot * np.tanh(C)
        Y.append(H)
    return np.stack(Y), H, C


def onnx_gru(X, W, R, B, H0, linear_before_reset):
    """ONNX GRU, one direction, layout 0, default activations; returns Y, Y_h."""
    Wz, Wr, Wh = np.split(W[0], 3)
    Rz, Rr, Rh = np.split(R[0], 3)
    Wbz, Wbr, Wbh, Rbz, Rbr, Rbh = np.split(B[0], 6)
    H, Y = H0[0], []
    for Xt in X:
        zt = _sigmoid(Xt @ Wz.T + H @ Rz.T + Wbz + Rbz)
        rt = _sigmoid(Xt @ Wr.T + H @ Rr.T + Wbr + Rbr)
        if linear_before_reset:
            ht = np.tanh(Xt @ Wh.T + rt * (H @ Rh.T + Rbh) + Wbh)
        else:
            ht = np.tanh(Xt @ Wh.T + (rt * H) @ Rh.T + Rbh + Wbh)
        H = (1 - zt) * ht + zt * H
        Y.append(H)
    return np.stack(Y), H


ONNX_FUNCTIONS = {"Tanh": np.tanh, "Relu": lambda x: np.maximum(x, 0), "Sigmoid": _sigmoid}


def onnx_rnn(X, W, R, B, H0, attrs):
    """ONNX RNN, one direction: Ht = f(Xt W^T + Ht-1 R^T + Wb + Rb); returns Y, Y_h."""
    (name,) = attrs["activations"]
    if name == "Affine":
        alpha, beta = attrs["activation_alpha"][0], attrs["activation_beta"][0]
        f = lambda x: alpha * x + beta  # noqa: E731
    else:
        f = ONNX_FUNCTIONS[name]
    Wb, Rb = np.split(B[0], 2)
    H, Y = H0[0], []
    for Xt in X:
        H = f(Xt @ W[0].T + H @ R[0].T + Wb + Rb)
        Y.append(H)
    return np.stack(Y), H


def _keras_run(layer, x, states):
    y, *final = layer(x, initial_state=states)
    return np.asarray(y), [np.asarray(s) for s in final]


def _data(num_states, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BT, TT, D)).astype(np.float32)
    states = [(0.5 * rng.standard_normal((BT, UU))).astype(np.float32) for _ in range(num_states)]
    return x, states


def _weights(layer):
    cell = layer.cell
    return [np.asarray(v, np.float64) for v in (cell.kernel, cell.recurrent_kernel, cell.bias)]


@pytest.mark.parametrize("peephole", [False, True])
def test_lstm_reorder_against_onnx_spec(peephole):
    layer = keras_gated.LSTM(UU, peephole=peephole, return_sequences=True, return_state=True)
    x, states = _data(2)
    layer.build(x.shape)
    randomize(layer)
    y, (h, c) = _keras_run(layer, x, states)
    W, R, B = keras_to_onnx_lstm(*_weights(layer))
    assert W.shape == (1, 4 * UU, D) and R.shape == (1, 4 * UU, UU) and B.shape == (1, 8 * UU)
    P = (
        keras_to_onnx_lstm_peephole(np.asarray(layer.cell.peephole_kernel, np.float64))
        if peephole
        else np.zeros((1, 3 * UU))
    )
    Y, Y_h, Y_c = onnx_lstm(x.transpose(1, 0, 2), W, R, B, states[0][None], states[1][None], P)
    np.testing.assert_allclose(Y.transpose(1, 0, 2), y, atol=ORACLE_ATOL)
    np.testing.assert_allclose(Y_h, h, atol=ORACLE_ATOL)
    np.testing.assert_allclose(Y_c, c, atol=ORACLE_ATOL)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_reorder_against_onnx_spec(reset_after):
    layer = keras_gated.GRU(UU, reset_after=reset_after, return_sequences=True, return_state=True)
    x, states = _data(1)
    layer.build(x.shape)
    randomize(layer)
    y, (h,) = _keras_run(layer, x, states)
    W, R, B, linear_before_reset = keras_to_onnx_gru(*_weights(layer), reset_after)
    assert linear_before_reset == int(reset_after) and B.shape == (1, 6 * UU)
    Y, Y_h = onnx_gru(x.transpose(1, 0, 2), W, R, B, states[0][None], linear_before_reset)
    np.testing.assert_allclose(Y.transpose(1, 0, 2), y, atol=ORACLE_ATOL)
    np.testing.assert_allclose(Y_h, h, atol=ORACLE_ATOL)


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "linear"])
def test_rnn_reorder_against_onnx_spec(activation):
    layer = keras_gated.SimpleRNN(
        UU, activation=activation, return_sequences=True, return_state=True
    )
    x, states = _data(1)
    layer.build(x.shape)
    randomize(layer)
    y, (h,) = _keras_run(layer, x, states)
    W, R, B = keras_to_onnx_rnn(*_weights(layer))
    attrs = onnx_rnn_activation(activation)
    Y, Y_h = onnx_rnn(x.transpose(1, 0, 2), W, R, B, states[0][None], attrs)
    np.testing.assert_allclose(Y.transpose(1, 0, 2), y, atol=ORACLE_ATOL)
    np.testing.assert_allclose(Y_h, h, atol=ORACLE_ATOL)


def test_lstm_blocks_land_in_iofc_order():
    """Each of our blocks i, f, g, o filled with its own label ends up where `iofc` says."""
    labels = {"i": 1.0, "f": 2.0, "g": 3.0, "o": 4.0}
    kernel = np.concatenate([np.full((D, UU), labels[g]) for g in "ifgo"], axis=1)
    W, R, B = keras_to_onnx_lstm(kernel, kernel[:UU], kernel[0])
    onnx_blocks = [labels[g] for g in "iofg"]  # ONNX's c is our g
    assert [W[0, k * UU, 0] for k in range(4)] == onnx_blocks
    assert [B[0, k * UU] for k in range(4)] == onnx_blocks and not B[0, 4 * UU :].any()
    P = keras_to_onnx_lstm_peephole(np.array([[1.0] * UU, [2.0] * UU, [4.0] * UU]))  # rows i, f, o
    assert [P[0, k * UU] for k in range(3)] == [1.0, 4.0, 2.0]  # ONNX P = [P_i | P_o | P_f]


def test_unknown_rnn_activation_refused():
    with pytest.raises(NotImplementedError, match="softsign"):
        onnx_rnn_activation("softsign")
