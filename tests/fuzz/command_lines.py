"""hypothesis strategies for `keras-gated` command lines, read off the real argument parser.

Every subcommand's options come from `build_parser()`: each is drawn or left out, and its value
is drawn by the option's type or choices, valid-looking or hostile. Paths are relative names,
resolved in the directory the test runs the command in (`test_fuzz_cli.template`).
"""

import argparse

from hypothesis import strategies as st

from keras_gated.cli import arg_types
from keras_gated.cli.parser import build_parser


def mostly(valid, hostile):
    """`valid` four times in five, else `hostile`, so that many command lines pass every check
    (hypothesis draws the ends of a range more often than its middle)."""
    return st.integers(0, 9).flatmap(lambda k: hostile if k in (3, 6) else valid)


def seldom(chance):
    """True about once in `chance` draws."""
    return st.integers(0, chance - 1).map(lambda k: k == chance // 2)


# Names in the test's working directory (test_fuzz_cli.template), and hostile ones.
NAME = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="/\x00"), min_size=1, max_size=12
)
GOOD_READ_PATHS = {"corpus": ["corpus", "corpus/a.txt"], "run": ["run"], "onnx": ["lm.onnx"]}
BAD_READ_PATHS = (
    st.sampled_from(
        [
            "run",
            "lm.onnx",
            "corpus",
            "run_bad_vocab",
            "run_bad_config",
            "garbage.onnx",
            "binary.txt",
            "empty.txt",
            "empty_dir",
            "missing",
            "corpus/a.txt/below",
            "naïve ☃ 目录",
            "",
            ".",
            "-",
            "--",
        ]
    )
    | NAME
)
WRITE_PATHS = mostly(
    st.sampled_from(["fresh", "fresh/deeper", "naïve ☃ 目录/out"]),
    st.sampled_from(
        [
            "run",
            "corpus",
            "corpus/a.txt",
            "corpus/a.txt/below",
            "empty_dir",
            "lm.onnx",
            "",
            ".",
            "x" * 300,
        ]
    )
    | NAME,
)
TEXT = mostly(
    st.sampled_from(["to be", "abc", "The Cat"]),
    st.sampled_from(
        [
            "",
            " ",
            "TO BE\r\n",
            "\ufeff",
            "\x1b[31m",
            "a\nb",
            "<unk>",
            "日本語",
            "مرحبا",
            "😀",
            "-x",
            "--prompt",
            "\u200d",
            "x" * 5000,
        ]
    )
    | st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=20),
)
INTS = mostly(
    st.integers(1, 6).map(str),
    st.integers(-3, 0).map(str)
    | st.sampled_from(
        [
            "99999999999999999999999",
            "1e3",
            "0x10",
            "٣",
            "１２",
            "1_0",
            " 7 ",
            "+5",
            "7.0",
            "",
            "nan",
            "inf",
            "x",
        ]
    ),
)
FLOATS = mostly(
    st.sampled_from(["0.1", "0.5", "0.25", "1e-3", "1"]),
    st.floats().map(repr)
    | st.sampled_from(
        [
            "nan",
            "inf",
            "-inf",
            "1e400",
            "-0.0",
            "0",
            "1e-320",
            "2",
            "-1",
            "",
            "1,5",
            "0x1p-3",
            "infinity",
            " .5",
            "x",
        ]
    ),
)
BOOLS = mostly(
    st.sampled_from(["true", "false", "1", "0", "yes", "off", "TRUE"]),
    st.sampled_from(["maybe", "", "2", "tru"]),
)
WIDTHS = mostly(
    st.sampled_from(["8", "4,8", "8,8"]),
    INTS | st.sampled_from(["8,", ",", "8,,8", "0,8", "-1,8", "8,x", "８"]),
)
SEQ_LENS = mostly(st.sampled_from(["2,3", "3,3,3", "10,2"]), WIDTHS | st.just("1,10"))
NEAR_CHOICES = ["", "LSTM", "lstm ", "ｌｓｔｍ", "none,", "int4", "tpu"]
# Options (of type None or str) whose value is a path to write, or free text; paths to read
# are GOOD_READ_PATHS' keys.
WRITE = {"out", "output"}
FREE_TEXT = {"prompt", "text"}
INT_TYPES = (int, arg_types.positive, arg_types.non_negative)


def subcommands(parser=None):
    """{name: parser} of `keras-gated`'s subcommands."""
    parser = parser or build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def values(action):
    """Text values for `action` (a flag's or a positional's), valid-looking and hostile."""
    if action.choices:
        return mostly(st.sampled_from(sorted(action.choices)), st.sampled_from(NEAR_CHOICES))
    kind = action.type
    if kind in (None, str):
        if action.dest in GOOD_READ_PATHS:
            return mostly(st.sampled_from(GOOD_READ_PATHS[action.dest]), BAD_READ_PATHS)
        if action.dest in WRITE:
            return WRITE_PATHS
        if action.dest in FREE_TEXT:
            return TEXT
    elif kind in INT_TYPES:
        return INTS
    elif kind is float:
        return FLOATS
    elif kind is arg_types.true_or_false:
        return BOOLS
    elif kind.__name__ == "widths":
        return WIDTHS
    elif kind.__name__ == "seq_lens":
        return SEQ_LENS
    raise AssertionError(
        f"no values drawn for {action.option_strings or action.dest} "
        f"(type {kind}): add them to tests/fuzz/command_lines.py"
    )


@st.composite
def command_lines(draw):
    """An argv list for `keras-gated`: a subcommand and a random selection of its arguments,
    each with a drawn value; now and then a missing value, an unknown option or no command."""
    commands = subcommands()
    if draw(seldom(25)):
        return draw(
            st.sampled_from(
                [
                    [],
                    ["--version"],
                    ["-h"],
                    ["nope"],
                    ["--verbose"],
                    ["TRAIN"],
                    [""],
                    ["--", "train"],
                ]
            )
        )
    name = draw(st.sampled_from(sorted(commands)))
    parser = commands[name]
    argv = [name]
    for action in parser._actions:
        if action.option_strings:
            continue
        if action.nargs != "?" or draw(st.booleans()):
            argv.append(draw(values(action)))
    options = [
        a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)
    ]
    chosen = draw(st.lists(st.sampled_from(options), max_size=6, unique_by=id))
    chosen += [a for a in options if a.required and a not in chosen and not draw(seldom(10))]
    if name == "train" and not any(a.dest == "corpus" for a in chosen):
        chosen += [a for a in options if a.dest == "corpus"]  # not the built-in corpus: tiny only
    for action in draw(st.permutations(chosen)):
        flag = draw(st.sampled_from(action.option_strings))
        if action.nargs == 0:
            argv.append(flag)
        elif draw(seldom(20)):
            argv.append(flag)  # the value is missing (or the next option is taken for it)
        elif draw(st.booleans()):
            argv.append(f"{flag}={draw(values(action))}")
        else:
            argv += [flag, draw(values(action))]
    extra = draw(st.integers(0, 29))
    if extra == 13:
        argv.append("--no-such-option")
    elif extra == 14:
        argv.insert(draw(st.integers(1, len(argv))), draw(TEXT))
    elif extra == 15:
        argv.append("-h")
    return argv
