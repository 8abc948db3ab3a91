"""The `keras-gated` command: train, evaluate, generate, export, diagnose.

Every failure is one line on stderr (cut after `LONGEST_MESSAGE` characters) and exit status
2 (130 when interrupted); set KERAS_GATED_TRACEBACK=1 to get the traceback instead. A bad
command line is one line too (`parser.OneLineErrorParser`). `train` exits 1 when a non-finite
loss stopped it: its results are printed, and the reason as one line. TensorFlow's native log
lines are hidden unless `--verbose` or TF_CPP_MIN_LOG_LEVEL asks for them (`cli.native_logs`).
"""

import os
import sys

from keras_gated.cli.commands import COMMANDS
from keras_gated.cli.native_logs import min_level, native_log_filter
from keras_gated.cli.parser import build_parser

TRACEBACK_VARIABLE = "KERAS_GATED_TRACEBACK"
LONGEST_MESSAGE = 600  # Keras's load errors quote the whole model config (kilobytes)


def main(argv=None):
    args = build_parser().parse_args(argv)
    with native_log_filter(min_level(args.verbose)):
        try:
            return COMMANDS[args.command](args)
        except KeyboardInterrupt:
            print(f"keras-gated {args.command}: interrupted", file=sys.stderr)
            return 130
        except Exception as error:  # every failure is a message, not a traceback
            if os.environ.get(TRACEBACK_VARIABLE):
                raise
            print(f"keras-gated {args.command}: error: {_one_line(error)}", file=sys.stderr)
            return 2


def _one_line(error):
    text = " ".join(str(error).split()) or type(error).__name__
    if not isinstance(error, (ValueError, OSError, RuntimeError, NotImplementedError)):
        text = f"{type(error).__name__}: {text}"
    if len(text) > LONGEST_MESSAGE:
        text = f"{text[:LONGEST_MESSAGE]}... ({TRACEBACK_VARIABLE}=1 shows it all)"
    return text


if __name__ == "__main__":
    sys.exit(main())
