"""The numbers behind every picture, as CSV (one row per point) and JSON (summaries)."""

import csv
import io
import json
import math

import numpy as np

from keras_gated.atomic import write_text


def write_csv(path, rows):
    """Writes a list of dicts with the same keys as a CSV file with a header row, atomically."""
    rows = list(rows)
    if not rows:
        raise ValueError(f"no rows to write to {path!r}")
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, text.getvalue())


def jsonable(obj):
    """numpy arrays and scalars -> lists and floats; NaN and Inf -> None (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def write_json(path, obj):
    """Writes `obj` (`jsonable`) as strict, indented JSON, atomically."""
    write_text(path, json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n")
