"""Hides TensorFlow's, absl's and XLA's native log lines on standard error.

TensorFlow's C++ libraries write records such as

    I0000 00:00:1796166287.058866    3128 port.cc:153] oneDNN custom operations are on ...

straight to file descriptor 2, some of them (absl's, before its `InitializeLog`) whatever
`TF_CPP_MIN_LOG_LEVEL` says. `native_log_filter` routes descriptor 2 through a pipe and a
thread that drops the records below a severity and passes everything else (our messages,
progress bars, Python warnings) through unchanged.
"""

import contextlib
import logging
import os
import re
import sys
import threading

SEVERITIES = b"IWEF"  # info, warning, error, fatal: TF_CPP_MIN_LOG_LEVEL 0..3 hides those below
RECORD = re.compile(rb"([IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^\]\s]+\] ")
PREAMBLE = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
CONTINUATIONS = (b"To enable the following instructions:",)  # second lines of some records
HIDDEN_BY_DEFAULT = 3  # the level without --verbose or TF_CPP_MIN_LOG_LEVEL: all but fatal
JOIN_TIMEOUT_S = 5.0


def min_level(verbose, environ=os.environ):
    """The lowest severity shown: 0 with `verbose`, else TF_CPP_MIN_LOG_LEVEL's, else 3."""
    if verbose:
        return 0
    try:
        return int(environ.get("TF_CPP_MIN_LOG_LEVEL", HIDDEN_BY_DEFAULT))
    except ValueError:
        return HIDDEN_BY_DEFAULT


@contextlib.contextmanager
def native_log_filter(level):
    """Within the block, native log records below severity `level` vanish from descriptor 2.

    Also sets TF_CPP_MIN_LOG_LEVEL (for TensorFlow's later records) and the Python loggers
    of TensorFlow and absl to the same level, until the block ends.
    """
    previous = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    loggers = [logging.getLogger(name) for name in ("tensorflow", "absl")]
    levels = [logger.level for logger in loggers]
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = str(level)
    python_level = (logging.DEBUG, logging.WARNING, logging.ERROR, logging.CRITICAL)[min(level, 3)]
    for logger in loggers:
        logger.setLevel(python_level)
    try:
        with _drop_records(level):
            yield
    finally:  # an in-process caller of `main` gets its settings back
        for logger, old in zip(loggers, levels):
            logger.setLevel(old)
        if previous is None:
            os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
        else:
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = previous


@contextlib.contextmanager
def _drop_records(level):
    """Routes descriptor 2 through `_pump` within the block (for `level` > 0)."""
    if level == 0:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    pump = threading.Thread(target=_pump, args=(read_end, saved, level), daemon=True)
    pump.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end: the pump reads to its end
        pump.join(JOIN_TIMEOUT_S)
        os.close(saved)
        os.close(read_end)


def keep_line(line, level, dropping):
    """(keep `line`?, dropping a record now?) for one line without its newline."""
    record = RECORD.match(line)
    if record:
        keep = SEVERITIES.index(record.group(1)) >= level
        return keep, not keep
    if line == PREAMBLE:
        return level == 0, level != 0
    if dropping and line.startswith(CONTINUATIONS):
        return False, True
    return True, False


def _pump(read_end, out, level):
    pending, dropping = b"", False
    while True:
        chunk = os.read(read_end, 1 << 16)
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        kept = []
        for line in lines:
            keep, dropping = keep_line(line, level, dropping)
            if keep:
                kept.append(line + b"\n")
        if pending and pending[:1] not in (b"I", b"W", b"E", b"F", b"T"):
            kept.append(pending)  # a partial line that cannot start a record: a progress bar
            pending = b""
        _write(out, b"".join(kept))
    if pending and keep_line(pending, level, dropping)[0]:
        _write(out, pending)


def _write(fd, data):
    while data:
        data = data[os.write(fd, data) :]
