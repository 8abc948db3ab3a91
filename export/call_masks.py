"""The masks Keras hands a layer call, found in the walk's map of masks.

Keras propagates masks eagerly: `Layer.__call__` (its step "Populate mask argument(s)",
keras/src/layers/layer.py) reads the mask attached to each input tensor and passes it on,
but a functional model's graph records those masks only for some calls (a lone tensor
argument such as `LSTM(x)`; not `Attention()([q, v])`). So the walk applies the same rule
to its own map "tensor -> mask" for the layers it lowers (tf2onnx traces the others with the masks
attached to their inputs, and Keras applies this rule itself):
- exactly one tensor argument (possibly a list, e.g. `inputs=[q, v]`) and a `mask`
  parameter left None: `mask` = that argument's mask(s), in its structure;
- several tensor arguments: each argument `k` with a `k_mask` parameter left None gets
  `k_mask` (e.g. MultiHeadAttention's `query_mask`, `value_mask`, `key_mask`).
"""

import inspect

from keras import KerasTensor


def call_masks(op, node, names, masks):
    """The mask arguments Keras adds to `node`'s call of `op`.

    Args:
        op: the layer. node: its Keras node (call arguments as Keras tensors).
        names: id(KerasTensor) -> ONNX name. masks: ONNX name -> ONNX name of its mask.

    Returns:
        {argument name: the ONNX mask name(s) in the argument's structure, None where a tensor
        has no mask}; {} where Keras adds nothing.
    """
    try:
        bound = inspect.signature(op.call).bind(
            *node.arguments.args,
            **{
                k: v
                for k, v in node.arguments.kwargs.items()
                if k in inspect.signature(op.call).parameters
            },
        )
    except (TypeError, ValueError):
        return {}
    bound.apply_defaults()
    given = bound.arguments
    tensors = {k: v for k, v in given.items() if _is_tensor_argument(v)}

    def mask_of(value):
        if isinstance(value, (list, tuple)):
            return type(value)(mask_of(v) for v in value)
        return masks.get(names.get(id(value))) if value is not None else None

    found = {}
    if len(tensors) == 1:
        if "mask" in given and given["mask"] is None:
            found["mask"] = mask_of(next(iter(tensors.values())))
    else:
        for k, value in tensors.items():
            if f"{k}_mask" in given and given[f"{k}_mask"] is None:
                found[f"{k}_mask"] = mask_of(value)
    return {k: v for k, v in found.items() if any(m is not None for m in _flat(v))}


def _is_tensor_argument(value):
    flat = _flat(value)
    return (
        bool(flat)
        and any(isinstance(v, KerasTensor) for v in flat)
        and all(v is None or isinstance(v, KerasTensor) for v in flat)
    )


def _flat(value):
    if isinstance(value, (list, tuple)):
        return [leaf for v in value for leaf in _flat(v)]
    return [value]
