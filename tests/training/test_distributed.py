"""MirroredStrategy over two logical CPU devices gives one device's loss curve (same global batch)."""

import json
import subprocess
import sys
import textwrap

LOSS_RTOL = 1e-4  # replicas sum per-replica float32 gradients in another order: ~1e-6 relative

SCRIPT = textwrap.dedent("""
    import csv, json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras_gated as kg

    corpus, root = sys.argv[1], sys.argv[2]
    curves = {}
    for strategy in ("none", "mirrored"):
        config = kg.TrainConfig(corpus=corpus, embed_dim=8, units=8, batch_size=4, seq_len=6,
                                epochs=2, steps_per_epoch=6, dropout=0.0, recurrent_dropout=0.0,
                                embed_dropout=0.0, carry_state=False, strategy=strategy, seed=1)
        kg.train(config, f"{root}/{strategy}", verbose=0)
        rows = list(csv.DictReader(open(f"{root}/{strategy}/log.csv")))
        curves[strategy] = [[float(r["loss"]), float(r["val_loss"])] for r in rows]
    curves["replicas"] = tf.distribute.MirroredStrategy().num_replicas_in_sync
    print(json.dumps(curves))
""")


def test_two_replicas_match_one_device(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    words = "a b c d e f g h i j".split()
    for k, name in enumerate("abc"):
        lines = [" ".join(words[(i + j + k) % 10] for j in range(6)) for i in range(80)]
        (corpus / f"{name}.txt").write_text("\n".join(lines), encoding="utf-8")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(corpus), str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    curves = json.loads(done.stdout.strip().splitlines()[-1])
    assert curves["replicas"] == 2
    for one, two in zip(curves["none"], curves["mirrored"], strict=True):
        for a, b in zip(one, two):
            assert abs(a - b) <= LOSS_RTOL * abs(a), (curves["none"], curves["mirrored"])
