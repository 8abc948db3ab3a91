"""`benchmarks.ort_profile` splits onnxruntime's profile into per-call node times, checked on
a hand-written profile and on a real onnxruntime session (a graph with one GRU node)."""

import numpy as np
import pytest

from benchmarks import ort_profile


def _node(op, ts, dur):
    return {
        "cat": "Node",
        "name": f"{op}_node_kernel_time",
        "ts": ts,
        "dur": dur,
        "args": {"op_name": op},
    }


def test_per_call_splits_recurrent_from_other_nodes_by_call():
    events = [
        {"cat": "Session", "name": "model_run", "ts": 100, "dur": 50},
        _node("GRU", 105, 30),
        _node("Gather", 140, 4),
        _node("LSTM", 145, 2),
        {
            "cat": "Node",
            "name": "GRU_fence_before",
            "ts": 104,
            "dur": 0,
            "args": {"op_name": "GRU"},
        },  # not a kernel time: ignored
        {"cat": "Session", "name": "model_run", "ts": 200, "dur": 20},
        _node("MatMul", 201, 10),
    ]
    calls = ort_profile.per_call(events)
    np.testing.assert_allclose(calls, [(32e-6, 4e-6, 50e-6), (0.0, 10e-6, 20e-6)], rtol=1e-12)


def test_per_call_refuses_a_node_outside_every_call():
    events = [{"cat": "Session", "name": "model_run", "ts": 100, "dur": 10}, _node("GRU", 300, 1)]
    with pytest.raises(ValueError, match="outside any model_run"):
        ort_profile.per_call(events)


def test_node_split_of_a_real_session(tmp_path):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    T, B, D, U = 20, 4, 8, 16
    rng = np.random.default_rng(0)
    weights = [
        helper.make_tensor(
            name, TensorProto.FLOAT, shape, rng.standard_normal(shape).astype(np.float32).ravel()
        )
        for name, shape in (("W", (1, 3 * U, D)), ("R", (1, 3 * U, U)))
    ]
    graph = helper.make_graph(
        [
            helper.make_node("GRU", ["X", "W", "R"], ["Y"], hidden_size=U),
            helper.make_node("Relu", ["Y"], ["Z"]),
        ],
        "gru",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [T, B, D])],
        [helper.make_tensor_value_info("Z", TensorProto.FLOAT, None)],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "gru.onnx"
    onnx.save(model, path)
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp_path / "profile")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = rng.standard_normal((T, B, D)).astype(np.float32)
    split = ort_profile.node_split(session, lambda: session.run(None, {"X": x}), calls=5, warmup=2)
    assert split.recurrent.n == 5 and split.recurrent.min > 0 and split.other.min > 0
    assert 0 < split.node_share.median < 1 and 0 < split.call_share.median < 1
    assert not list(tmp_path.glob("profile*"))  # the profile file is removed
