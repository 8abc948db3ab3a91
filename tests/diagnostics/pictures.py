"""Checks that a file is a PNG picture with something drawn on it."""

import os

import numpy as np
from matplotlib import image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_BYTES = 150_000  # README pictures stay small
# A blank (all-white) figure has no pixel darker than white; our plots have axes, text and
# lines covering a few percent of the pixels at least.
MIN_INKED_FRACTION = 0.01
INK_THRESHOLD = 0.9  # a pixel whose mean RGB value is below this counts as ink


def assert_png(path, max_bytes=MAX_BYTES):
    assert os.path.exists(path), path
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE, f"{path} is not a PNG"
    size = os.path.getsize(path)
    assert size < max_bytes, f"{path} is {size} bytes"
    pixels = image.imread(path)  # float in [0, 1], (H, W, 3 or 4)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100, pixels.shape
    rgb = pixels[..., :3].mean(axis=-1)
    inked = float(np.mean(rgb < INK_THRESHOLD))
    assert inked > MIN_INKED_FRACTION, f"{path} looks blank ({inked:.4f} inked)"
    assert len(np.unique(np.round(pixels[..., :3], 2).reshape(-1, 3), axis=0)) > 8, (
        f"{path} has too few colours to be a plot"
    )
