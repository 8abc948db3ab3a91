"""Any Keras functional or Sequential model as one ONNX graph, by walking its Keras graph.

One mechanism for every model shape. A functional model (a Sequential is one, through its
inner functional model) is a DAG of nodes, each a call of a layer or Keras op on Keras
tensors; the masks Keras propagates are Keras tensors of that graph too (e.g. the
`NotEqual` op that `Embedding(mask_zero=True)` adds, passed to the next layer as `mask=`).
The walk visits the nodes in Keras's own execution order (`keras_private.nodes_by_depth`), keeping a map
Keras tensor -> ONNX tensor name, and for each node:
1. a nested functional model or Sequential: walked in place, its inputs mapped;
2. a layer or op we know (`lower.py`, `lower_recurrent.py`): lowered natively, reading weights;
   recurrent layers (ours, Keras's LSTM/GRU/SimpleRNN and `keras.layers.RNN` over our or
   Keras's cells, alone or in `Bidirectional`) become one native node each (one per cell of
   a `StackedRNNCells`), with their mask, `initial_state` and `return_state`; a
   `TimeDistributed` layer lowers the layer it wraps once, over its axis 1 folded into the
   batch (`time_distributed.py`);
3. anything else: converted alone by tf2onnx (which needs the TensorFlow backend) and
   spliced in, so the layers around ours convert the way tf2onnx users know.
Masks follow Keras's eager rules, which the graph records only in part: the walk maps each
tensor to its mask, lowers a mask the graph skipped from the nodes it comes from
(`materialize`), hands a lowered layer the mask arguments Keras would (`call_masks.py`:
`Attention`, the poolings and the recurrent layers read them) and gives a converted layer
its inputs' masks as extra inputs, attached to the traced tensors (`convert`).

Interface: graph inputs and outputs keep Keras's input and output names and dtypes, with
dynamic axes named "batch" (axis 0) and "time" (axis 1; `<input>_time` when several inputs).
A `stateful` recurrent layer's cell k (k counts the cells of every stateful layer, in
order) also gets state inputs `h_k` (and `c_k`) and outputs `h_k_out` (and `c_k_out`), as a
language model does (`metadata.py`); other layers start from zeros or from the
`initial_state` the model gives them.
"""

import keras
from keras import tree

from keras_gated import keras_private
from keras_gated.layers.carried_states import kept_states

from . import metadata as md
from .attention import lower_attention
from .call_masks import call_masks
from .graph import BOOL, FLOAT, GraphBuilder
from .lower_layers import (
    IDENTITY_LAYERS,
    MERGE_LAYERS,
    NotLowerable,
    lower_activation,
    lower_batch_normalization,
    lower_dense,
    lower_embedding,
    lower_global_pooling_1d,
    lower_keras_op,
    lower_masking,
    lower_merge,
    lower_relu,
    lower_repeat_vector,
    lower_reshape,
    onnx_dtype,
)
from .lower_recurrent import lower_bidirectional, lower_rnn
from .lowered import GraphInput, Lowered
from .native import (
    RECURRENT_LAYERS,
    NotNative,
    activation_name,
    has_scan_cell,
    layer_cells,
    state_kinds,
)
from .tf2onnx_bridge import convert_function, splice
from .time_distributed import lower_time_distributed


class ExportError(ValueError):
    """A model that cannot be exported; the message names the layer and the reason."""


def functional_of(model):
    """The functional graph of a functional model or a built Sequential."""
    functional = keras_private.functional_graph(model)
    if functional is not None:
        return functional
    if isinstance(model, keras.Sequential):
        raise ExportError(
            f"Sequential model {model.name!r} is not built: start it with "
            f"keras.Input or call it once before exporting"
        )
    raise ExportError(
        f"model {model.name!r} ({type(model).__name__}) is subclassed: only "
        f"functional and Sequential models (and keras_gated.LanguageModel) have "
        f"a graph to export"
    )


def graph_nodes(functional):
    """The nodes of `functional` in execution order (deepest first, as Keras runs them)."""
    by_depth = keras_private.nodes_by_depth(functional)
    return [node for depth in sorted(by_depth, reverse=True) for node in by_depth[depth]]


class ModelWalk:
    """Builds the graph of one model; see the module docstring."""

    def __init__(self, model, opset):
        self.model, self.opset = model, opset
        self.g = GraphBuilder(f"keras_gated_{model.name}")
        self.names = {}  # id(KerasTensor) -> ONNX tensor name
        self.masks = {}  # ONNX tensor name -> ONNX name of the (B, T) mask Keras attaches to it
        self.lowered, self.loops, self.converted = [], [], []
        self.state_layers = []  # (layer, [state input names], [state output names]), flat
        self.state_sizes = []  # (layer name, [state sizes]) per cell of those layers
        self.inputs = []  # GraphInput

    # -- the walk --------------------------------------------------------------------------
    def walk(self, functional):
        for node in graph_nodes(functional):
            if node.is_input or node.operation is None:
                continue
            if any(id(kt) not in self.names for kt in node.input_tensors):
                continue  # not computable from the inputs (Keras skips it too)
            self.visit(node)

    def visit(self, node):
        """Lowers one node whose inputs are mapped, with the masks Keras would hand it."""
        op = node.operation
        args, kwargs = node.arguments.fill_in(self.names)
        kwargs.update(call_masks(op, node, self.names, self.masks))
        previous = kwargs.get("mask")
        if not isinstance(previous, str):  # Keras: else the first argument's mask
            previous = self.masks.get(args[0]) if args and isinstance(args[0], str) else None
        outputs = self.lower_node(node, op, args, kwargs)
        flat = tree.flatten(node.outputs)
        if len(outputs) != len(flat):
            raise ExportError(
                f"layer {op.name!r} gave {len(outputs)} ONNX outputs for {len(flat)} Keras outputs"
            )
        for kt, name in zip(flat, outputs):
            self.names[id(kt)] = name
        self.note_masks(op, flat, outputs, previous)

    def materialize(self, kt):
        """Maps a Keras tensor the walk skipped (a mask Keras computes eagerly, e.g. the
        `NotEqual` of an `Embedding(mask_zero=True)` whose next layer takes no mask) by
        lowering the nodes it comes from; False where it depends on unmapped inputs or
        cannot be exported."""
        if id(kt) in self.names:
            return True
        node = keras_private.producing_node(kt)
        if (
            node is None
            or node.is_input
            or not all(self.materialize(x) for x in node.input_tensors)
        ):
            return False
        try:
            self.visit(node)
        except ExportError:  # a mask nothing may read: its layer stays as it was
            return False
        return id(kt) in self.names

    def note_masks(self, op, flat, outputs, previous):
        """Records each output's mask as Keras attaches it when running eagerly: the one the
        graph holds (`keras_private.graph_mask`), else, for a layer that keeps the mask of its input (as
        `Layer._set_mask_metadata` does), `previous`. The graph lacks the latter where a
        nested model's output carries its inner mask, which Keras propagates only eagerly."""
        for kt, name in zip(flat, outputs):
            mask = keras_private.graph_mask(kt)
            if mask is not None and self.materialize(mask):
                self.masks[name] = self.names[id(mask)]
        if previous is None or outputs[0] in self.masks or not isinstance(op, keras.layers.Layer):
            return
        if isinstance(op, (*RECURRENT_LAYERS, keras.layers.Bidirectional)):
            keeps = op.return_sequences
        else:
            passes = type(op).compute_mask is keras.layers.Layer.compute_mask or isinstance(
                op, keras.layers.TimeDistributed
            )
            keeps = op.supports_masking and passes
        if keeps:
            self.masks[outputs[0]] = previous

    def lower_node(self, node, op, args, kwargs):
        """The ONNX names of `op`'s flattened outputs for this call."""
        if isinstance(op, keras.Model):
            inner = functional_of(op)
            for kt, name in zip(inner.inputs, tree.flatten(args)):
                self.names[id(kt)] = name
            self.walk(inner)
            outputs = [self.names[id(kt)] for kt in tree.flatten(inner.outputs)]
            self.note_masks(op, tree.flatten(inner.outputs), outputs, None)
            return outputs
        try:
            outputs = self.lower_native(node, op, args, kwargs)
        except (NotLowerable, NotNative) as reason:
            outputs = self.convert(node, op, reason)
            self.converted.append(op.name)
            return outputs
        if isinstance(op, keras.layers.Layer):
            is_loop = any(has_scan_cell(layer) for layer in _recurrent_parts(op))
            (self.loops if is_loop else self.lowered).append(op.name)
        return outputs

    def lower_native(self, node, op, args, kwargs, rank=None):
        """`op`'s call lowered natively -> its output names; NotLowerable/NotNative where
        tf2onnx must convert it. `rank`: the rank of x as `op` sees it (default: the node's
        first input's; a layer inside TimeDistributed sees one axis less)."""
        g = self.g
        x = args[0] if args else None
        rank = len(node.input_tensors[0].shape) if rank is None else rank
        if isinstance(op, IDENTITY_LAYERS):
            return [x]
        kind = type(op)
        if kind is keras.layers.TimeDistributed:
            if type(op.layer) is keras.layers.Dense:
                return [lower_dense(g, op.layer, x)]  # MatMul broadcasts over (B, N)
            if getattr(op.layer, "stateful", False):
                raise NotLowerable(f"stateful {type(op.layer).__name__} in TimeDistributed")

            def lower_inner(inner, folded, mask):
                call = {"mask": mask} if mask is not None else {}
                return self.lower_native(node, inner, [folded], call, rank - 1)

            return [lower_time_distributed(g, op, x, kwargs.get("mask"), lower_inner)]
        if _recurrent_parts(op):
            call = {**dict(zip(("sequences", "initial_state", "mask"), args)), **kwargs}
            initial = call.get("initial_state")
            initial = [initial] if isinstance(initial, str) else initial
            if isinstance(op, RECURRENT_LAYERS):
                return self.lower_recurrent(op, x, call.get("mask"), initial)
            if op.stateful:
                raise ExportError(
                    f"layer {op.name!r}: a stateful Bidirectional layer has no "
                    f"exportable meaning (its backward states depend on the future)"
                )
            return lower_bidirectional(g, op, x, call.get("mask"), initial)
        if kind is keras.layers.Embedding or (
            isinstance(op, keras.layers.Embedding) and not kwargs.get("reverse")
        ):
            self.note_vocabulary(node, op.input_dim)
            return [lower_embedding(g, op, x, node.input_tensors[0].dtype)[0]]
        if kind is keras.layers.Dense:
            return [lower_dense(g, op, x)]
        if kind is keras.layers.Activation:
            return [lower_activation(g, activation_name(op.activation), x, op.name)]
        if kind is keras.layers.Masking:
            self.note_mask_value(node, op.mask_value)
            return [lower_masking(g, op, x)]
        if kind is keras.layers.RepeatVector:
            return [lower_repeat_vector(g, op, x)]
        if kind is keras.layers.Reshape:
            return [lower_reshape(g, op, x)]
        if kind is keras.layers.ReLU:
            return [lower_relu(g, op, x)]
        if kind is keras.layers.BatchNormalization:
            return [lower_batch_normalization(g, op, x, rank)]
        if kind in (keras.layers.GlobalAveragePooling1D, keras.layers.GlobalMaxPooling1D):
            return [lower_global_pooling_1d(g, op, x, kwargs.get("mask"), self.opset)]
        if kind in (keras.layers.Attention, keras.layers.AdditiveAttention):
            return lower_attention(
                g,
                op,
                list(x),
                kwargs.get("mask"),
                kwargs.get("return_attention_scores", False),
                kwargs.get("use_causal_mask", False),
            )
        if kind in MERGE_LAYERS or kind is keras.layers.Concatenate:
            return [lower_merge(g, op, list(x))]
        if isinstance(op, keras.layers.Layer):
            raise NotLowerable(f"no native lowering for {kind.__name__}")
        out_dtype = tree.flatten(node.outputs)[0].dtype
        arg_dtypes = [getattr(a, "dtype", None) for a in node.arguments.args]
        return [lower_keras_op(g, op, args, kwargs, out_dtype, arg_dtypes)]

    def lower_recurrent(self, layer, x, mask, initial_state):
        """A unidirectional recurrent layer; a stateful one gets state inputs and outputs."""
        state_io = layer.stateful and initial_state is None
        if state_io:
            initial_state, names = [], []
            for cell in layer_cells(layer):
                index = len(self.state_sizes)
                kinds = state_kinds(cell)
                initial_state += [
                    self.g.add_input(
                        md.state_input_name(kind, index), FLOAT, [md.BATCH, int(cell.units)]
                    )
                    for kind in kinds
                ]
                names += [md.state_output_name(kind, index) for kind in kinds]
                self.state_sizes.append((layer.name, [int(cell.units)] * len(kinds)))
        outputs, finals = lower_rnn(self.g, layer, x, mask, initial_state)
        if state_io:
            for final, name in zip(finals, names):
                self.g.node("Identity", [final], outputs=[name], name=f"{layer.name}/{name}")
            self.state_layers.append((layer, initial_state, names))
        return outputs

    def convert(self, node, op, reason):
        """tf2onnx for one node; ExportError naming the layer when it cannot convert it.

        The masks of its input tensors (the walk's map) are extra inputs of the converted
        piece, attached to the traced tensors as Keras attaches them when running eagerly, so
        the layer takes them as in Keras: as mask arguments (`Attention`, pooling) or read
        from the tensors (`MultiHeadAttention`'s query mask)."""
        what = (
            f"{'layer' if isinstance(op, keras.layers.Layer) else 'op'} {op.name!r} "
            f"({type(op).__name__})"
        )
        if keras.backend.backend() != "tensorflow":
            raise ExportError(
                f"{what} has no native ONNX lowering ({reason}); tf2onnx converts "
                f"such layers, but only with KERAS_BACKEND=tensorflow "
                f"(now {keras.backend.backend()!r})"
            )
        if getattr(op, "stateful", False):
            raise ExportError(f"{what}: a stateful layer without a native lowering ({reason})")
        import tensorflow as tf

        unique = list({id(kt): kt for kt in node.arguments.keras_tensors}.values())
        masks = [self.masks.get(self.names[id(kt)]) for kt in unique]
        masked = [k for k, m in enumerate(masks) if m is not None and len(unique[k].shape) >= 2]
        specs = [tf.TensorSpec(kt.shape, kt.dtype) for kt in unique]
        specs += [tf.TensorSpec(unique[k].shape[:2], tf.bool) for k in masked]  # (B, T)

        def call(*xs):
            for k, mask in zip(masked, xs[len(unique) :]):
                keras_private.set_mask(xs[k], mask)
            args, kwargs = node.arguments.fill_in({id(kt): x for kt, x in zip(unique, xs)})
            if "training" in kwargs:
                kwargs["training"] = False
            return tree.flatten(op(*args, **kwargs))

        try:
            proto = convert_function(call, specs, self.opset)
        except Exception as error:  # tf2onnx and TensorFlow raise many kinds
            message = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
            raise ExportError(
                f"{what} has no native ONNX lowering ({reason}) and tf2onnx "
                f"cannot convert it: {type(error).__name__}: {message}"
            ) from None
        inputs = [self.names[id(kt)] for kt in unique]
        inputs += [
            self.g.node("Cast", [masks[k]], name=f"{op.name}/mask_bool", to=BOOL) for k in masked
        ]
        return splice(self.g, proto, inputs, prefix=f"tf2onnx/{op.name}")

    # -- what verification should feed ------------------------------------------------------
    def note_vocabulary(self, node, size):
        for spec in self.inputs:
            if any(self.names.get(id(kt)) == spec.name for kt in node.input_tensors):
                spec.high = size if spec.high is None else min(spec.high, size)

    def note_mask_value(self, node, value):
        for spec in self.inputs:
            if any(self.names.get(id(kt)) == spec.name for kt in node.input_tensors):
                spec.mask_value = float(value)

    # -- the whole model ------------------------------------------------------------------
    def build(self):
        functional = functional_of(self.model)
        dynamic_time = sum(
            1 for kt in functional.inputs if len(kt.shape) > 1 and kt.shape[1] is None
        )
        for kt in functional.inputs:
            time = "time" if dynamic_time <= 1 else f"{kt.name}_time"
            dims = _dims((None, *kt.shape[1:]), time, kt.name)
            dtype = keras.backend.standardize_dtype(kt.dtype)
            self.g.add_input(kt.name, onnx_dtype(dtype), dims)
            self.names[id(kt)] = kt.name
            self.inputs.append(GraphInput(kt.name, dtype, dims, batch=kt.shape[0]))
        self.walk(functional)
        taken = {spec.name for spec in self.inputs}
        outputs = []
        for kt, name in zip(tree.flatten(functional.outputs), _output_names(functional)):
            name = _unique(name, taken)
            taken.add(name)
            time = "time" if dynamic_time == 1 else None
            self.g.node("Identity", [self.names[id(kt)]], outputs=[name], name=f"output/{name}")
            dims = _dims((None, *kt.shape[1:]), time, None)
            self.g.add_output(name, onnx_dtype(kt.dtype), dims)
            outputs.append(name)
        names = [name for _, _, layer_names in self.state_layers for name in layer_names]
        sizes = [size for _, cell_sizes in self.state_sizes for size in cell_sizes]
        for name, size in zip(names, sizes):
            self.g.add_output(name, FLOAT, [md.BATCH, size])
        vocab_size = None
        if len(self.inputs) == 1 and len(outputs) == 1 and self.inputs[0].high:
            vocab_size = self.inputs[0].high
        return Lowered(
            self.g.model(self.opset),
            self.inputs,
            outputs,
            vocab_size,
            md.state_specs(self.state_sizes),
            self.lowered,
            self.loops,
            self.converted,
            model_reference(self.model, self.inputs, outputs, self.state_layers),
        )


def model_graph(model, opset):
    """The ONNX graph of a functional or Sequential `model` -> `Lowered`."""
    return ModelWalk(model, opset).build()


def _recurrent_parts(layer):
    """The recurrent layers a layer call runs: itself, a Bidirectional's two, or those of the
    layer a TimeDistributed wraps; else []."""
    if isinstance(layer, keras.layers.TimeDistributed):
        return _recurrent_parts(layer.layer)
    if isinstance(layer, keras.layers.Bidirectional):
        parts = [layer.forward_layer, layer.backward_layer]
        return parts if all(hasattr(part, "cell") for part in parts) else []
    return [layer] if isinstance(layer, RECURRENT_LAYERS) else []


def _dims(shape, time, input_name):
    """A Keras shape -> ONNX dims: axis 0 "batch", a dynamic axis 1 `time`, others named."""
    dims = []
    for axis, size in enumerate(shape):
        if size is not None:
            dims.append(int(size))
        elif axis == 0:
            dims.append(md.BATCH)
        elif axis == 1 and time:
            dims.append(time)
        else:
            dims.append(f"{input_name}_dim_{axis}" if input_name else None)
    return dims


def _output_names(functional):
    """Keras's output names: the producing layers' names (repeated names made unique later)."""
    return list(functional.output_names)


def _unique(name, taken):
    candidate, k = name, 1
    while candidate in taken:
        candidate, k = f"{name}_{k}", k + 1
    return candidate


def model_reference(model, inputs, outputs, state_layers):
    """Keras's `model(x)` on feeds by graph name; stateful layers start from the fed states."""

    def reference(feeds):
        xs = [feeds[spec.name] for spec in inputs]
        to_numpy = keras.ops.convert_to_numpy
        with kept_states([layer for layer, _, _ in state_layers]):
            for layer, state_inputs, _ in state_layers:
                for variable, name in zip(tree.flatten(layer.states), state_inputs):
                    variable.assign(feeds[name])
            result = model(xs if len(xs) > 1 else xs[0], training=False)
            got = dict(zip(outputs, [to_numpy(y) for y in tree.flatten(result)]))
            for layer, _, state_outputs in state_layers:
                got.update(zip(state_outputs, [to_numpy(v) for v in tree.flatten(layer.states)]))
        return got

    return reference
