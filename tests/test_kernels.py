"""Numba kernels against plain numpy / OpenCV versions of the same computation."""

import json
import math
import subprocess
import sys
from dataclasses import astuple

import cv2
import numpy as np
import pytest

from edge.pose import kernels


def legacy_warp(src, inv, size, border, swap_rb):
    """Reference: OpenCV's classic fixed-point bilinear warpPerspective, written out in numpy."""
    h, w = size
    bh = min(16, h)
    bw = min(1024 // bh, w)
    xq = np.empty((h, w), np.int64)
    yq = np.empty((h, w), np.int64)
    for y in range(h):
        for xb in range(0, w, bw):
            x1 = np.arange(min(bw, w - xb), dtype=np.float64)
            x_row = inv[0, 0] * xb + inv[0, 1] * y + inv[0, 2]
            y_row = inv[1, 0] * xb + inv[1, 1] * y + inv[1, 2]
            w_row = inv[2, 0] * xb + inv[2, 1] * y + inv[2, 2]
            scale = 32.0 / (w_row + inv[2, 0] * x1)
            xq[y, xb : xb + len(x1)] = np.rint((x_row + inv[0, 0] * x1) * scale)
            yq[y, xb : xb + len(x1)] = np.rint((y_row + inv[1, 0] * x1) * scale)
    x0, y0, fx, fy = xq >> 5, yq >> 5, xq & 31, yq & 31
    img = src[:, :, ::-1] if swap_rb else src
    acc = np.zeros((h, w, 3), np.int64)
    for dy, dx, wgt in (
        (0, 0, (32 - fx) * (32 - fy)), (0, 1, fx * (32 - fy)),
        (1, 0, (32 - fx) * fy), (1, 1, fx * fy),
    ):  # fmt: skip
        xi, yi = x0 + dx, y0 + dy
        vals = img[np.clip(yi, 0, src.shape[0] - 1), np.clip(xi, 0, src.shape[1] - 1)]
        if border == kernels.BORDER_ZERO:
            inside = (xi >= 0) & (xi < src.shape[1]) & (yi >= 0) & (yi < src.shape[0])
            vals = np.where(inside[..., None], vals, 0)
        acc += (wgt * 32)[..., None] * vals.astype(np.int64)
    return ((acc + 16384) >> 15).astype(np.float32)


def random_inverse(rng, img_shape):
    """A tensor -> image map as the pipeline builds them: rotation, scale, shift (and the
    round-off that getPerspectiveTransform leaves in the last row)."""
    angle = rng.uniform(-math.pi, math.pi)
    scale = rng.uniform(0.3, 3.0)
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    tx = rng.uniform(-0.2, 1.0) * img_shape[1]
    ty = rng.uniform(-0.2, 1.0) * img_shape[0]
    last = rng.normal(0, 1e-12) if rng.random() < 0.5 else 0.0  # half of them exactly affine
    return np.array([[c, -s, tx], [s, c, ty], [last, 0.0, 1.0]])


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    return cv2.GaussianBlur(base, (5, 5), 0)  # smooth enough for the OpenCV comparison


@pytest.mark.parametrize("border", [kernels.BORDER_ZERO, kernels.BORDER_REPLICATE])
@pytest.mark.parametrize("swap_rb", [False, True])
@pytest.mark.parametrize("prefetch_rows", [0, kernels.PREFETCH_ROWS, 50])
def test_warp_matches_fixed_point_reference_exactly(image, border, swap_rb, prefetch_rows):
    """Bit for bit, with or without prefetching (50 rows ahead: past the last row)."""
    rng = np.random.default_rng(1)
    for _ in range(10):
        inv = random_inverse(rng, image.shape)
        out = np.empty((40, 100, 3), np.float32)  # wider than one 64-column block
        kernels.warp_to_tensor(image, inv, out, 1.0, 0.0, swap_rb, border, prefetch_rows)
        np.testing.assert_array_equal(out, legacy_warp(image, inv, (40, 100), border, swap_rb))


def test_warp_reads_padded_rows(image):
    """Camera buffers pad their rows: the warp (and its prefetching) follows the row stride."""
    padded = np.zeros((image.shape[0], image.shape[1] + 13, 3), np.uint8)
    padded[:, : image.shape[1]] = image
    view = padded[:, : image.shape[1]]
    assert view.strides[0] != image.strides[0]
    rng = np.random.default_rng(3)
    for _ in range(10):
        inv = random_inverse(rng, image.shape)
        a = np.empty((48, 40, 3), np.float32)
        b = np.empty((48, 40, 3), np.float32)
        kernels.warp_to_tensor(image, inv, a, 1.0, 0.0, True, kernels.BORDER_REPLICATE)
        kernels.warp_to_tensor(view, inv, b, 1.0, 0.0, True, kernels.BORDER_REPLICATE)
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("border", "cv_border"),
    [(kernels.BORDER_ZERO, cv2.BORDER_CONSTANT), (kernels.BORDER_REPLICATE, cv2.BORDER_REPLICATE)],
)
def test_warp_agrees_with_cv2_warp_perspective(image, border, cv_border):
    """OpenCV >= 4.11 rewrote its warp kernels, so agreement is to a grey level, not bit-exact."""
    rng = np.random.default_rng(2)
    for _ in range(10):
        inv = random_inverse(rng, image.shape)
        out = np.empty((64, 64, 3), np.float32)
        kernels.warp_to_tensor(image, inv, out, 2.0 / 255.0, -1.0, True, border)
        ref = cv2.warpPerspective(
            image, inv, (64, 64), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv_border, borderValue=0,
        )[:, :, ::-1].astype(np.float32) * (2.0 / 255.0) - 1.0  # fmt: skip
        diff = np.abs(out - ref) * 255.0 / 2.0
        assert diff.mean() < 0.25
        assert np.percentile(diff, 99) <= 2.01
        if not inv[2, 0]:  # an affine map: cv2.warpAffine must agree just as well
            affine = (
                cv2.warpAffine(
                    image,
                    inv[:2],
                    (64, 64),
                    flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                    borderMode=cv_border,
                    borderValue=0,
                )[:, :, ::-1].astype(np.float32)
                * (2.0 / 255.0)
                - 1.0
            )
            diff = np.abs(out - affine) * 255.0 / 2.0
            assert diff.mean() < 0.25 and np.percentile(diff, 99) <= 2.01


@pytest.mark.parametrize("layout", ["bgra", "reversed_channels", "one_pixel"])
def test_warp_other_layouts_match_reference(image, layout):
    """Sources the word loads cannot read (pixels 4 bytes apart, channels backwards, a one-pixel image
    smaller than one 4-byte word) take the indexed path, to the same bits."""
    if layout == "bgra":
        full = np.dstack([image, np.full(image.shape[:2], 7, np.uint8)])
        src = full[:, :, :3]
    elif layout == "reversed_channels":
        src = image[:, :, ::-1]
    else:
        src = image[:1, :1]
    rng = np.random.default_rng(5)
    for border in (kernels.BORDER_ZERO, kernels.BORDER_REPLICATE):
        for _ in range(5):
            inv = random_inverse(rng, src.shape)
            out = np.empty((20, 70, 3), np.float32)
            kernels.warp_to_tensor(src, inv, out, 1.0, 0.0, True, border)
            np.testing.assert_array_equal(out, legacy_warp(src, inv, (20, 70), border, True))


def test_warp_reads_no_byte_past_the_frame():
    """The word loads read 4 bytes for a 3-byte pixel: at the frame's last pixel (which a
    replicated border samples over and over) that byte must not be read. The frame ends just
    before an unreadable page, so a read past it kills the process."""
    code = """if True:
        import ctypes, json, mmap
        import numpy as np
        from edge.pose import kernels
        page = mmap.PAGESIZE
        buf = mmap.mmap(-1, 2 * page)
        base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.mprotect(ctypes.c_void_p(base + page), page, 0) == 0  # PROT_NONE
        h, w = 20, 30
        frame = np.frombuffer(buf, np.uint8, h * w * 3, page - h * w * 3).reshape(h, w, 3)
        frame[...] = np.arange(h * w * 3).reshape(h, w, 3) % 251
        inv = np.array([[0.5, 0.0, w - 3.0], [0.0, 0.5, h - 3.0], [0.0, 0.0, 1.0]])
        out = np.empty((16, 16, 3), np.float32)  # reaches past the bottom-right corner
        for border in (kernels.BORDER_ZERO, kernels.BORDER_REPLICATE):
            kernels.warp_to_tensor(frame, inv, out, 1.0, 0.0, True, border)
        print(json.dumps(out[-1, -1].tolist()))
    """
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    h, w = 20, 30
    last = (np.arange(h * w * 3).reshape(h, w, 3) % 251)[-1, -1, ::-1]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == last.astype(float).tolist()


def test_warp_same_bits_as_the_scalar_kernel_on_real_frames(media):
    """The vectorised kernel against the scalar one it replaced (tests/warp_before.py), on
    street.avi frames: crops inside, across and beyond the frame, every border, channel order
    and normalisation the detector and estimator use."""
    from edge.pose.roi import Roi, roi_matrices

    from .warp_before import warp_to_tensor as scalar_warp

    cap = cv2.VideoCapture(str(media / "video" / "street.avi"))
    frames = []
    while len(frames) < 12:
        ok, frame = cap.read()
        assert ok, "street.avi ended early"
        frames.append(frame)
    cap.release()
    rng = np.random.default_rng(6)
    h, w = frames[0].shape[:2]
    for i in range(96):
        frame = frames[i % len(frames)]
        size = (256, 256) if i % 2 else (224, 224)
        roi = Roi(
            float(rng.uniform(-0.2, 1.2) * w), float(rng.uniform(-0.2, 1.2) * h),
            float(rng.uniform(0.05, 1.5) * w), float(rng.uniform(0.05, 1.5) * h),
            float(rng.uniform(-math.pi, math.pi)),
        )  # fmt: skip
        _, inv = roi_matrices(roi, *size)
        for border, swap_rb, scale, offset in (
            (kernels.BORDER_REPLICATE, True, 1.0 / 255.0, 0.0),
            (kernels.BORDER_ZERO, True, 2.0 / 255.0, -1.0),
            (kernels.BORDER_ZERO, False, 1.0, 0.0),
        ):
            a = np.empty((*size, 3), np.float32)
            b = np.empty((*size, 3), np.float32)
            kernels.warp_to_tensor(frame, inv, a, scale, offset, swap_rb, border)
            scalar_warp(frame, inv, b, scale, offset, swap_rb, border)
            np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))


def test_warp_identity_copies_pixels(image):
    out = np.empty(image.shape, np.float32)
    inv = np.eye(3)
    kernels.warp_to_tensor(image, inv, out, 1.0, 0.0, False, kernels.BORDER_ZERO)
    np.testing.assert_array_equal(out, image.astype(np.float32))


def decode_numpy(raw, scores, anchors, size, clip, min_score):
    s = 0.5 * (1 + np.tanh(0.5 * np.clip(scores.astype(np.float64), -clip, clip)))
    keep = s >= min_score
    raw, a = raw[keep].astype(np.float64), anchors[keep]
    xc = raw[:, 0] / size * a[:, 2] + a[:, 0]
    yc = raw[:, 1] / size * a[:, 3] + a[:, 1]
    w = raw[:, 2] / size * a[:, 2]
    h = raw[:, 3] / size * a[:, 3]
    kp = raw[:, 4:].reshape(len(raw), -1, 2) / size * a[:, None, 2:] + a[:, None, :2]
    boxes = np.column_stack(
        [xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2, kp.reshape(len(raw), -1)]
    )
    return boxes, s[keep]


def test_decode_detections_matches_numpy():
    from edge.pose.detector import ssd_anchors

    rng = np.random.default_rng(3)
    anchors = ssd_anchors()
    raw = rng.normal(0, 20, (len(anchors), 12)).astype(np.float32)
    scores = rng.normal(-2, 3, len(anchors)).astype(np.float32)
    scores[:3] = [500.0, -500.0, 0.0]  # clipping and the threshold edge
    boxes, kept = kernels.decode_detections(raw, scores, anchors, 224.0, 100.0, 0.5)
    ref_boxes, ref_scores = decode_numpy(raw, scores, anchors, 224.0, 100.0, 0.5)
    assert len(kept) == len(ref_scores) > 0
    np.testing.assert_allclose(boxes, ref_boxes, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(kept, ref_scores, rtol=1e-6)


def test_refine_from_heatmap_moves_to_weighted_peak():
    hm = np.full((64, 64, 2), -20.0, np.float32)
    hm[10, 20, 0] = 20.0  # a sharp peak: landmark 0 snaps onto it
    hm[40, 40, 1] = -5.0  # below the confidence floor: landmark 1 stays put
    lm = np.array([[21.5 / 64, 11.2 / 64], [40.5 / 64, 40.5 / 64]], np.float32)
    kernels.refine_from_heatmap(lm, hm, 9, 0.5)
    np.testing.assert_allclose(lm[0], [20 / 64, 10 / 64], atol=1e-6)
    np.testing.assert_allclose(lm[1], [40.5 / 64, 40.5 / 64])


def test_refine_ignores_landmarks_outside_heatmap():
    hm = np.zeros((64, 64, 1), np.float32)
    lm = np.array([[-0.1, 0.5]], np.float32)
    kernels.refine_from_heatmap(lm, hm, 9, 0.5)
    np.testing.assert_array_equal(lm, np.array([[-0.1, 0.5]], np.float32))


def decode_landmarks_numpy(raw, rect, padding, heatmap, input_size=256):
    """Reference: the estimator's landmark decoding in numpy (float32, MediaPipe's order)."""
    from edge.pose.landmarks import sigmoid
    from edge.pose.roi import project_to_image, remove_letterbox

    lm = raw.reshape(39, 5).astype(np.float32)
    norm = np.ascontiguousarray(lm[:, :3] / np.float32(input_size))
    if heatmap is not None:
        kernels.refine_from_heatmap(norm, heatmap, 9, 0.5)
    out = np.empty_like(lm)
    out[:, :3] = project_to_image(remove_letterbox(norm, padding), rect)
    out[:, 3:] = sigmoid(lm[:, 3:])
    return out


def decode_world_numpy(raw, rect):
    world = raw.reshape(39, 3).astype(np.float32)
    angle = float(np.float32(rect.rotation))
    c, s = np.float32(math.cos(angle)), np.float32(math.sin(angle))
    out = world.copy()
    out[:, 0] = c * world[:, 0] - s * world[:, 1]
    out[:, 1] = s * world[:, 0] + c * world[:, 1]
    return out


def assert_same_bits(a, b):
    assert a.dtype == b.dtype == np.float32 and a.shape == b.shape
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32))


def random_rects(rng, n):
    from edge.pose.roi import Rect

    for _ in range(n):
        yield Rect(*rng.uniform(-0.2, 1.2, 2), *rng.uniform(0.01, 2.0, 2), rng.uniform(-4, 4))


def test_decode_matches_numpy_on_random_outputs():
    from edge.pose.landmarks import decode_landmarks, decode_world

    rng = np.random.default_rng(4)
    for rect in random_rects(rng, 200):
        raw = rng.normal(128, 80, 195).astype(np.float32)
        raw[3::5] = rng.normal(0, 10, 39)
        heatmap = rng.normal(-3, 4, (64, 64, 39)).astype(np.float32)
        padding = tuple(float(np.float32(p)) for p in rng.choice([0.0, 0.125, 0.3], 2)) * 2
        for hm in (None, heatmap):
            assert_same_bits(
                decode_landmarks(raw, rect, padding, hm),
                decode_landmarks_numpy(raw, rect, padding, hm),
            )
        world = rng.normal(0, 0.5, 117).astype(np.float32)
        assert_same_bits(decode_world(world, rect), decode_world_numpy(world, rect))


def test_decode_matches_numpy_on_real_model_outputs(media, static_estimator):
    """The model's own outputs on the test photos, through their detected ROI and turned ones."""
    from dataclasses import replace

    from edge.pose.landmarks import decode_landmarks, decode_world
    from edge.pose.tracking import roi_from_detection

    est = static_estimator.estimator
    rng = np.random.default_rng(5)
    decoded = 0
    for path in sorted((media / "images").iterdir()):
        frame = cv2.imread(str(path))
        detections = static_estimator.detector.detect(frame)
        if not detections:
            continue
        rect = roi_from_detection(detections[0])
        padding = est.preprocess(frame, rect)
        est.infer()
        raw, world = est.model.output("landmarks"), est.model.output("world")
        heatmap = est.model.output("heatmap")
        for r in (rect, replace(rect, rotation=float(rng.uniform(-4, 4)))):
            assert_same_bits(
                decode_landmarks(raw, r, padding, heatmap),
                decode_landmarks_numpy(raw, r, padding, heatmap),
            )
            assert_same_bits(decode_world(world, r), decode_world_numpy(world, r))
        decoded += 1
    assert decoded >= 25


def alignment_rect_numpy(start, end, width, height):
    """Reference: MediaPipe's AlignmentPointsRects in numpy float32 scalars."""
    from edge.pose.roi import TARGET_ANGLE, Rect, normalize_radians

    F = np.float32
    w, h = F(width), F(height)
    x0, y0 = F(F(start[0]) * w), F(F(start[1]) * h)
    x1, y1 = F(F(end[0]) * w), F(F(end[1]) * h)
    dx, dy = F(x1 - x0), F(y1 - y0)
    box = F(F(np.sqrt(F(F(dx * dx) + F(dy * dy)))) * F(2.0))
    rotation = normalize_radians(F(TARGET_ANGLE - F(math.atan2(float(-dy), float(dx)))))
    return Rect(float(F(x0 / w)), float(F(y0 / h)), float(F(box / w)), float(F(box / h)), rotation)


def test_alignment_rect_matches_numpy():
    from edge.pose.roi import alignment_rect

    rng = np.random.default_rng(6)
    points = rng.uniform(-0.5, 1.5, (5000, 4))
    points[:50, 2:] = points[:50, :2]  # start == end: zero length, atan2(0, 0)
    points[50:100, 2] = points[50:100, 0]  # vertical
    points[100:150, 3] = points[100:150, 1]  # horizontal, both directions
    sizes = [(640, 480), (1280, 720), (257, 1023), (1, 1)]
    for i, p in enumerate(points):
        for dtype in (np.float32, np.float64):
            start, end = p[:2].astype(dtype), p[2:].astype(dtype)
            w, h = sizes[i % len(sizes)]
            new = astuple(alignment_rect(start, end, w, h))
            ref = astuple(alignment_rect_numpy(start, end, w, h))
            assert [float(v).hex() for v in new] == [float(v).hex() for v in ref]
