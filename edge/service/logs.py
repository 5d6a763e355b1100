"""Logging for the commands: one format, and the native libraries' chatter kept out of sight.

TFLite prints ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` from C++ straight to
file descriptor 2 when an interpreter is built, and OpenCV prints ``[ WARN:...] VIDEOIO(V4L2)``
lines on every failed camera open (the daemon logs its own line per retry). Neither library lets
Python turn these off, so ``native_stderr_to_log`` catches descriptor 2 while interpreters are
built and passes what it caught to the log (INFO lines at debug level, anything else as a
warning), and OpenCV's own log level follows ours. ``daemon.log_level = "debug"`` shows them all.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator

log = logging.getLogger("edge.native")


def setup_logging(level: str) -> None:
    """The commands' log format (journald adds its own timestamps) at ``level``."""
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not os.environ.get("JOURNAL_STREAM"):
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=level.upper(), format=fmt, stream=sys.stderr, force=True)
    quiet_opencv(level)


def quiet_opencv(level: str) -> None:
    """OpenCV logs errors only, unless ``level`` is debug. Its setter moved between releases
    (``cv2.utils.logging.setLogLevel`` in 4.12+ and 5.x; ``cv2.setLogLevel`` in the 4.11 that
    Raspberry Pi OS Bookworm pins); without either, OpenCV keeps its own level.

    FFmpeg inside OpenCV prints its decoder errors (``[h264 @ 0x...] error while decoding MB``,
    a line per damaged frame) straight to stderr; OpenCV reads ``OPENCV_FFMPEG_LOGLEVEL`` when it
    first opens a video, and -8 (AV_LOG_QUIET) silences them. The sources and ``infer`` say
    themselves how many frames were read of how many the file promised."""
    if level != "debug":
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    import cv2

    value = 5 if level == "debug" else 2  # OpenCV's LOG_LEVEL_DEBUG, LOG_LEVEL_ERROR
    utils_logging = getattr(getattr(cv2, "utils", None), "logging", None)
    setter = getattr(utils_logging, "setLogLevel", None) or getattr(cv2, "setLogLevel", None)
    if setter is not None:
        setter(value)


@contextlib.contextmanager
def native_stderr_to_log(level: int = logging.WARNING) -> Iterator[None]:
    """Send what native code writes to file descriptor 2 meanwhile to the log instead, at
    ``level`` (TFLite's ``INFO:`` lines at debug). Python's own log lines keep going to the
    terminal (through a copy of the original descriptor)."""
    if log.isEnabledFor(logging.DEBUG):  # debug: show them as they come
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no descriptor 2 (a detached process): nothing to hide
        yield
        return
    terminal = open(saved, "w", buffering=1, closefd=False)  # noqa: SIM115 - closed below
    handlers = [
        (h, h.stream) for h in logging.getLogger().handlers
        if isinstance(h, logging.StreamHandler) and h.stream is sys.stderr
    ]  # fmt: skip
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        for handler, _ in handlers:
            handler.setStream(terminal)
        try:
            yield
        finally:
            for handler, stream in handlers:
                handler.setStream(stream)
            terminal.close()
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            text = caught.read().decode(errors="replace")
        for line in filter(None, (line.strip() for line in text.splitlines())):
            log.log(logging.DEBUG if line.startswith("INFO:") else level, "%s", line)
