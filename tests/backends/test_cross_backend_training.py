"""The training recipe computes the same on every backend: `train` with one config and the
same initial weights gives the same loss curve and perplexities on TensorFlow, JAX and torch
(carried state, variable windows, learning-rate decay and NT-ASGD averaging all on).

Initial weights and dropout masks come from each backend's own random generator (Keras's
seeds give backend-specific streams), so one seed alone gives each backend other weights;
this test hands all three the same initial weights and trains without dropout. It runs in the
JAX pass of `make test-backends`, one subprocess per backend.
"""

import csv
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from tests.conftest import write_corpus

RTOL = 1e-4  # float32 kernels of three libraries, summed in other orders, over 16 steps

SCRIPT = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import keras_gated as kg
    from keras_gated.training import trainer

    corpus, out, weights = sys.argv[1], sys.argv[2], sys.argv[3]
    build = trainer.build_model

    def same_start(*args, **kwargs):  # the weights saved by the first backend
        model = build(*args, **kwargs)
        if os.path.exists(weights):
            saved = np.load(weights)
            model.set_weights([saved[str(i)] for i in range(len(saved.files))])
        else:
            np.savez(weights, **{str(i): w for i, w in enumerate(model.get_weights())})
        return model

    trainer.build_model = same_start
    config = kg.TrainConfig(corpus=corpus, embed_dim=8, units=8, batch_size=4, seq_len=6,
                            epochs=4, steps_per_epoch=4, dropout=0.0, recurrent_dropout=0.0,
                            embed_dropout=0.0, patience=3, lr_decay=0.5, nonmono=1,
                            learning_rate=2e-2, variable_bptt=True, seed=3)
    print(json.dumps(kg.train(config, out, verbose=0)))
""")


def test_train_gives_the_same_curve_on_every_backend(tmp_path):
    if keras.backend.backend() != "jax":
        pytest.skip("runs once, in the JAX pass of make test-backends")
    corpus = write_corpus(tmp_path / "corpus", lines=(120, 30, 30))
    results, curves = {}, {}
    for backend in ("tensorflow", "jax", "torch"):  # TensorFlow saves the initial weights
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                SCRIPT,
                str(corpus),
                str(tmp_path / backend),
                str(tmp_path / "initial.npz"),
            ],
            env={**os.environ, "KERAS_BACKEND": backend},
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        results[backend] = json.loads(done.stdout.strip().splitlines()[-1])
        with open(tmp_path / backend / "log.csv", encoding="utf-8") as f:
            curves[backend] = [
                [float(r[k]) for k in ("loss", "val_loss", "learning_rate")]
                for r in csv.DictReader(f)
            ]
    for backend in ("jax", "torch"):
        np.testing.assert_allclose(
            curves[backend], curves["tensorflow"], rtol=RTOL, err_msg=backend
        )
        for key in ("valid_perplexity", "test_perplexity"):
            np.testing.assert_allclose(
                results[backend][key],
                results["tensorflow"][key],
                rtol=RTOL,
                err_msg=f"{backend} {key}",
            )
