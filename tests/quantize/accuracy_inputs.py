#!/usr/bin/env python3
"""Seeded, normalized-image-like inputs for the quantization accuracy check (accuracy.sh).

    accuracy_inputs.py det|rec OUT_DIR FIRST_SEED COUNT

writes OUT_DIR/<seed>/x.npy for seeds FIRST_SEED .. FIRST_SEED + COUNT - 1 (one folder per run,
the layout `tandem quantize --calibration` reads). Each input is drawn with numpy's
default_rng(seed), so the same seed gives the same file on every machine with the same numpy.

- det: a 160x160 page (1x3x160x160) of text lines made of character-like strokes (random line
  heights 6-15 px, word lengths, gaps, ink and background colours, a lighting gradient, a little
  Gaussian noise), normalized with the ImageNet mean and std as PaddleOCR's detector expects.
  Solid bars do not look like text to the detector (its map stays near 0); strokes do (about
  12-24% of the pixels above 0.3).
- rec: a 48x320 text-line crop (1x3x48x320) of character-like strokes, normalized to [-1, 1]
  ((v - 0.5) / 0.5) as PaddleOCR's recognizer expects.
"""
import os
import sys

import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]

def glyphs(rng, img, top, height, left, right, ink):
    """Character-like strokes (vertical, horizontal, a few dots) between columns left..right."""
    x = left
    while x < right - 2:
        cw = int(rng.integers(max(3, height // 2), height + 2))
        e = min(x + cw, right)
        t = max(1, height // 7)
        for _ in range(int(rng.integers(2, 5))):
            if rng.random() < 0.55:
                sx = int(rng.integers(x, max(x + 1, e - t)))
                y0 = top + int(rng.integers(0, max(1, height // 3)))
                img[:, y0:top + height, sx:sx + t] = ink[:, None, None]
            else:
                sy = int(rng.integers(top, top + height - t + 1))
                img[:, sy:sy + t, x:e] = ink[:, None, None]
        x = e + int(rng.integers(1, 3))

def page(rng, h, w):
    """A page of lines of character-like glyphs on a light, unevenly lit background (values in [0, 1])."""
    bg = rng.uniform(0.75, 1.0, size=3).astype(np.float32)
    img = np.ones((3, h, w), np.float32) * bg[:, None, None]
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    img *= (1 - rng.uniform(0, 0.15) * (gx / w) - rng.uniform(0, 0.15) * (gy / h))[None]
    y = int(rng.integers(2, 12))
    while y < h - 8:
        lh = int(rng.integers(6, 16))
        x = int(rng.integers(2, 24))
        ink = rng.uniform(0.0, 0.35, size=3).astype(np.float32)
        while x < w - 8:
            ww = int(rng.integers(10, 50))
            glyphs(rng, img, y, lh, x, min(x + ww, w - 4), ink)
            x += ww + int(rng.integers(lh // 2 + 2, lh + 8))
        y += lh + int(rng.integers(5, 16))
    img += rng.normal(0, rng.uniform(0.005, 0.03), size=img.shape).astype(np.float32)
    return np.clip(img, 0, 1)

def text_line(rng, h, w):
    """One line of character-like strokes, as rec sees a cropped text box (values in [0, 1])."""
    bg = rng.uniform(0.6, 1.0, size=3).astype(np.float32)
    img = np.ones((3, h, w), np.float32) * bg[:, None, None]
    ink = rng.uniform(0.0, 0.35, size=3).astype(np.float32)
    top, bottom = int(rng.integers(4, 14)), int(rng.integers(34, 44))
    x = int(rng.integers(2, 16))
    end = int(rng.integers(w // 3, w - 4))
    while x < end:
        cw = int(rng.integers(6, 22))
        for _ in range(int(rng.integers(1, 4))):  # strokes of one character
            if rng.random() < 0.5:
                sx = x + int(rng.integers(0, max(1, cw - 3)))
                img[:, top:bottom, sx:sx + int(rng.integers(2, 4))] = ink[:, None, None]
            else:
                sy = int(rng.integers(top, bottom - 2))
                img[:, sy:sy + int(rng.integers(2, 4)), x:x + cw] = ink[:, None, None]
        x += cw + int(rng.integers(1, 6))
    img += rng.normal(0, rng.uniform(0.005, 0.04), size=img.shape).astype(np.float32)
    return np.clip(img, 0, 1)

def det_input(seed, h=160, w=160):
    img = page(np.random.default_rng(seed), h, w)
    return ((img - IMAGENET_MEAN) / IMAGENET_STD)[None].astype(np.float32)

def rec_input(seed, h=48, w=320):
    img = text_line(np.random.default_rng(seed), h, w)
    return ((img - 0.5) / 0.5)[None].astype(np.float32)

def main():
    kind, out, first, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    make = det_input if kind == "det" else rec_input
    for s in range(first, first + count):
        os.makedirs(os.path.join(out, "%04d" % s), exist_ok=True)
        np.save(os.path.join(out, "%04d" % s, "x.npy"), make(s))


if __name__ == "__main__":
    main()
