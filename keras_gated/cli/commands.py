"""What each `keras-gated` subcommand does, given its parsed arguments; returns the exit status.

Each imports what it needs when it runs: `generate --onnx` imports onnxruntime and numpy only.
"""

import dataclasses
import json
import os
import sys

ONNX_PROVIDERS = {
    "auto": "auto",
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
}


def train(args):
    from keras_gated.training.config import TrainConfig
    from keras_gated.training.trainer import train

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in vars(args).items() if k in fields})
    results = train(config, args.out, overwrite=args.force)
    print(json.dumps(results, indent=2))
    if results["stopped"]:
        print(results["stopped"], file=sys.stderr)
        return 1
    return 0


def evaluate(args):
    from keras_gated.training.evaluate import evaluate_run

    for split, (ppl, n) in evaluate_run(args.run).items():
        print(f"{split} perplexity: {ppl:.2f} over {n} tokens")
    return 0


def generate(args):
    from keras_gated.sampling import check_sampling

    if (args.run is None) == (args.onnx is None):
        raise ValueError("give a run directory or --onnx FILE (exactly one)")
    check_sampling(args.temperature, args.top_k)  # before the seconds a model takes to load
    options = dict(temperature=args.temperature, top_k=args.top_k, seed=args.seed)
    if args.onnx:
        from keras_gated.export.runtime import OnnxLanguageModel

        lm = OnnxLanguageModel(args.onnx, providers=ONNX_PROVIDERS[args.providers])
        text = lm.generate(args.prompt, args.tokens, **options)
    else:
        from keras_gated.models import generate
        from keras_gated.training.run_dir import load_run

        model, tokenizer, _ = load_run(args.run)
        text = generate(model, tokenizer, args.prompt, args.tokens, **options)
    print(args.prompt + text)
    return 0


def export(args):
    from keras_gated.export import to_onnx
    from keras_gated.training.run_dir import load_run

    if os.path.isdir(args.output):
        raise ValueError(f"output {args.output!r} is a directory: give a file name")
    model, tokenizer, _ = load_run(args.run)
    result = to_onnx(
        model, args.output, tokenizer=tokenizer, quantize=args.quantize, overwrite=args.force
    )
    print(result)
    return 0


def diagnose(args):
    from keras_gated.cli.diagnose import run

    return run(args)


COMMANDS = {
    "train": train,
    "evaluate": evaluate,
    "generate": generate,
    "export": export,
    "diagnose": diagnose,
}
