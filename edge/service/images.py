"""Still images read safely: the size is taken from the file's header and checked against a
pixel limit before anything is decoded.

A PNG of under a megabyte can declare 30000 x 30000 pixels and take gigabytes to decode (OpenCV's
own check, ``OPENCV_IO_MAX_IMAGE_PIXELS``, allows 2^30 pixels and is read once, when cv2 is
imported, so it cannot be set from here). The headers of the formats read here are a few fixed
fields, so a small reader does it; Pillow would too, but would be a dependency for this alone.
Only these formats are decoded: an image in any other format OpenCV knows (JPEG 2000, OpenEXR,
...) could declare any size, so it is refused rather than decoded blind.

The limit is ``DEFAULT_MAX_PIXELS`` (8192 x 8192, about 200 MB decoded), or the value of the
environment variable ``BLAZEPOSE_EDGE_MAX_IMAGE_PIXELS``. A JPEG whose data end before its end
marker (a truncated file) is decoded (the missing part is grey) and reported.
"""

from __future__ import annotations

import logging
import os
import re
import struct
from pathlib import Path

import cv2
import numpy as np

from .logs import native_stderr_to_log

ENV_MAX_PIXELS = "BLAZEPOSE_EDGE_MAX_IMAGE_PIXELS"
DEFAULT_MAX_PIXELS = 8192 * 8192
FORMATS = "JPEG, PNG, WebP, BMP, TIFF, GIF, PNM"
_HEAD_BYTES = 64 * 1024
_JPEG_SCAN_LIMIT = 16 * 2**20  # header segments beyond this: not a JPEG worth reading
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_NO_LENGTH = {0x01, *range(0xD0, 0xD9)}  # TEM, RSTn, SOI


class ImageError(OSError):
    """The file is refused or cannot be read as an image; the message says why."""


def max_pixels() -> int:
    raw = os.environ.get(ENV_MAX_PIXELS, "").strip().replace("_", "")
    if not raw:
        return DEFAULT_MAX_PIXELS
    if not raw.isdigit() or int(raw) <= 0:
        raise ImageError(
            f"{ENV_MAX_PIXELS}={os.environ[ENV_MAX_PIXELS]!r}: give the largest image to read as "
            f"a whole number of pixels (default {DEFAULT_MAX_PIXELS})"
        )
    return int(raw)


def _jpeg_markers(fh, offset: int):
    """The markers after SOI as (marker, offset of its length field), read the way libjpeg does:
    fill bytes skipped, stray bytes before a marker skipped."""
    while offset < _JPEG_SCAN_LIMIT:
        fh.seek(offset)
        chunk = fh.read(4096)
        start = chunk.find(b"\xff")
        if start < 0:
            if len(chunk) < 4096:
                return
            offset += len(chunk)
            continue
        i = start
        while i < len(chunk) and chunk[i] == 0xFF:
            i += 1
        if i >= len(chunk):
            if len(chunk) < 4096:
                return
            offset += i - 1  # read the 0xFF run's end again
            continue
        marker = chunk[i]
        offset += i + 1
        if marker == 0x00:  # a stuffed 0xFF: not a marker
            continue
        yield marker, offset
        if marker in _JPEG_NO_LENGTH:
            continue
        fh.seek(offset)
        raw = fh.read(2)
        if len(raw) < 2:
            return
        (length,) = struct.unpack(">H", raw)
        if length < 2:
            return
        offset += length


def _jpeg_size(fh) -> tuple[int, int, int | None] | None:
    """(width, height, offset of the first scan or None if there is none) from the frame header;
    None without a frame header."""
    size = None
    for marker, offset in _jpeg_markers(fh, 2):
        if marker in (0xD9, 0xDA):  # the end, or a scan
            if size is None or marker == 0xD9:
                return None
            return (*size, offset)
        if marker in _JPEG_SOF and size is None:
            fh.seek(offset)
            raw = fh.read(7)
            if len(raw) < 7:
                return None
            height, width = struct.unpack(">HH", raw[3:7])
            if not width or not height:  # a height set later (DNL): libjpeg cannot read those
                return None
            size = (width, height)
    return (*size, None) if size else None


def _tiff_size(fh, head: bytes) -> tuple[int, int] | None:
    order = "<" if head[:2] == b"II" else ">"
    (version,) = struct.unpack(order + "H", head[2:4])
    if version == 42:
        (ifd,) = struct.unpack(order + "I", head[4:8])
        count_fmt, entry_fmt, entry_size = "H", "HHI4s", 12
    elif version == 43:  # BigTIFF
        (ifd,) = struct.unpack(order + "Q", head[8:16])
        count_fmt, entry_fmt, entry_size = "Q", "HHQ8s", 20
    else:
        return None
    fh.seek(ifd)
    raw = fh.read(struct.calcsize(order + count_fmt))
    if len(raw) < struct.calcsize(order + count_fmt):
        return None
    (count,) = struct.unpack(order + count_fmt, raw)
    entries = fh.read(min(count, 4096) * entry_size)
    size: dict[int, int] = {}
    for k in range(len(entries) // entry_size):
        tag, kind, _n, value = struct.unpack_from(order + entry_fmt, entries, k * entry_size)
        if tag in (256, 257) and kind in (3, 4, 16):  # SHORT, LONG, LONG8
            fmt = {3: "H", 4: "I", 16: "Q"}[kind]
            size[tag] = struct.unpack_from(order + fmt, value)[0]
    if 256 in size and 257 in size:
        return size[256], size[257]
    return None


def _pnm_size(head: bytes) -> tuple[int, int] | None:
    if head[:2] == b"P7":  # PAM: WIDTH and HEIGHT lines
        fields = dict(re.findall(rb"^(WIDTH|HEIGHT)\s+(\d+)", head, re.MULTILINE))
        if b"WIDTH" in fields and b"HEIGHT" in fields:
            return int(fields[b"WIDTH"]), int(fields[b"HEIGHT"])
        return None
    body = re.sub(rb"#[^\n]*", b" ", head[2:])  # comments
    numbers = re.match(rb"\s+(\d+)\s+(\d+)", body)
    return (int(numbers[1]), int(numbers[2])) if numbers else None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    data = head[20:]
    if chunk == b"VP8 " and len(data) >= 10 and data[3:6] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[6:10])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 5 and data[0] == 0x2F:
        (bits,) = struct.unpack("<I", data[1:5])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 10:
        width = int.from_bytes(data[4:7], "little") + 1
        height = int.from_bytes(data[7:10], "little") + 1
        return width, height
    return None


def header_size(path: Path) -> tuple[str, int, int] | None:
    """(format, width, height) from the header, without decoding; None for a file that is not
    one of ``FORMATS`` (or whose header is cut short)."""
    with open(path, "rb") as fh:
        head = fh.read(_HEAD_BYTES)
        try:
            if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
                return ("PNG", *struct.unpack(">II", head[16:24]))
            if head.startswith(b"\xff\xd8\xff"):
                found = _jpeg_size(fh)
                return ("JPEG", found[0], found[1]) if found else None
            if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
                found = _webp_size(head)
                return ("WebP", *found) if found else None
            if head[:2] == b"BM" and len(head) >= 26:
                (dib,) = struct.unpack("<I", head[14:18])
                if dib == 12:  # OS/2 header: 16-bit sizes
                    return ("BMP", *struct.unpack("<HH", head[18:22]))
                width, height = struct.unpack("<ii", head[18:26])
                return "BMP", abs(width), abs(height)  # a negative height is a top-down image
            if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
                found = _tiff_size(fh, head)
                return ("TIFF", *found) if found else None
            if head[:6] in (b"GIF87a", b"GIF89a"):
                return ("GIF", *struct.unpack("<HH", head[6:10]))
            if re.match(rb"P[1-7]\s|P[Ff]\s", head[:3]):
                found = _pnm_size(head)
                return ("PNM", *found) if found else None
        except struct.error:  # the header is cut short
            return None
    return None


def jpeg_truncated(path: Path) -> bool:
    """Whether a JPEG's data end before its end marker (EOI): a file cut short."""
    with open(path, "rb") as fh:
        if not fh.read(3).startswith(b"\xff\xd8\xff"):
            return False
        found = _jpeg_size(fh)
        if found is None:
            return False
        scan = found[2]
        if scan is None:  # cut short before any image data
            return True
        # in entropy-coded data a 0xFF is followed by 0x00 or a restart marker, so FF D9 after
        # the first scan can only be the end marker; searched from the end back (data may follow
        # it: padding, a phone's motion photo)
        end = fh.seek(0, os.SEEK_END)
        block = 256 * 1024
        while end > scan:
            start = max(scan, end - block)
            fh.seek(start)
            if b"\xff\xd9" in fh.read(end - start + 1):  # one byte over: a marker across blocks
                return False
            end = start
        return True


def oversized(what: str, width: int, height: int) -> str | None:
    """Why an image (or a video's frames) of ``width`` x ``height`` is refused, or None;
    ``what`` starts the sentence ("PNG of", "frames of")."""
    limit = max_pixels()
    if width * height <= limit:
        return None
    return (
        f"{what} {width} x {height} pixels ({width * height / 1e6:.0f} Mpx) refused without "
        f"decoding: more than the limit of {limit / 1e6:.1f} Mpx (set {ENV_MAX_PIXELS} to allow "
        "larger ones)"
    )


def read_image(path: Path) -> tuple[np.ndarray, str | None]:
    """The image as BGR, and a warning (a truncated file) or None. Raises ImageError for a file
    that is refused (too large, a format not read here) or cannot be decoded."""
    found = header_size(path)
    if found is None:
        raise ImageError(f"not a readable image (the formats read are {FORMATS})")
    kind, width, height = found
    problem = oversized(f"{kind} of", width, height)
    if problem:
        raise ImageError(problem)
    with native_stderr_to_log(logging.DEBUG):  # libjpeg's "Premature end of JPEG file" and
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # libpng's errors: said below, once
    if image is None:
        raise ImageError("not a readable image")
    warning = None
    if kind == "JPEG" and jpeg_truncated(path):
        warning = (
            "the file is cut short (no JPEG end marker): the missing part of the image is grey"
        )
    return image, warning
