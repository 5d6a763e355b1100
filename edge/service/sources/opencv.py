"""OpenCV ``VideoCapture`` sources: V4L2 devices, RTSP/HTTP streams, video files."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2

from .. import images
from ..images import ImageError
from .base import Frame, Source, SourceError, redact

log = logging.getLogger(__name__)


def ended_early(read: int, promised: float) -> bool:
    """Whether a file gave fewer frames than its header promised (a damaged or cut-short file).
    Some containers only estimate the count (from the duration), hence 1 % of slack."""
    return promised > 0 and promised - read > max(1.0, promised * 0.01)


def oversized(cap: cv2.VideoCapture) -> str | None:
    """Why the video's frames are too large to decode, or None. Checked after opening, before
    the first frame is decoded (opening reads the container's header only): FFmpeg accepts frames
    of up to about 268 Mpx, and one 16000 x 16000 frame takes over a gigabyte once decoded and
    converted. The limit is the one for still images."""
    width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
    height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
    try:
        return images.oversized("frames of", width, height)
    except ImageError as exc:  # a bad limit in the environment
        return str(exc)


class VideoCaptureSource(Source):
    def __init__(
        self,
        target: str | int,
        kind: str,
        width: int = 0,
        height: int = 0,
        fps: float = 0.0,
        loop: bool = False,
        realtime: bool = False,
    ):
        if kind not in ("device", "stream", "file"):
            raise ValueError(kind)
        self.target, self.kind = target, kind
        self.width, self.height, self.fps = width, height, fps
        self.loop, self.realtime = loop, realtime
        self.live = kind != "file" or realtime
        self.may_appear_later = kind != "file"  # a camera or stream, not a file
        self.description = f"{kind} {redact(str(target))}"  # no camera password in logs
        self.cap: cv2.VideoCapture | None = None
        self.index = 0
        self.file_fps = 0.0
        self._t0 = 0.0
        self._pass_start = 0  # the index of the first frame of this pass through a file
        self._promised = 0.0  # frames in the file, by its header
        self._told_short = False

    @property
    def recoverable(self) -> bool:
        return self.live or self.loop

    def open(self) -> None:
        self.close()
        if self.kind == "file" and not Path(str(self.target)).is_file():
            raise SourceError(f"video file {self.target} does not exist")
        if self.kind == "device":
            cap = cv2.VideoCapture(self.target, cv2.CAP_V4L2)
            if cap.isOpened():
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
                cap.set(cv2.CAP_PROP_FPS, self.fps)
                cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a backlog
        elif self.kind == "stream":
            cap = cv2.VideoCapture(
                str(self.target),
                cv2.CAP_FFMPEG,
                [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000],
            )
        else:
            cap = cv2.VideoCapture(str(self.target))
        if not cap.isOpened():
            cap.release()
            hint = {
                "device": "is the camera plugged in, and is this user in group 'video'?",
                "stream": "is the stream URL reachable from this machine?",
                "file": "is it a video format OpenCV's FFmpeg can decode?",
            }[self.kind]
            raise SourceError(f"cannot open {self.description}: {hint}")
        problem = oversized(cap)
        if problem:
            cap.release()
            raise SourceError(f"{self.description}: {problem}")
        self.cap = cap
        self.file_fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        self._pass_start = self.index
        self._promised = cap.get(cv2.CAP_PROP_FRAME_COUNT) if self.kind == "file" else 0.0
        self._t0 = time.monotonic() - self.index / self.file_fps  # pace on from the current frame
        log.info("opened %s", self.description)

    def read(self) -> Frame | None:
        if self.cap is None:
            self.open()
        ok, image = self.cap.read()
        if not ok and self.kind == "file":
            self._check_complete()
        if not ok and self.kind == "file" and self.loop and self.index > 0:
            self.open()  # reopen rather than seek: a file removed meanwhile is noticed
            ok, image = self.cap.read()
        if not ok:
            if self.kind == "file":
                return None  # the end of the file
            raise SourceError(f"{self.description} stopped delivering frames")
        if self.kind == "file" and self.realtime:
            self._pace()
        mono = time.monotonic_ns()
        pts = self.index * 1000.0 / self.file_fps if self.kind == "file" else mono / 1e6
        frame = Frame(image, self.index, time.time(), mono, pts)
        self.index += 1
        return frame

    def _pace(self) -> None:
        """Wait until the frame just decoded is due at the file's own frame rate (``realtime``)."""
        delay = self._t0 + self.index / self.file_fps - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def _check_complete(self) -> None:
        """Warn (once) when the file ended before the frames its header promised."""
        read = self.index - self._pass_start
        if not self._told_short and ended_early(read, self._promised):
            self._told_short = True
            log.warning(
                "%s ended after %d of the %d frames its header promised: the rest is damaged "
                "or missing",
                self.description, read, self._promised,
            )  # fmt: skip

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None
