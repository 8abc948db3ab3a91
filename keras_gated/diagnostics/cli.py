"""The `diagnose` subcommand: pictures and numbers of how gradients and gates behave.

    keras-gated diagnose runs/NAME [--out DIR] [--text "..."] [--loss-at all|last]
    keras-gated diagnose --demo [--out DIR] [--steps 500] [--seq-len 30] [--units 32]

Standalone: python -m keras_gated.diagnostics.cli ...
"""

import argparse
import os
import sys

from keras_gated.cli.arg_types import positive

LOSS_AT = ("all", "last")  # = gradient_flow.LOSS_AT, kept here so --help needs no TensorFlow
DEMO_OUT = "diagnostics-demo"  # --demo's default output directory


def add_parser(subparsers, **kwargs):
    """Adds the `diagnose` parser to an `add_subparsers()` object and returns it.

    `kwargs` go to `add_parser` (e.g. `parents`, `formatter_class`).
    """
    p = subparsers.add_parser(
        "diagnose", help="gradient flow, gate activity and training curves as PNG + CSV/JSON",
        description=__doc__.split("\n\n")[0], **kwargs,
    )
    p.add_argument("run", nargs="?", help="run directory (or use --demo)")
    p.add_argument("--demo", action="store_true",
                   help="vanilla RNN vs LSTM vs GRU, vanishing/exploding and clipping, "
                        "on a synthetic recall task")
    p.add_argument("--out", help=f"output directory (default RUN/diagnostics, or {DEMO_OUT})")
    p.add_argument("--text", help="sentence for the gate heat maps (default: validation text)")
    p.add_argument("--loss-at", choices=LOSS_AT, default="all",
                   help="gradient of the loss at every step or at the last step only")
    p.add_argument("--batch-size", type=positive, default=8,
                   help="sequences in the gradient batch")
    p.add_argument("--max-tokens", type=positive, default=40, help="tokens in the gate heat maps")
    demo = p.add_argument_group("demo options")
    demo.add_argument("--steps", type=positive, default=None,
                      help="training steps per cell (default: 500)")
    demo.add_argument("--seq-len", type=positive, default=None,
                      help="steps T of the recall task (default: 30)")
    demo.add_argument("--units", type=positive, default=None,
                      help="units of every cell (default: 32)")
    demo.add_argument("--seed", type=int, default=None,
                      help="seed of the weights and data (default: 0)")
    return p


def _demo_config(args):
    from keras_gated.diagnostics.demo import DemoConfig

    overrides = {"train_steps": args.steps, "seq_len": args.seq_len, "units": args.units,
                 "seed": args.seed}
    if overrides["seq_len"] is not None and overrides["seq_len"] < 2:
        raise ValueError("--seq-len must be at least 2")
    return DemoConfig(**{k: v for k, v in overrides.items() if v is not None})


def run(args):
    """Runs `diagnose` for parsed arguments; returns the exit status."""
    from tqdm import tqdm

    if args.demo == (args.run is not None):
        raise ValueError("give a run directory or --demo (exactly one)")
    if args.demo:
        from keras_gated.diagnostics.demo import demo_stages, run_demo, write_demo

        config = _demo_config(args)
        with tqdm(total=demo_stages(config) + 1, unit="stage") as bar:
            results = run_demo(config, progress=bar)
            bar.set_description("writing")
            written = write_demo(results, args.out or DEMO_OUT)
            bar.update(1)
    else:
        from keras_gated.diagnostics.diagnose import RUN_STAGES, diagnose_run

        if not os.path.isdir(args.run):
            raise ValueError(f"{args.run!r} is not a directory")
        with tqdm(total=RUN_STAGES, unit="stage") as bar:
            written = diagnose_run(args.run, args.out, text=args.text, loss_at=args.loss_at,
                                   batch_size=args.batch_size, max_tokens=args.max_tokens,
                                   progress=bar)
    print("\n".join(written))
    return 0


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(prog="keras-gated")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["diagnose", *(sys.argv[1:] if argv is None else argv)])
    try:
        return run(args)
    except (ValueError, OSError, RuntimeError) as error:
        print(f"keras-gated diagnose: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
