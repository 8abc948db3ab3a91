"""The main job: train a small word-level LSTM on Shakespeare, export it, generate with onnxruntime.

    make demo        (or: python examples/shakespeare_demo.py [--out runs/demo])

About ten minutes on 2 CPU cores. Re-running resumes an interrupted run or retrains with --force.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_gated as kg  # noqa: E402

CONFIG = kg.TrainConfig(
    corpus="shakespeare",
    level="word",
    max_vocab=8000,
    cell="lstm",
    layers=2,
    embed_dim=160,
    units=160,
    dropout=0.25,
    recurrent_dropout=0.15,
    embed_dropout=0.1,
    tie_weights=True,
    batch_size=32,
    seq_len=35,
    epochs=5,
    steps_per_epoch=150,
    learning_rate=3e-3,
    clipnorm=1.0,
    seed=0,
)
PROMPT = "to be , or not to be"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/demo")
    parser.add_argument("--force", action="store_true", help="retrain from scratch")
    args = parser.parse_args()

    print(f"== training {CONFIG.layers}-layer {CONFIG.cell.upper()} into {args.out}")
    results = kg.train(CONFIG, args.out, overwrite=args.force)
    print(
        f"validation perplexity {results['valid_perplexity']:.1f}, "
        f"test perplexity {results['test_perplexity']:.1f}"
    )

    model, tokenizer, _ = kg.load_run(args.out)
    print(
        "\n== Keras generation\n" + PROMPT + kg.generate(model, tokenizer, PROMPT, 40, 0.8, seed=1)
    )

    from keras_gated.export import OnnxLanguageModel, to_onnx

    path = os.path.join(args.out, "model.onnx")
    export = to_onnx(model, path, tokenizer=tokenizer, overwrite=True)
    print(f"\n== exported {path}: {export}")
    runtime = OnnxLanguageModel(path)
    print(
        f"onnxruntime ({', '.join(runtime.providers)}), no TensorFlow needed; "
        f"perplexity of the prompt: {runtime.score(PROMPT):.1f}"
    )
    print(
        "\n== onnxruntime generation\n"
        + PROMPT
        + runtime.generate(PROMPT, tokens=60, temperature=0.8, top_k=50, seed=1)
    )


if __name__ == "__main__":
    main()
