"""The numbers behind every picture, as CSV (one row per point); summaries are JSON
(`atomic.write_json`)."""

import csv
import io

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
