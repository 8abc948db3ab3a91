"""The `keras-gated` command: train, evaluate, generate, export.

    keras-gated train --corpus shakespeare --level word --cell lstm --layers 2 --out runs/NAME
    keras-gated evaluate runs/NAME
    keras-gated generate runs/NAME --prompt "to be" --tokens 50
    keras-gated export runs/NAME model.onnx [--quantize int8]
    keras-gated generate --onnx model.onnx --prompt "to be"
    keras-gated diagnose runs/NAME | --demo
"""

import argparse
import dataclasses
import json
import os
import sys


def _config_flags(parser):
    from keras_gated.training.config import TrainConfig

    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        if field.type is bool or isinstance(field.default, bool):
            parser.add_argument(flag, type=_bool, default=field.default, metavar="BOOL")
        else:
            parser.add_argument(flag, type=type(field.default), default=field.default)


def _bool(text):
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _positive_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(prog="keras-gated", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a language model into a run directory")
    _config_flags(p)
    p.add_argument("--out", required=True, help="run directory to create (or resume)")
    p.add_argument("--force", action="store_true", help="overwrite an existing run")

    p = sub.add_parser("evaluate", help="exact validation and test perplexity of a run")
    p.add_argument("run")

    p = sub.add_parser("generate", help="generate text from a run or an exported .onnx file")
    p.add_argument("run", nargs="?", help="run directory (or use --onnx)")
    p.add_argument("--onnx", help="exported model; runs with onnxruntime only")
    p.add_argument("--prompt", required=True)
    p.add_argument("--tokens", type=_positive_int, default=50)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--providers", default="auto", help="onnxruntime providers: auto, cpu, cuda")

    p = sub.add_parser("export", help="export a run to ONNX (native LSTM/GRU/RNN nodes)")
    p.add_argument("run")
    p.add_argument("output")
    p.add_argument("--quantize", choices=["int8"], default=None)
    p.add_argument("--force", action="store_true", help="overwrite an existing file")

    from keras_gated.diagnostics.cli import add_parser as add_diagnose

    add_diagnose(sub)
    return parser


def cmd_train(args):
    from keras_gated.training import TrainConfig, train

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in vars(args).items() if k in fields})
    results = train(config, args.out, overwrite=args.force)
    print(json.dumps(results, indent=2))
    if results["stopped"]:
        print(results["stopped"], file=sys.stderr)
        return 1
    return 0


def cmd_evaluate(args):
    from keras_gated.training import load_run, perplexity
    from keras_gated.training.trainer import prepare_data

    model, _, config = load_run(args.run)
    _, ids = prepare_data(config, verbose=False)
    for split in ("valid", "test"):
        ppl, n = perplexity(model, ids[split], config.batch_size, config.seq_len)
        print(f"{split} perplexity: {ppl:.2f} over {n} tokens")
    return 0


def cmd_generate(args):
    if (args.run is None) == (args.onnx is None):
        raise ValueError("give a run directory or --onnx FILE (exactly one)")
    options = dict(temperature=args.temperature, top_k=args.top_k, seed=args.seed)
    if args.onnx:
        from keras_gated.export import OnnxLanguageModel

        lm = OnnxLanguageModel(args.onnx, providers=_providers(args.providers))
        text = lm.generate(args.prompt, args.tokens, **options)
    else:
        from keras_gated.models import generate
        from keras_gated.training import load_run

        model, tokenizer, _ = load_run(args.run)
        text = generate(model, tokenizer, args.prompt, args.tokens, **options)
    print(args.prompt + " " + text)
    return 0


def _providers(name):
    names = {"auto": "auto", "cpu": ["CPUExecutionProvider"],
             "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}
    if name not in names:
        raise ValueError(f"--providers must be one of {sorted(names)}, got {name!r}")
    return names[name]


def cmd_export(args):
    from keras_gated.export import to_onnx
    from keras_gated.training import load_run

    if os.path.isdir(args.output):
        raise ValueError(f"output {args.output!r} is a directory: give a file name")
    model, tokenizer, _ = load_run(args.run)
    result = to_onnx(model, args.output, tokenizer=tokenizer, quantize=args.quantize,
                     overwrite=args.force)
    print(result)
    return 0


def cmd_diagnose(args):
    from keras_gated.diagnostics.cli import run

    return run(args)


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "generate": cmd_generate,
            "export": cmd_export, "diagnose": cmd_diagnose}


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ValueError, OSError, NotImplementedError, RuntimeError) as error:
        print(f"keras-gated {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
