"""Files written whole or not at all: a temp file beside each target, renamed over it.

A write that fails part-way (a full disk: ENOSPC, or a file-size limit: EFBIG) leaves the old
file (if any) untouched and no temp file behind, and raises an OSError of the same errno whose
message names the target, not the temp file:

    [Errno 28] cannot write run/model.keras: No space left on device (nothing was replaced)
"""

import json
import math
import os
import tempfile

import numpy as np


def write_all(items):
    """Writes several files, all or none of them: `items` is [(path, write)], where
    `write(tmp_path)` writes one file.

    Every temp file is written and flushed to disk before the first rename, so a failure while
    writing (the only step that needs space) replaces none of the targets. The renames that
    follow are each atomic; a crash between two of them leaves some targets new, some old.
    """
    written = []  # (tmp, path)
    try:
        for path, write in items:
            path = os.fspath(path)
            try:
                written.append((_write_temp(path, write), path))
            except OSError as error:
                raise naming(error, path) from error
        for tmp, path in written:
            os.replace(tmp, path)
        for folder in {os.path.dirname(os.path.abspath(path)) for _, path in written}:
            fsync_dir(folder)
    finally:
        for tmp, _ in written:
            if os.path.exists(tmp):
                os.remove(tmp)


def naming(error, path):
    """An OSError of `error`'s errno (the first in its chain of causes) naming `path`."""
    while isinstance(error.__cause__, OSError):
        error = error.__cause__
    message = f"cannot write {path}: {error.strerror or error} (nothing was replaced)"
    return OSError(error.errno, message) if error.errno else OSError(message)


def _write_temp(path, write):
    """Calls `write` on a fresh temp name beside `path`; returns that name, flushed to disk.
    Removes the temp file if anything fails."""
    folder = os.path.dirname(os.path.abspath(path))
    base, ext = os.path.splitext(os.path.basename(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=ext or ".tmp", dir=folder)
    os.close(fd)
    try:
        os.remove(tmp)  # some writers refuse an existing file
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        return tmp
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def fsync_dir(folder):
    """Flushes a folder's entries (renames into it) to disk, where the platform allows."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open a folder
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, write):
    """Calls `write(tmp_path)` on a temp file beside `path`, then renames it over `path`.

    A crash or error while writing leaves the old `path` (if any) untouched and no temp file
    behind; an OSError names `path`.
    """
    write_all([(path, write)])


def write_bytes(path, data):
    """Writes `data` to `path`, atomically."""
    write_files({path: data})


def write_files(contents):
    """Writes {path: bytes}, all files or none (`write_all`)."""

    def writer(data):
        def write(tmp):
            with open(tmp, "wb") as f:
                f.write(data)

        return write

    write_all([(path, writer(data)) for path, data in contents.items()])


def write_text(path, text):
    """Writes `text` (UTF-8) to `path`, atomically."""

    def write(tmp):
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)

    atomic_write(path, write)


def json_text(obj):
    """`obj` as strict JSON: indented, keys sorted, numpy arrays and scalars as lists and
    numbers, NaN and infinities as null; ends with a newline."""
    return json.dumps(_jsonable(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_json(path, obj):
    """Writes `obj` as `json_text` to `path`, atomically."""
    write_text(path, json_text(obj))


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj
