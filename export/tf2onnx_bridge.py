"""tf2onnx for what we do not lower: one Keras layer or op, converted alone and spliced in.

tf2onnx 1.17 needs Keras's numpy-2 patch (`patch_tf2onnx`) and supports opsets up to
`TF2ONNX_MAX_OPSET`. A converted piece keeps its own nodes and initializers; every one of its
names gets a unique prefix, and Identity nodes connect it to our tensors.
"""

import warnings

from .graph import GraphBuilder, rename_graph

TF2ONNX_MAX_OPSET = 18


def convert_function(call, input_specs, opset):
    """tf2onnx's ModelProto for `call(*xs)` traced with `input_specs` (tf.TensorSpecs).

    Its graph inputs follow `input_specs`, its outputs `call`'s flattened outputs.
    """
    import tensorflow as tf
    import tf2onnx

    from keras_gated.keras_private import patch_tf2onnx

    if opset > TF2ONNX_MAX_OPSET:
        raise ValueError(f"tf2onnx supports opset <= {TF2ONNX_MAX_OPSET}, got opset={opset}")
    with warnings.catch_warnings():  # the patch itself trips numpy's np.object FutureWarning
        warnings.simplefilter("ignore", FutureWarning)
        patch_tf2onnx()
    from keras_gated.layers import cudnn

    function = tf.function(call, input_signature=list(input_specs))
    with cudnn.disabled():  # tf2onnx cannot convert cuDNN's kernels: trace our own loops
        proto, _ = tf2onnx.convert.from_function(
            function, input_signature=list(input_specs), opset=opset
        )
    return proto


def splice(g: GraphBuilder, proto, inputs, prefix):
    """Adds the converted graph `proto` to `g`, its inputs fed by the tensors `inputs`.

    Returns:
        the names of the spliced piece's outputs in `g`, in the graph's output order.
    """
    graph = proto.graph
    initialized = {tensor.name for tensor in graph.initializer}
    graph_inputs = [value for value in graph.input if value.name not in initialized]
    if len(graph_inputs) != len(inputs):
        raise ValueError(f"tf2onnx gave {len(graph_inputs)} inputs for {len(inputs)} tensors")
    rename_graph(graph, lambda name: f"{prefix}/{name}")
    for node in graph.node:
        for name in node.output:
            if name:
                g.reserve(name)
    for tensor in graph.initializer:
        g.reserve(tensor.name)
    for k, (value, x) in enumerate(zip(graph_inputs, inputs)):
        g.node("Identity", [x], outputs=[value.name], name=f"{prefix}/input_{k}")
    g.nodes.extend(graph.node)
    g.initializers.extend(graph.initializer)
    for opset in proto.opset_import:
        if opset.domain not in ("", "ai.onnx"):
            g.opsets[opset.domain] = opset.version
    return [value.name for value in graph.output]
