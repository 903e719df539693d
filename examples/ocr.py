#!/usr/bin/env python3
"""Reads the text in a PNG with the PaddleOCR models through tandem's Python bindings.

The same pipeline as the C++ demo (examples/ocr/ocr.cpp, docs/demo.md): detector -> DB
post-processing -> crop and turn each box horizontal -> direction classifier -> recogniser ->
greedy CTC decoding. Needs numpy and the bindings (`import tandem`); PNGs are decoded with
zlib and struct (or Pillow when it is installed).

    python3 examples/ocr.py [--image FILE] [--models DIR] [--expect TEXT [--min-accuracy 0.95]]
"""
import argparse
import math
import os
import struct
import sys
import time
import zlib

try:
    import numpy as np
except ImportError as _numpy_error:  # reported in main()
    np = None

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fail(message, code=1):
    print(f"ocr.py: error: {message}", file=sys.stderr)
    sys.exit(code)


# ---- PNG ---------------------------------------------------------------------------------

def _unfilter(raw, height, stride, bpp):
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int32)
    pos = 0
    for y in range(height):
        ftype = raw[pos]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=pos + 1).astype(np.int32)
        pos += stride + 1
        if ftype == 0:
            cur = line
        elif ftype == 1:  # sub
            cur = line.copy()
            for i in range(bpp, stride):
                cur[i] = (cur[i] + cur[i - bpp]) & 255
        elif ftype == 2:  # up
            cur = (line + prev) & 255
        elif ftype == 3:  # average
            cur = line.copy()
            for i in range(stride):
                left = cur[i - bpp] if i >= bpp else 0
                cur[i] = (cur[i] + ((left + prev[i]) >> 1)) & 255
        elif ftype == 4:  # Paeth
            cur = line.copy()
            for i in range(stride):
                a = cur[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[i] = (cur[i] + pred) & 255
        else:
            raise ValueError(f"bad PNG filter type {ftype}")
        out[y] = cur
        prev = cur
    return out


def read_png(path):
    """Returns an HxWx3 uint8 array in BGR order (transparency composited on white)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        fail(f"cannot open {path}: {e.strerror}")
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        fail(f"{path} is not a PNG file")
    try:
        from PIL import Image  # optional (Debian: python3-pil)
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGBA"), dtype=np.float32)
        alpha = rgb[..., 3:4] / 255.0
        rgb = rgb[..., :3] * alpha + 255.0 * (1 - alpha)
        return np.ascontiguousarray(np.rint(rgb[..., ::-1]).astype(np.uint8))
    except ImportError:
        pass
    pos, idat, palette, trns = 8, b"", None, None
    width = height = depth = ctype = interlace = None
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = np.frombuffer(body, dtype=np.uint8).reshape(-1, 3)
        elif kind == b"tRNS":
            trns = body
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    if width is None or depth != 8 or interlace != 0 or ctype not in (0, 2, 3, 4, 6):
        fail(f"{path}: only 8-bit non-interlaced PNGs are read without Pillow (apt-get install python3-pil)")
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[ctype]
    px = _unfilter(zlib.decompress(idat), height, width * channels, channels).reshape(height, width, channels)
    if ctype == 3:
        alpha = np.full(len(palette), 255, dtype=np.uint8)
        if trns:
            alpha[:len(trns)] = np.frombuffer(trns, dtype=np.uint8)
        rgba = np.concatenate([palette, alpha[:, None]], axis=1)[px[..., 0]]
    elif ctype == 0:
        rgba = np.concatenate([np.repeat(px, 3, axis=2), np.full_like(px, 255)], axis=2)
    elif ctype == 4:
        rgba = np.concatenate([np.repeat(px[..., :1], 3, axis=2), px[..., 1:2]], axis=2)
    elif ctype == 2:
        rgba = np.concatenate([px, np.full_like(px[..., :1], 255)], axis=2)
    else:
        rgba = px
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32) * a + 255.0 * (1 - a)
    return np.ascontiguousarray(np.rint(rgb[..., ::-1]).astype(np.uint8))


# ---- image helpers -----------------------------------------------------------------------

def resize(img, w, h):
    """Bilinear resize with half-pixel centres."""
    sh, sw = img.shape[:2]
    fy = np.clip((np.arange(h) + 0.5) * sh / h - 0.5, 0, sh - 1)
    fx = np.clip((np.arange(w) + 0.5) * sw / w - 0.5, 0, sw - 1)
    y0 = fy.astype(np.int64)
    x0 = fx.astype(np.int64)
    y1 = np.minimum(y0 + 1, sh - 1)
    x1 = np.minimum(x0 + 1, sw - 1)
    wy = (fy - y0)[:, None, None]
    wx = (fx - x0)[None, :, None]
    f = img.astype(np.float64)
    top = f[y0][:, x0] * (1 - wx) + f[y0][:, x1] * wx
    bottom = f[y1][:, x0] * (1 - wx) + f[y1][:, x1] * wx
    return np.rint(np.clip(top * (1 - wy) + bottom * wy, 0, 255)).astype(np.uint8)


def to_tensor(img, width, mean, std):
    """1x3xHxwidth float32, img at the left, zeros after; (v/255 - mean) / std per channel."""
    h, w = img.shape[:2]
    x = np.zeros((1, 3, h, width), dtype=np.float32)
    norm = (img[:, :width].astype(np.float32) / 255.0 - np.array(mean, np.float32)) / np.array(std, np.float32)
    x[0, :, :, :min(w, width)] = norm.transpose(2, 0, 1)
    return x


def crop_quad(img, q):
    """Samples quadrilateral q (tl, tr, br, bl) into an upright image, bilinear."""
    w = max(1, int(max(np.linalg.norm(q[1] - q[0]), np.linalg.norm(q[2] - q[3]))))
    h = max(1, int(max(np.linalg.norm(q[3] - q[0]), np.linalg.norm(q[2] - q[1]))))
    s = ((np.arange(w) + 0.5) / w)[None, :, None]
    t = ((np.arange(h) + 0.5) / h)[:, None, None]
    top = q[0] + (q[1] - q[0]) * s
    bottom = q[3] + (q[2] - q[3]) * s
    p = top + (bottom - top) * t  # h x w x 2
    ih, iw = img.shape[:2]
    fx = np.clip(p[..., 0] - 0.5, 0, iw - 1)
    fy = np.clip(p[..., 1] - 0.5, 0, ih - 1)
    x0, y0 = fx.astype(np.int64), fy.astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, iw - 1), np.minimum(y0 + 1, ih - 1)
    wx, wy = (fx - x0)[..., None], (fy - y0)[..., None]
    f = img.astype(np.float64)
    v = (1 - wy) * ((1 - wx) * f[y0, x0] + wx * f[y0, x1]) + wy * ((1 - wx) * f[y1, x0] + wx * f[y1, x1])
    return np.rint(v).astype(np.uint8)


# ---- DB post-processing ------------------------------------------------------------------

def convex_hull(points):
    pts = sorted(set(points))
    if len(pts) < 3:
        return pts

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower, upper = [], []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]


def min_area_rect(points):
    """(centre, unit width axis, width, height) of the smallest rectangle around the points."""
    hull = np.array(convex_hull(points), dtype=np.float64)
    if len(hull) < 3:
        a, b = hull[0], hull[-1]
        d = b - a
        n = np.linalg.norm(d)
        return (a + b) / 2, (d / n if n else np.array([1.0, 0.0])), n, 0.0
    best = None
    for i in range(len(hull)):
        e = hull[(i + 1) % len(hull)] - hull[i]
        n = np.linalg.norm(e)
        if n == 0:
            continue
        u = e / n
        v = np.array([-u[1], u[0]])
        pu, pv = hull @ u, hull @ v
        area = (pu.max() - pu.min()) * (pv.max() - pv.min())
        if best is None or area < best[0]:
            centre = u * (pu.max() + pu.min()) / 2 + v * (pv.max() + pv.min()) / 2
            best = (area, centre, u, pu.max() - pu.min(), pv.max() - pv.min())
    _, centre, u, w, h = best
    if abs(u[0]) < abs(u[1]):  # width along the more horizontal axis, pointing right
        u, w, h = np.array([-u[1], u[0]]), h, w
    if u[0] < 0:
        u = -u
    return centre, u, w, h


def corners(centre, u, w, h):
    v = np.array([-u[1], u[0]])
    return np.array([centre - u * w / 2 - v * h / 2, centre + u * w / 2 - v * h / 2,
                     centre + u * w / 2 + v * h / 2, centre - u * w / 2 + v * h / 2])


def db_postprocess(prob, img_w, img_h, thresh=0.3, box_thresh=0.6, unclip_ratio=1.5, min_size=3):
    mh, mw = prob.shape
    mask = prob > thresh
    seen = np.zeros_like(mask)
    boxes = []
    ys, xs = np.nonzero(mask)
    for y0, x0 in zip(ys.tolist(), xs.tolist()):
        if seen[y0, x0]:
            continue
        seen[y0, x0] = True
        stack, rows = [(y0, x0)], {}
        while stack:
            y, x = stack.pop()
            lo, hi = rows.get(y, (x, x))
            rows[y] = (min(lo, x), max(hi, x))
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    ny, nx = y + dy, x + dx
                    if 0 <= ny < mh and 0 <= nx < mw and mask[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        stack.append((ny, nx))
        pts = [(float(lo), float(y)) for y, (lo, hi) in rows.items()] + [(float(hi), float(y)) for y, (lo, hi) in rows.items()]
        centre, u, w, h = min_area_rect(pts)
        if min(w, h) < min_size:
            continue
        q = corners(centre, u, w, h)
        x_lo, x_hi = max(0, int(math.floor(q[:, 0].min()))), min(mw - 1, int(math.ceil(q[:, 0].max())))
        y_lo, y_hi = max(0, int(math.floor(q[:, 1].min()))), min(mh - 1, int(math.ceil(q[:, 1].max())))
        gy, gx = np.mgrid[y_lo:y_hi + 1, x_lo:x_hi + 1]
        inside = np.ones(gx.shape, dtype=bool)
        pos = np.zeros(gx.shape, dtype=bool)
        neg = np.zeros(gx.shape, dtype=bool)
        for k in range(4):
            a, b = q[k], q[(k + 1) % 4]
            c = (b[0] - a[0]) * (gy - a[1]) - (b[1] - a[1]) * (gx - a[0])
            pos |= c > 0
            neg |= c < 0
        inside = ~(pos & neg)
        region = prob[y_lo:y_hi + 1, x_lo:x_hi + 1][inside]
        score = float(region.mean()) if region.size else 0.0
        if score < box_thresh:
            continue
        d = w * h * unclip_ratio / (2 * (w + h))
        w, h = w + 2 * d, h + 2 * d
        if min(w, h) < min_size + 2:
            continue
        q = corners(centre, u, w, h)
        q[:, 0] = np.clip(q[:, 0] * img_w / mw, 0, img_w - 1)
        q[:, 1] = np.clip(q[:, 1] * img_h / mh, 0, img_h - 1)
        boxes.append((q, score))
    boxes.sort(key=lambda b: b[0][0, 1])
    for i in range(1, len(boxes)):  # same line (within 10 px): left to right
        j = i
        while j > 0 and abs(boxes[j][0][0, 1] - boxes[j - 1][0][0, 1]) < 10 and boxes[j][0][0, 0] < boxes[j - 1][0][0, 0]:
            boxes[j], boxes[j - 1] = boxes[j - 1], boxes[j]
            j -= 1
    return boxes


def edit_distance(a, b):
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1]))
        prev = cur
    return prev[len(b)]


# ---- main --------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", default=os.path.join(REPO, "examples", "images", "sentence1.png"))
    ap.add_argument("--models", default=os.path.join(REPO, "models"))
    ap.add_argument("--expect", help="the text the image holds: prints the character accuracy")
    ap.add_argument("--min-accuracy", type=float, default=0.95)
    ap.add_argument("--skip-without-bindings", action="store_true",
                    help="exit 77 (a skipped test) when `import tandem` fails")
    args = ap.parse_args()

    if np is None:
        if args.skip_without_bindings:
            print(f"ocr.py: skipped: numpy does not import ({_numpy_error})")
            sys.exit(77)
        fail(f"cannot import numpy (Debian: python3-numpy): {_numpy_error}")
    try:
        import tandem
    except ImportError as e:
        if args.skip_without_bindings:
            print(f"ocr.py: skipped: the Python bindings do not import ({e})")
            sys.exit(77)
        fail(f"cannot import tandem (the Python bindings): {e}")

    t_total = time.perf_counter()
    t = time.perf_counter()
    img = read_png(args.image)
    read_ms = (time.perf_counter() - t) * 1e3
    ih, iw = img.shape[:2]

    keys_path = os.path.join(args.models, "ppocr_keys_v1.txt")
    try:
        with open(keys_path, encoding="utf-8") as f:
            keys = [""] + [line.rstrip("\r\n") for line in f] + [" "]
    except OSError:
        fail(f"cannot open {keys_path} (scripts/setup fetches it)")

    prepare_ms = {}
    sessions = {}
    for tag, name in (("det", "ch_PP-OCRv4_det_infer.onnx"), ("cls", "ch_ppocr_mobile_v2.0_cls_infer.onnx"),
                      ("rec", "ch_PP-OCRv4_rec_infer.onnx")):
        t = time.perf_counter()
        sess = tandem.InferenceSession(os.path.join(args.models, name))
        sessions[tag] = (sess, sess.get_inputs()[0].name)
        prepare_ms[tag] = (time.perf_counter() - t) * 1e3
    stage = {k: 0.0 for k in ("det_pre", "det", "det_post", "crop", "cls", "rec", "decode")}
    calls = {"cls": 0, "rec": 0}

    def run(tag, x):
        sess, name = sessions[tag]
        t0 = time.perf_counter()
        out = sess.run(None, {name: x})[0]
        stage[tag] += (time.perf_counter() - t0) * 1e3
        calls[tag] = calls.get(tag, 0) + 1
        return np.asarray(out)

    # Detection: longest side at most 960, sides multiples of 32, ImageNet mean/std, BGR.
    t = time.perf_counter()
    ratio = 960.0 / max(iw, ih) if max(iw, ih) > 960 else 1.0
    dw = max(32, int(round(iw * ratio / 32)) * 32)
    dh = max(32, int(round(ih * ratio / 32)) * 32)
    x = to_tensor(resize(img, dw, dh), dw, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    stage["det_pre"] = (time.perf_counter() - t) * 1e3
    prob = run("det", x)[0, 0]
    t = time.perf_counter()
    boxes = db_postprocess(prob, iw, ih)
    stage["det_post"] = (time.perf_counter() - t) * 1e3

    lines = []
    for quad, box_score in boxes:
        t = time.perf_counter()
        crop = crop_quad(img, quad)
        if crop.shape[0] >= 1.5 * crop.shape[1]:
            crop = np.ascontiguousarray(np.rot90(crop))
        stage["crop"] += (time.perf_counter() - t) * 1e3
        # Direction: a line wider than 4:1 is judged on up to three 4:1 windows at natural
        # scale (left, middle, right), probabilities averaged (a squeezed long line fools it).
        ch, cw = crop.shape[:2]
        win = max(1, 4 * ch)
        n = 1 if cw <= win else min(3, -(-cw // win))
        p = np.zeros(2)
        for k in range(n):
            part = crop if n == 1 else crop[:, (cw - win) * k // (n - 1):(cw - win) * k // (n - 1) + win]
            w = min(192, max(1, math.ceil(48 * part.shape[1] / ch)))
            p += run("cls", to_tensor(resize(part, w, 48), 192, (0.5,) * 3, (0.5,) * 3)).reshape(-1)[:2] / n
        flipped = bool(p[1] > p[0] and p[1] >= 0.9)
        if flipped:
            crop = np.ascontiguousarray(crop[::-1, ::-1])
        w = max(1, math.ceil(48 * cw / ch))
        padded = max(320, (w + 31) // 32 * 32)
        probs = run("rec", to_tensor(resize(crop, w, 48), padded, (0.5,) * 3, (0.5,) * 3))[0]
        if probs.shape[1] != len(keys):
            fail(f"recogniser: {probs.shape[1]} classes but the character list gives {len(keys)}")
        t = time.perf_counter()
        best = probs.argmax(axis=1)
        keep = (best != 0) & np.concatenate([[True], best[1:] != best[:-1]])
        text = "".join(keys[i] for i in best[keep])
        conf = float(probs[keep.nonzero()[0], best[keep]].mean()) if keep.any() else 0.0
        stage["decode"] += (time.perf_counter() - t) * 1e3
        if text and conf >= 0.5:
            lines.append((text, conf, box_score, quad, flipped))
    if 2 * sum(line[4] for line in lines) > len(lines):  # mostly upside down: read bottom-up
        lines.reverse()
    total_ms = (time.perf_counter() - t_total) * 1e3

    print(f"image: {args.image} ({iw}x{ih}), detector input {dw}x{dh}")
    print(f"{len(boxes)} text boxes, {len(lines)} lines read")
    for i, (text, conf, box_score, quad, flipped) in enumerate(lines, 1):
        pts = " ".join(f"({x:.0f},{y:.0f})" for x, y in quad)
        print(f'line {i}: "{text}"  confidence {conf:.3f}  box score {box_score:.3f}  box {pts}'
              + ("  (turned 180)" if flipped else ""))
    everything = " ".join(line[0] for line in lines)
    print(f"text: {everything}")
    print("timings (ms):")
    print(f"  prepare   det {prepare_ms['det']:.1f}, cls {prepare_ms['cls']:.1f}, rec {prepare_ms['rec']:.1f}")
    print(f"  read png  {read_ms:.2f}")
    print(f"  detect    pre {stage['det_pre']:.2f}, infer {stage['det']:.2f}, post {stage['det_post']:.2f}")
    print(f"  crop      {stage['crop']:.2f} ({len(boxes)} boxes)")
    print(f"  classify  {stage['cls']:.2f} ({calls['cls']} calls)")
    print(f"  recognise {stage['rec']:.2f} ({calls['rec']} calls), ctc decode {stage['decode']:.2f}")
    print(f"  total     {total_ms:.1f} (prepare included)")
    providers = getattr(sessions["det"][0], "get_providers", None)
    if providers:
        print(f"placement: {', '.join(providers())}")

    if args.expect is not None:
        d = edit_distance(everything, args.expect)
        acc = max(0.0, 1 - d / len(args.expect)) if args.expect else float(not everything)
        print(f'accuracy: {acc * 100:.2f}% (edit distance {d} over {len(args.expect)} characters; '
              f'expected "{args.expect}")')
        if acc < args.min_accuracy:
            print(f"ocr.py: accuracy {acc * 100:.2f}% is below {args.min_accuracy * 100:.2f}%", file=sys.stderr)
            sys.exit(3)


if __name__ == "__main__":
    main()
