"""Still images: sizes from headers, the pixel limit checked before decoding (a decompression
bomb is refused, not decoded), truncated files and damaged videos reported."""

from __future__ import annotations

import logging
import shutil
import struct
import zlib

import cv2
import numpy as np
import pytest

from edge.service import images
from edge.service.cli import main
from edge.service.sources.folder import FolderSource
from edge.service.sources.opencv import VideoCaptureSource


def png_header(width: int, height: int) -> bytes:
    """The start of a PNG declaring ``width`` x ``height``: enough for OpenCV to try it."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    row = zlib.compress(b"\x00" + b"\x80" * 3 * width)
    idat = (
        struct.pack(">I", len(row)) + b"IDAT" + row + struct.pack(">I", zlib.crc32(b"IDAT" + row))
    )
    return b"\x89PNG\r\n\x1a\n" + chunk + idat


def jpeg_header(width: int, height: int) -> bytes:
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + sof


@pytest.mark.parametrize(
    ("suffix", "params"),
    [(".png", []), (".jpg", []), (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]), (".bmp", []),
     (".webp", []), (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]), (".tiff", []), (".ppm", []),
     (".pgm", [])],
)  # fmt: skip
def test_header_size_is_the_decoded_size(tmp_path, suffix, params):
    image = np.random.default_rng(1).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    path = tmp_path / f"x{suffix}"
    assert cv2.imwrite(str(path), image[:, :, 0] if suffix == ".pgm" else image, params)
    assert images.header_size(path)[1:] == (53, 37)
    decoded, warning = images.read_image(path)
    assert decoded.shape == (37, 53, 3) and warning is None


def test_header_size_of_the_test_photos(media):
    for path in sorted((media / "images").iterdir()):
        decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
        assert images.header_size(path)[1:] == (decoded.shape[1], decoded.shape[0]), path
        assert not images.jpeg_truncated(path), path


@pytest.mark.parametrize("header", [png_header, jpeg_header])
def test_a_decompression_bomb_is_refused_without_decoding(tmp_path, monkeypatch, header):
    path = tmp_path / "bomb.img"
    path.write_bytes(header(30000, 30000))

    def never(*args):
        raise AssertionError("decoded")

    monkeypatch.setattr(cv2, "imread", never)
    with pytest.raises(images.ImageError, match=r"30000 x 30000 pixels \(900 Mpx\) refused"):
        images.read_image(path)


def test_the_limit_can_be_set(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    cv2.imwrite(str(path), np.zeros((1200, 1000, 3), np.uint8))
    assert images.read_image(path)[0].shape == (1200, 1000, 3)  # under the default
    monkeypatch.setenv(images.ENV_MAX_PIXELS, "1_000_000")
    with pytest.raises(images.ImageError, match="limit of 1.0 Mpx"):
        images.read_image(path)
    monkeypatch.setenv(images.ENV_MAX_PIXELS, "lots")
    with pytest.raises(images.ImageError, match=images.ENV_MAX_PIXELS):
        images.read_image(path)


def test_other_formats_are_not_decoded_blind(tmp_path, monkeypatch):
    path = tmp_path / "x.png"  # a JPEG 2000 (say) under an image name: its size is not known
    path.write_bytes(b"\x00\x00\x00\x0cjP  \r\n\x87\n" + bytes(100))
    monkeypatch.setattr(cv2, "imread", lambda *a: pytest.fail("decoded"))
    with pytest.raises(images.ImageError, match="not a readable image"):
        images.read_image(path)


def test_infer_refuses_a_bomb_and_goes_on(media, models_ready, tmp_path, capsys):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(30000, 30000))
    good = tmp_path / "good.jpg"
    shutil.copy(media / "images" / "yoga.jpg", good)
    assert main(["infer", str(bomb), str(good)]) == 1
    captured = capsys.readouterr()
    assert (
        "bomb.png: PNG of 30000 x 30000 pixels (900 Mpx) refused without decoding" in captured.err
    )
    assert images.ENV_MAX_PIXELS in captured.err
    assert "good.jpg: 1/1 image with a pose" in captured.out


def test_folder_source_skips_a_bomb(tmp_path, caplog):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((40, 30, 3), np.uint8))
    (tmp_path / "b.png").write_bytes(png_header(30000, 30000))
    source = FolderSource(str(tmp_path))
    source.open()
    frames = [source.read(), source.read()]
    assert frames[0].image.shape == (40, 30, 3) and frames[1] is None
    assert source.unreadable == 1
    assert any("b.png" in r.getMessage() and "refused" in r.getMessage() for r in caplog.records)


def cut_jpeg(media, tmp_path):
    data = (media / "images" / "yoga.jpg").read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


def test_a_truncated_jpeg_is_reported(media, models_ready, tmp_path, capsys, caplog):
    path = cut_jpeg(media, tmp_path)
    padded = tmp_path / "padded.jpg"  # data after the end marker are fine
    padded.write_bytes((media / "images" / "yoga.jpg").read_bytes() + bytes(5000))
    assert images.jpeg_truncated(path) and not images.jpeg_truncated(padded)
    source = FolderSource(str(tmp_path))
    source.open()
    assert source.read() is not None
    assert any(
        "cut.jpg" in r.getMessage() and "cut short" in r.getMessage() for r in caplog.records
    )
    assert main(["infer", str(path)]) == 0
    err = capsys.readouterr().err
    assert "cut.jpg: warning: the file is cut short" in err


def test_decoders_own_lines_stay_off_the_terminal(media, models_ready, tmp_path, capfd):
    """libjpeg prints "Premature end of JPEG file" itself; the warning above says it once."""
    path = cut_jpeg(media, tmp_path)
    assert main(["infer", str(path)]) == 0
    err = capfd.readouterr().err
    assert "cut.jpg: warning: the file is cut short" in err
    assert "Premature end of JPEG" not in err


def damaged_video(media, tmp_path):
    """street.avi (205 frames) with its second half overwritten by noise."""
    data = (media / "video" / "street.avi").read_bytes()
    half = len(data) // 2
    noise = np.random.default_rng(7).integers(0, 256, len(data) - half, dtype=np.uint8)
    path = tmp_path / "damaged.avi"
    path.write_bytes(data[:half] + noise.tobytes())
    return path


def test_infer_says_how_many_frames_of_a_damaged_video_were_read(media, models_ready, tmp_path,
                                                                 capsys):  # fmt: skip
    path = damaged_video(media, tmp_path)
    assert main(["infer", str(path), str(media / "video" / "street.avi")]) == 0
    err = capsys.readouterr().err
    assert "damaged.avi: warning: 108 of the 205 frames its header promised were read" in err
    assert "street.avi: warning" not in err  # a whole file: no warning


def test_file_source_warns_once_when_a_video_ends_early(media, tmp_path, caplog):
    path = damaged_video(media, tmp_path)
    source = VideoCaptureSource(str(path), "file", loop=True)
    source.open()
    with caplog.at_level(logging.WARNING):
        frames = [source.read() for _ in range(300)]  # past the end twice: looped
    source.close()
    assert all(f is not None for f in frames)
    warnings = [r.getMessage() for r in caplog.records if "ended after" in r.getMessage()]
    assert warnings == [f"file {path} ended after 108 of the 205 frames its header promised: "
                        "the rest is damaged or missing"]  # fmt: skip
    whole = VideoCaptureSource(str(media / "video" / "street.avi"), "file")
    whole.open()
    while whole.read() is not None:
        pass
    assert not [r for r in caplog.records if "street.avi ended" in r.getMessage()]
