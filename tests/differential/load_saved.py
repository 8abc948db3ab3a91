"""Loads the .keras files a differential test saved, in a fresh process, and writes back what
the loaded models compute: `python -m tests.differential.load_saved FOLDER COUNT`.

For k < COUNT: reads FOLDER/k.keras and the inputs FOLDER/k_in.npz, writes the outputs to
FOLDER/k_out.npz and the classes of the reloaded recurrent layers and cells (module.name) to
FOLDER/k_classes.json. One process for all, as Keras and the backend take seconds to import.
"""

import json
import os
import sys

import keras
import numpy as np

import tests.differential.build as build  # registers MaskProbe for deserialisation


def classes(model):
    """module.Class of each recurrent layer, its cell and the cells of a StackedRNNCells."""
    names = []
    for item in build.recurrent_layers(model):
        parts = [item]
        if isinstance(item, keras.layers.Bidirectional):
            parts = [item.forward_layer, item.backward_layer]
        for part in parts:
            names.append(f"{type(part).__module__}.{type(part).__name__}")
            cells = getattr(part.cell, "cells", [part.cell])
            names += [f"{type(c).__module__}.{type(c).__name__}" for c in cells]
    return names


def main(folder, count):
    for k in range(count):
        model = keras.models.load_model(os.path.join(folder, f"{k}.keras"), safe_mode=True)
        with np.load(os.path.join(folder, f"{k}_in.npz")) as saved:
            xs = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        outputs = keras.tree.flatten(model(xs, training=False))
        np.savez(
            os.path.join(folder, f"{k}_out.npz"), *[keras.ops.convert_to_numpy(o) for o in outputs]
        )
        with open(os.path.join(folder, f"{k}_classes.json"), "w", encoding="utf-8") as f:
            json.dump(classes(model), f)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
