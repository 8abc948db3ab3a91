"""Run in a fresh process: `python load_check.py ORDER MANIFEST`, ORDER "keras_first",
"keras_gated_first" or "layer_first", KERAS_BACKEND set by the caller.

Imports Keras and keras_gated (nothing else of the library, nor the tests) in the given order,
then, for each entry of the JSON manifest, in order:
    {"config": serialized object, "class": name, "get_config": dict}
        keras.saving.deserialize_keras_object(config, safe_mode=True) must give that class
        with that get_config();
    {"model": path, "class": name, "inputs": .npy path, "outputs": .npy path, "atol": float,
     "evaluate": {"y": .npy path, "perplexity": float, "rtol": float} (optional)}
        keras.models.load_model(path, safe_mode=True) must give that class, outputs within
        atol of the saved ones and, if asked, the same evaluated perplexity.
Prints one line per entry and exits non-zero at the first failure.
"""

import json
import sys


def main(order, manifest_path):
    if order == "keras_first":
        import keras

        import keras_gated
    elif order == "keras_gated_first":
        assert "keras" not in sys.modules, "keras imported before the test began"
        import keras_gated

        assert "keras" not in sys.modules, "import keras_gated imported keras"
        import keras
    elif order == "layer_first":  # `kg.LSTM` before `import keras`: Keras is first imported
        import keras_gated  # from inside keras_gated.layers, half-initialised at that moment

        layer_class = keras_gated.LSTM
        assert "keras" in sys.modules and layer_class.__name__ == "LSTM"
        import keras
    else:
        raise SystemExit(f"unknown order {order!r}")
    import numpy as np

    with open(manifest_path, encoding="utf-8") as f:
        manifest = json.load(f)
    print("backend", keras.backend.backend(), "keras_gated", keras_gated.__version__)
    for entry in manifest:
        if "config" in entry:
            obj = keras.saving.deserialize_keras_object(entry["config"], safe_mode=True)
            assert type(obj).__name__ == entry["class"], (type(obj), entry["class"])
            assert type(obj).__module__.startswith("keras_gated"), type(obj).__module__
            got = json.loads(json.dumps(obj.get_config()))
            assert got == entry["get_config"], (got, entry["get_config"])
            print("deserialized", entry["class"])
            continue
        model = keras.models.load_model(entry["model"], safe_mode=True)
        assert type(model).__name__ == entry["class"], (type(model), entry["class"])
        x = np.load(entry["inputs"])
        got = keras.ops.convert_to_numpy(model(x))
        want = np.load(entry["outputs"])
        assert got.shape == want.shape, (got.shape, want.shape)
        error = float(np.max(np.abs(got - want)))
        assert error <= entry["atol"], (entry["model"], error, entry["atol"])
        if "evaluate" in entry:
            ev = entry["evaluate"]
            result = model.evaluate(x, np.load(ev["y"]), verbose=0, return_dict=True)
            assert abs(result["perplexity"] - ev["perplexity"]) <= ev["rtol"] * ev["perplexity"], (
                result,
                ev["perplexity"],
            )
        print("loaded", entry["model"], "max error", error)
    print("OK")


if __name__ == "__main__":
    main(*sys.argv[1:])
