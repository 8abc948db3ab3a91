"""A small ONNX graph builder: unique names, initializers, nodes, typed inputs and outputs."""

import numpy as np
from onnx import AttributeProto, TensorProto, helper, numpy_helper

FLOAT = TensorProto.FLOAT
INT64 = TensorProto.INT64
BOOL = TensorProto.BOOL


class GraphBuilder:
    """Collects one graph's pieces; every name it hands out is unique within the graph.

    Shapes given to `add_input`/`add_output` are lists of ints (fixed) or strings (named
    dynamic axes, e.g. "batch", "time").
    """

    def __init__(self, name):
        self.name = name
        self.nodes, self.initializers, self.inputs, self.outputs = [], [], [], []
        self.opsets = {"": None}  # domain -> version (None: the graph's default opset)
        self._names = set()
        self._fixed = set()  # names chosen by the caller (interface names), never renamed
        self.memo = {}  # values built once per graph and reused (a mask's derived tensors)

    def fresh(self, hint):
        """A new unique name based on `hint`."""
        name, k = hint, 1
        while name in self._names:
            name, k = f"{hint}_{k}", k + 1
        self._names.add(name)
        return name

    def reserve(self, name):
        """Claims `name` exactly (a graph input or output name); fails if already taken."""
        if name in self._names:
            raise ValueError(f"tensor name {name!r} is already used in the graph")
        self._names.add(name)
        self._fixed.add(name)
        return name

    def publish(self, tensor, name):
        """Makes `tensor` available under the interface name `name` and returns `name`.

        Renames it in place when it is an internal name; adds an Identity when it is itself an
        interface name (a graph input, or a state output that must keep its own name).
        """
        if tensor in self._fixed:
            return self.node("Identity", [tensor], outputs=[name])
        self.reserve(name)
        for node in self.nodes:
            for names in (node.input, node.output):
                for k, value in enumerate(names):
                    if value == tensor:
                        names[k] = name
        return name

    def initializer(self, hint, array, dtype=np.float32):
        """Stores `array` as an initializer (cast to `dtype`); returns its name."""
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(array, dtype=dtype), name))
        return name

    def ints(self, hint, values):
        """An int64 1-D initializer (axes, perm, slice bounds)."""
        return self.initializer(hint, np.asarray(values, dtype=np.int64), dtype=np.int64)

    def node(self, op_type, inputs, outputs=1, name=None, domain="", **attrs):
        """Adds a node; `outputs` is a count (fresh names) or a list of names (reserved).

        Returns the output name, or a list of names when the node has several outputs.
        """
        hint = name or op_type
        if isinstance(outputs, int):
            outputs = [
                self.fresh(f"{hint}_out{k}" if outputs > 1 else f"{hint}_out")
                for k in range(outputs)
            ]
        else:
            outputs = [o if o == "" else self.reserve(o) for o in outputs]
        node_name = self.fresh(f"node/{hint}")
        self.nodes.append(
            helper.make_node(
                op_type, list(inputs), outputs, name=node_name, domain=domain or None, **attrs
            )
        )
        return outputs[0] if len(outputs) == 1 else outputs

    def dims(self, tensor, start, end, hint):
        """`tensor`'s dims start..end-1 as an int64 1-D tensor (Shape then Slice: Shape's own
        start/end attributes need opset 15)."""
        shape = self.node("Shape", [tensor], name=f"{hint}/shape")
        return self.node(
            "Slice", [shape, self.ints("start", [start]), self.ints("end", [end])], name=hint
        )

    def add_input(self, name, elem_type, shape):
        self.inputs.append(helper.make_tensor_value_info(self.reserve(name), elem_type, shape))
        return name

    def add_output(self, name, elem_type, shape, first=False):
        """Declares `name` (already produced by a node) a graph output, last or `first`."""
        info = helper.make_tensor_value_info(name, elem_type, shape)
        self.outputs.insert(0 if first else len(self.outputs), info)
        return name

    def model(self, opset, producer="keras_gated"):
        """The finished `ModelProto` at `opset` (plus any extra domains the graph uses), without
        the nodes and initializers nothing reads."""
        nodes, initializers = self._live()
        graph = helper.make_graph(nodes, self.name, self.inputs, self.outputs, initializers)
        imports = [
            helper.make_opsetid(domain, opset if version is None else version)
            for domain, version in self.opsets.items()
        ]
        model = helper.make_model(graph, opset_imports=imports, producer_name=producer)
        # The lowest IR version that knows these opsets, so older runtimes load the file.
        model.ir_version = helper.find_min_ir_version_for(imports, ignore_unknown=True)
        return model

    def _live(self):
        """The nodes and initializers the graph outputs depend on, in their order."""
        needed = {value.name for value in self.outputs}
        live = []
        for node in reversed(self.nodes):
            if any(name in needed for name in node.output):
                live.append(node)
                needed.update(name for name in node.input if name)
                for attribute in node.attribute:  # a subgraph may read outer names
                    for subgraph in [attribute.g] if attribute.HasField("g") else attribute.graphs:
                        needed.update(name for sub in subgraph.node for name in sub.input)
        live.reverse()
        return live, [tensor for tensor in self.initializers if tensor.name in needed]


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
