"""The `diagnose` subcommand: pictures and numbers of how gradients and gates behave.

    keras-gated diagnose runs/NAME [--out DIR] [--text "..."] [--loss-at all|last]
    keras-gated diagnose --demo [--out DIR] [--steps 500] [--seq-len 30] [--units 32]
    keras-gated diagnose --sweep [--quick] [--out DIR] [--seq-lens 10,30,100,300] [--task adding]

Its arguments and its `run`; `cli/main.py` is the one entry point and error policy.
"""

import argparse
import dataclasses
import os

from keras_gated.cli.arg_types import positive
from keras_gated.diagnostics.demo_config import (
    GATE_BIASES,
    QUICK,
    QUICK_SEQ_LENS,
    SWEEP,
    SWEEP_SEQ_LENS,
    SWEEP_TASK,
    TASK_NAMES,
    DemoConfig,
)

LOSS_AT = ("all", "last")  # = gradient_flow.LOSS_AT, kept here so --help needs no TensorFlow
DEMO_OUT = "diagnostics-demo"  # --demo's default output directory
SWEEP_OUT = "diagnostics-sweep"  # --sweep's default output directory
DEFAULTS = DemoConfig()


def seq_lens(text):
    """ "10,30,100" -> (10, 30, 100): distinct values >= 2, sorted."""
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers separated by commas, got {text!r}"
        ) from None
    if not values or values[0] < 2:
        raise argparse.ArgumentTypeError(f"every T must be at least 2, got {text!r}")
    return tuple(values)


def add_parser(subparsers, **kwargs):
    """Adds the `diagnose` parser to an `add_subparsers()` object and returns it.

    `kwargs` go to `add_parser` (e.g. `parents`, `formatter_class`).
    """
    p = subparsers.add_parser(
        "diagnose",
        help="gradient flow, gate activity and training curves as PNG + CSV/JSON",
        description=__doc__.split("\n\n")[0],
        **kwargs,
    )
    p.add_argument("run", nargs="?", help="run directory (or use --demo or --sweep)")
    p.add_argument(
        "--demo",
        action="store_true",
        help="vanilla RNN vs LSTM vs GRU, vanishing/exploding and clipping, "
        "on a synthetic recall task",
    )
    p.add_argument(
        "--sweep",
        action="store_true",
        help="vanilla RNN vs LSTM vs GRU against the distance T on the adding "
        "problem, the same budget at every T, and the gradient flow at the "
        "longest T (6.5 to 9 minutes on 2 CPU cores)",
    )
    p.add_argument(
        "--out", help=f"output directory (default RUN/diagnostics, {DEMO_OUT} or {SWEEP_OUT})"
    )
    p.add_argument("--text", help="sentence for the gate heat maps (default: validation text)")
    p.add_argument(
        "--loss-at",
        choices=LOSS_AT,
        default="all",
        help="gradient of the loss at every step or at the last step only",
    )
    p.add_argument("--batch-size", type=positive, default=8, help="sequences in the gradient batch")
    p.add_argument("--max-tokens", type=positive, default=40, help="tokens in the gate heat maps")
    demo = p.add_argument_group("demo and sweep options")
    demo.add_argument(
        "--quick",
        action="store_true",
        help=f"a tiny budget ({QUICK.units} units, {QUICK.train_steps} steps; "
        f"--sweep at T = {', '.join(map(str, QUICK_SEQ_LENS))}): checks that "
        "everything runs, learns nothing",
    )
    demo.add_argument(
        "--steps",
        type=positive,
        default=None,
        help=f"training steps per cell, {SWEEP.train_steps} with --sweep "
        f"(default: {DEFAULTS.train_steps})",
    )
    demo.add_argument(
        "--seq-len",
        type=positive,
        default=None,
        help=f"steps T of the demo's recall task (default: {DEFAULTS.seq_len})",
    )
    demo.add_argument(
        "--seq-lens",
        type=seq_lens,
        default=None,
        metavar="T,T,...",
        help=f"the sweep's T values (default: {','.join(map(str, SWEEP_SEQ_LENS))})",
    )
    demo.add_argument(
        "--task",
        choices=TASK_NAMES,
        default=None,
        help="the sweep's task: the adding problem (scored by MSE) or the demo's "
        f"recall task (accuracy) (default: {SWEEP_TASK})",
    )
    demo.add_argument(
        "--units",
        type=positive,
        default=None,
        help=f"units of every cell (default: {DEFAULTS.units})",
    )
    demo.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        metavar="X",
        help=f"Adam step size (default: {DEFAULTS.learning_rate:g})",
    )
    demo.add_argument(
        "--gate-bias",
        choices=GATE_BIASES,
        default=None,
        help="LSTM and GRU gate biases at initialisation: chrono (time constants "
        f"up to T_max = {DEFAULTS.max_delay}) or Keras's (b_f = 1, b_z = 0) "
        f"(default: {DEFAULTS.gate_bias})",
    )
    demo.add_argument(
        "--seed",
        type=int,
        default=None,
        help=f"seed of the weights and data (default: {DEFAULTS.seed})",
    )
    return p


def _demo_config(args):
    """`DemoConfig` (`SWEEP` with --sweep, `QUICK` with --quick) with the options given."""
    overrides = {
        "train_steps": args.steps,
        "seq_len": args.seq_len,
        "units": args.units,
        "learning_rate": args.learning_rate,
        "gate_bias": args.gate_bias,
        "seed": args.seed,
    }
    if args.learning_rate is not None and not args.learning_rate > 0:
        raise ValueError(f"--learning-rate must be > 0, got {args.learning_rate}")
    base = QUICK if args.quick else SWEEP if args.sweep else DemoConfig()
    return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})


def _check_modes(args):
    if args.demo + args.sweep + (args.run is not None) != 1:
        raise ValueError("give a run directory, --demo or --sweep (exactly one)")
    if args.sweep and args.seq_len is not None:
        raise ValueError("--seq-len sets the demo's T; give the sweep's with --seq-lens")
    if not args.sweep and (args.seq_lens is not None or args.task is not None):
        raise ValueError("--seq-lens and --task are the sweep's: use them with --sweep")
    if args.run is not None and args.quick:
        raise ValueError("--quick is for --demo and --sweep")


def run(args):
    """Runs `diagnose` for parsed arguments; returns the exit status."""
    from tqdm import tqdm

    _check_modes(args)
    if args.sweep:
        from keras_gated.diagnostics.sweep import run_sweep, sweep_stages, write_sweep

        config = _demo_config(args)
        lengths = args.seq_lens or (QUICK_SEQ_LENS if args.quick else SWEEP_SEQ_LENS)
        with tqdm(total=sweep_stages(lengths) + 1, unit="stage") as bar:
            results = run_sweep(config, lengths, args.task or SWEEP_TASK, progress=bar)
            bar.set_description("writing")
            written = write_sweep(results, args.out or SWEEP_OUT)
            bar.update(1)
    elif args.demo:
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
            written = diagnose_run(
                args.run,
                args.out,
                text=args.text,
                loss_at=args.loss_at,
                batch_size=args.batch_size,
                max_tokens=args.max_tokens,
                progress=bar,
            )
    print("\n".join(written))
    return 0
