"""Raspberry Pi camera through picamera2 (apt ``python3-picamera2``; imported only when used).

The main stream is configured as ``RGB888``, which picamera2 delivers as B, G, R bytes: OpenCV's
order, and the pipeline's input, so no colour conversion is made. Frames are not copied: each
``Frame`` holds its libcamera request and gives it back (``Frame.done()``) once the pipeline has
used it, or when a newer frame replaces it unprocessed. Capture times come from the sensor
timestamp (CLOCK_MONOTONIC, first pixel read out).
"""

from __future__ import annotations

import logging
import time

from .base import Frame, Source, SourceError

log = logging.getLogger(__name__)
CAPTURE_TIMEOUT_S = 2.0


def available() -> bool:
    try:
        import picamera2  # noqa: F401
    except Exception:
        return False
    return True


class PicameraSource(Source):
    live = True
    may_appear_later = True  # libcamera finds no camera until the sensor is up

    def __init__(self, camera: int = 0, width: int = 640, height: int = 480, fps: float = 30.0):
        self.camera, self.width, self.height, self.fps = camera, width, height, fps
        self.description = f"Pi camera {camera}"
        self.picam = None
        self.index = 0

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise SourceError(
                "the Pi camera needs picamera2, which comes from Raspberry Pi OS "
                "(sudo apt install python3-picamera2; the venv must see system packages, "
                "as ./install.sh sets up); on other machines use --source /dev/video0, "
                "a video file or an rtsp:// URL",
                permanent=True,
            ) from exc
        self.close()
        try:
            picam = Picamera2(self.camera)
            frame_us = int(round(1e6 / self.fps))
            config = picam.create_video_configuration(
                main={"size": (self.width, self.height), "format": "RGB888"},
                controls={"FrameDurationLimits": (frame_us, frame_us)},
                buffer_count=4,
                queue=False,  # never hand out a frame older than the next one
            )
            picam.configure(config)
            picam.start()
        except Exception as exc:
            raise SourceError(f"cannot start {self.description}: {exc}") from exc
        self.picam = picam
        log.info(
            "opened %s at %dx%d, %.1f fps", self.description, self.width, self.height, self.fps
        )

    def read(self) -> Frame | None:
        if self.picam is None:
            self.open()
        try:
            request = self.picam.capture_request(wait=CAPTURE_TIMEOUT_S)
        except Exception as exc:
            raise SourceError(f"{self.description} stopped delivering frames: {exc}") from exc
        from picamera2 import MappedArray

        mapped = MappedArray(request, "main")
        try:
            image = mapped.__enter__().array  # a view of the camera buffer, valid until release
            metadata = request.get_metadata()
        except Exception:
            request.release()
            raise

        def release() -> None:
            try:
                mapped.__exit__(None, None, None)
            finally:
                request.release()

        sensor_ns = int(metadata.get("SensorTimestamp", time.monotonic_ns()))
        wall = time.time() - (time.monotonic_ns() - sensor_ns) / 1e9
        frame = Frame(image, self.index, wall, sensor_ns, sensor_ns / 1e6, release=release)
        self.index += 1
        return frame

    def close(self) -> None:
        if self.picam is not None:
            try:
                self.picam.stop()
                self.picam.close()
            finally:
                self.picam = None
