"""Frame sources, chosen by the ``--source`` value:

- ``picam`` / ``picam:N``: Raspberry Pi camera N through picamera2
- ``/dev/videoN`` or ``N``: a V4L2 device through OpenCV
- ``rtsp://``, ``rtsps://``, ``http://``, ``https://``: a network stream through OpenCV/FFmpeg
- a video file (``loop``, ``realtime`` apply) or a folder of images
- ``demo``: the clip that ships in the package (``edge.service.media``), looping, for trying the
  daemon without a camera
- empty: the Pi camera where picamera2 is installed, else ``/dev/video0``
"""

from __future__ import annotations

import os
from pathlib import Path

from ..config import SourceConfig
from ..media import demo_clip
from .base import Frame, Source, SourceError, redact
from .folder import FolderSource
from .grabber import FrameGrabber
from .opencv import VideoCaptureSource
from .picam import PicameraSource, available

__all__ = ["Frame", "FrameGrabber", "Source", "SourceError", "default_source", "open_source"]

STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")


def default_source() -> str:
    if available():
        return "picam"
    if Path("/dev/video0").exists():
        return "/dev/video0"
    raise SourceError(
        "no camera found: picamera2 is not installed and /dev/video0 does not exist. "
        "Give a source, e.g. --source /path/to/video.mp4 (add --loop to repeat it), "
        "--source rtsp://camera/stream, or --source /dev/video1"
    )


def open_source(cfg: SourceConfig) -> Source:
    """The source for ``cfg.uri`` (not opened yet). Raises SourceError for an unusable value."""
    uri = cfg.uri or default_source()
    if uri == "picam" or uri.startswith("picam:"):
        index = uri.partition(":")[2] or "0"
        if not index.isdigit():
            raise SourceError(
                f"source {uri!r}: the camera number after 'picam:' must be an integer"
            )
        return PicameraSource(int(index), cfg.width, cfg.height, cfg.fps)
    if uri.isdigit():
        return VideoCaptureSource(int(uri), "device", cfg.width, cfg.height, cfg.fps)
    if uri.startswith("/dev/"):
        return VideoCaptureSource(uri, "device", cfg.width, cfg.height, cfg.fps)
    if uri == "demo":  # always loops: like a camera, it runs until stopped (or --max-frames)
        return VideoCaptureSource(str(demo_clip()), "file", loop=True, realtime=cfg.realtime)
    if uri.lower().startswith(STREAM_SCHEMES):
        return VideoCaptureSource(uri, "stream", cfg.width, cfg.height, cfg.fps)
    path = Path(os.path.expanduser(uri))
    if path.is_dir():
        return FolderSource(str(path), loop=cfg.loop)
    if path.is_file():
        return VideoCaptureSource(str(path), "file", loop=cfg.loop, realtime=cfg.realtime)
    raise SourceError(
        f"source {redact(uri)!r} is not a camera (picam, picam:N, /dev/videoN, N), a stream URL, "
        "an existing video file or a folder of images"
    )
