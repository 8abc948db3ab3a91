"""The `keras-gated` argument parser: every option with its help, default and choices.

Building it imports the standard library and `keras_gated.training.config` (a dataclass)
only: `keras-gated --help` starts without TensorFlow, Keras or matplotlib.
"""

import argparse
import dataclasses

import keras_gated
from keras_gated.cli.arg_types import non_negative, positive, true_or_false
from keras_gated.cli.diagnose import add_parser as add_diagnose
from keras_gated.training.config import TrainConfig

PROVIDERS = ("auto", "cpu", "cuda")  # onnxruntime providers for `generate --onnx`

DESCRIPTION = """\
Recurrent language models (LSTM, GRU, vanilla RNN written from the textbook equations) for
Keras 3: train, evaluate, generate, export to ONNX, and look inside.

  keras-gated train --corpus shakespeare --level word --cell lstm --out runs/lstm
  keras-gated evaluate runs/lstm
  keras-gated generate runs/lstm --prompt "to be" --tokens 50
  keras-gated export runs/lstm lstm.onnx
  keras-gated generate --onnx lstm.onnx --prompt "to be"     (onnxruntime only)
  keras-gated diagnose runs/lstm

Run `keras-gated COMMAND --help` for a command's options. Errors are one line on stderr with
exit status 2; set KERAS_GATED_TRACEBACK=1 to see the traceback instead."""

TRAIN_DESCRIPTION = """\
Trains a stacked recurrent language model on a corpus and writes a run directory:

  config.json   the settings below and a fingerprint of the corpus (names, sizes, SHA-256)
  vocab.json    the tokenizer and its vocabulary, fitted on the training split
  model.keras   the best model by validation perplexity
  log.csv, tensorboard/, grad_norm.csv, results.json
  checkpoint/   the newest checkpoint generation (checkpoint.prev/: the one before it)

The corpus is split into train/valid/test (80/10/10) by whole document (a single file: by
line ranges). Each epoch writes a new checkpoint generation and keeps the previous one; the
same command after an interruption resumes exactly where it stopped (from the newest
generation that loads; a damaged one is skipped with a warning), and a larger --epochs
extends a finished run. Resuming reads the saved vocabulary and refuses a changed corpus or
changed settings; --force starts over, removing the old run only once the corpus, settings
and model have loaded. A split smaller than --batch-size sequences trains with fewer
streams."""

TRAIN_EPILOG = """\
examples:
  keras-gated train --corpus shakespeare --cell gru --layers 2 --units 200 \\
                    --embed-dim 200 --epochs 4 --out runs/gru
  keras-gated train --corpus my_texts/ --level char --units 128 --embed-dim 128 --out runs/c
  keras-gated train --strategy mirrored ... (several GPUs of one machine)
  TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}' \
    keras-gated train --strategy multiworker --out shared/run ... (on each worker, its index)"""

METAVARS = {int: "N", float: "X", "corpus": "SOURCE", "units": "N,..."}
GROUPS = {
    "data": "corpus and tokens",
    "model": "model",
    "training": "training",
    "devices": "devices",
}


class OneLineErrorParser(argparse.ArgumentParser):
    """Reports a bad command line as one line on stderr with exit status 2, like every other
    error of the command (argparse's own prints the usage first); `--help` shows the usage."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps descriptions as written and ends each option's help with its default."""

    def _get_help_string(self, action):
        help = action.help or ""
        unstated = (
            action.default is None or action.default is False or action.default is argparse.SUPPRESS
        )
        if "default" in help or unstated or not action.option_strings:
            return help
        return f"{help} (default: %(default)s)"


def build_parser():
    parser = OneLineErrorParser(
        prog="keras-gated", description=DESCRIPTION, formatter_class=HelpFormatter
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {keras_gated.__version__}"
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--verbose",
        action="store_true",
        help="show TensorFlow's and XLA's own log lines (hidden by default; "
        "TF_CPP_MIN_LOG_LEVEL also sets their level)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, help, description=None, epilog=None):
        description = description or help[0].upper() + help[1:] + "."
        return sub.add_parser(
            name,
            help=help,
            description=description,
            epilog=epilog,
            parents=[common],
            formatter_class=HelpFormatter,
        )

    p = add("train", "train a language model into a run directory", TRAIN_DESCRIPTION, TRAIN_EPILOG)
    _train_options(p)

    p = add(
        "evaluate",
        "exact validation and test perplexity of a run",
        "Exact validation and test perplexity of a run's best model, on the corpus it was "
        "trained on,\nread with the run's own vocabulary (a changed corpus is refused).",
    )
    p.add_argument("run", help="run directory written by `keras-gated train`")

    p = add(
        "generate",
        "generate text from a run or an exported .onnx file",
        "Continues a prompt with sampled tokens. With --onnx, runs on onnxruntime and numpy "
        "alone\n(neither TensorFlow nor Keras is imported).",
    )
    p.add_argument("run", nargs="?", help="run directory (or give --onnx instead)")
    p.add_argument(
        "--onnx",
        metavar="FILE",
        help="exported model to run with onnxruntime instead of a run directory (default: none)",
    )
    p.add_argument("--prompt", required=True, help="text to continue (required)")
    p.add_argument("--tokens", type=non_negative, default=50, help="tokens to sample")
    p.add_argument(
        "--temperature",
        type=float,
        default=0.8,
        help="softmax temperature, > 0; lower is more conservative",
    )
    p.add_argument(
        "--top-k",
        type=positive,
        default=None,
        metavar="K",
        help="sample among the K most likely tokens (default: all)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed for reproducible sampling (default: a fresh one each time)",
    )
    p.add_argument(
        "--providers",
        choices=PROVIDERS,
        default="auto",
        help="onnxruntime providers with --onnx: auto (CUDA if available), cpu or cuda",
    )

    p = add(
        "export",
        "export a run to ONNX (native LSTM/GRU/RNN nodes)",
        "Exports a run's best model, with its vocabulary, to one .onnx file that "
        "onnxruntime runs\nalone; the export is verified against the Keras model and "
        "written atomically.",
    )
    p.add_argument("run", help="run directory written by `keras-gated train`")
    p.add_argument("output", help="the .onnx file to write")
    p.add_argument(
        "--quantize",
        choices=["int8"],
        default=None,
        help="dynamic int8 quantization of the weights (default: float32)",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing file")

    add_diagnose(sub, parents=[common], formatter_class=HelpFormatter)
    return parser


def _train_options(parser):
    groups = {key: parser.add_argument_group(title) for key, title in GROUPS.items()}
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        group = groups[field.metadata["group"]]
        help, choices = field.metadata["help"], field.metadata["choices"]
        if isinstance(field.default, bool):  # `--flag` alone means true
            group.add_argument(
                flag,
                type=true_or_false,
                default=field.default,
                nargs="?",
                const=True,
                metavar="{true,false}",
                help=f"{help} (default: {str(field.default).lower()})",
            )
        else:
            metavar = None if choices else METAVARS.get(field.name) or METAVARS[type(field.default)]
            group.add_argument(
                flag,
                type=field.metadata["parse"] or type(field.default),
                default=field.default,
                choices=choices,
                metavar=metavar,
                help=help,
            )
    run = parser.add_argument_group("run directory")
    run.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="run directory to create, or to resume (required)",
    )
    run.add_argument(
        "--force", action="store_true", help="delete the run in --out and train from scratch"
    )
