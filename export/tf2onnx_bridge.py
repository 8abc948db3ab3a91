"""tf2onnx for what we do not lower: a run of layers spliced into our graph, or a whole model.

tf2onnx 1.17 needs Keras's numpy-2 patch (`patch_tf2onnx`) and supports opsets up to
`TF2ONNX_MAX_OPSET`. A converted piece keeps its own nodes and initializers; every one of its
names gets a unique prefix, and Identity nodes connect it to our tensors.
"""

import warnings

from onnx import AttributeProto

from .graph import GraphBuilder

TF2ONNX_MAX_OPSET = 18


def convert_function(call, input_spec, opset):
    """tf2onnx's ModelProto for `call(x)` traced with `input_spec` (a tf.TensorSpec).

    Returns:
        (model_proto, output shape as a tuple with None for dynamic axes).
    """
    import tensorflow as tf
    import tf2onnx
    from keras.src.export.tf2onnx_lib import patch_tf2onnx

    if opset > TF2ONNX_MAX_OPSET:
        raise ValueError(f"tf2onnx supports opset <= {TF2ONNX_MAX_OPSET}, got opset={opset}")
    with warnings.catch_warnings():  # the patch itself trips numpy's np.object FutureWarning
        warnings.simplefilter("ignore", FutureWarning)
        patch_tf2onnx()
    from keras_gated.layers import cudnn

    function = tf.function(call, input_signature=[input_spec])
    with cudnn.disabled():  # tf2onnx cannot convert cuDNN's kernels: trace our own loops
        output = function.get_concrete_function().structured_outputs
        proto, _ = tf2onnx.convert.from_function(function, input_signature=[input_spec],
                                                 opset=opset)
    return proto, tuple(output.shape)


def convert_layers(layers, input_spec, opset):
    """tf2onnx's ModelProto for `layers` applied in order at inference; see `convert_function`."""

    def call(x):
        for layer in layers:
            x = layer(x, training=False)
        return x

    return convert_function(call, input_spec, opset)


def rename_graph(graph, rename):
    """Applies `rename(name) -> name` to every tensor and node name of `graph` and its subgraphs."""
    for values in (graph.input, graph.output, graph.value_info):
        for value in values:
            value.name = rename(value.name)
    for tensor in graph.initializer:
        tensor.name = rename(tensor.name)
    for sparse in graph.sparse_initializer:
        sparse.values.name = rename(sparse.values.name)
    for node in graph.node:
        node.name = rename(node.name) if node.name else node.name
        for names in (node.input, node.output):
            for k, name in enumerate(names):
                names[k] = rename(name) if name else name
        for attribute in node.attribute:
            if attribute.type == AttributeProto.GRAPH:
                rename_graph(attribute.g, rename)
            elif attribute.type == AttributeProto.GRAPHS:
                for subgraph in attribute.graphs:
                    rename_graph(subgraph, rename)


def splice(g: GraphBuilder, proto, x, prefix):
    """Adds the converted graph `proto` (one input, one output) to `g`, fed by tensor `x`.

    Returns:
        the name of the spliced piece's output tensor in `g`.
    """
    graph = proto.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise ValueError(f"tf2onnx gave {len(graph.input)} inputs and {len(graph.output)} outputs")
    rename_graph(graph, lambda name: f"{prefix}/{name}")
    for node in graph.node:
        for name in node.output:
            if name:
                g.reserve(name)
    for tensor in graph.initializer:
        g.reserve(tensor.name)
    g.node("Identity", [x], outputs=[graph.input[0].name], name=f"{prefix}/input")
    g.nodes.extend(graph.node)
    g.initializers.extend(graph.initializer)
    for opset in proto.opset_import:
        if opset.domain not in ("", "ai.onnx"):
            g.opsets[opset.domain] = opset.version
    return graph.output[0].name

