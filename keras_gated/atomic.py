"""Files written whole or not at all: a temp file beside the target, renamed over it."""

import os
import tempfile


def atomic_write(path, write):
    """Calls `write(tmp_path)` on a temp file beside `path`, then renames it over `path`.

    A crash while writing leaves the old `path` (if any) untouched and no temp file behind.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    base, ext = os.path.splitext(os.path.basename(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=ext or ".tmp", dir=folder)
    os.close(fd)
    try:
        os.remove(tmp)  # some writers refuse an existing file
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_bytes(path, data):
    """Writes `data` to `path`, atomically."""
    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_write(path, write)


def write_text(path, text):
    """Writes `text` (UTF-8) to `path`, atomically."""
    def write(tmp):
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)

    atomic_write(path, write)
