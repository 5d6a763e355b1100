"""The capture thread: reads a source and hands frames to the pipeline.

Live sources: only the newest frame is kept; a frame replaced before the pipeline took it is
dropped, counted and its buffer released, so there is never a backlog and latency stays at one
frame. Other sources (files, folders): the thread waits for the pipeline, nothing is dropped.

A live source that fails (or a looping file or folder) is closed and reopened with exponential
backoff (0.5 s doubling to 10 s); ``on_status`` hears about the loss and the recovery. Any other
source that fails ends the stream with ``error`` set.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from .base import Frame, Source, SourceError

log = logging.getLogger(__name__)
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 10.0
_END = object()


class EndOfStream(Exception):
    """The source has no more frames (end of a file or folder), or failed for good."""


class FrameGrabber:
    def __init__(self, source: Source, on_status: Callable[[str | None], None] | None = None):
        self.source = source
        self.on_status = on_status or (lambda reason: None)
        self.live = source.live
        self.captured = 0
        self.dropped = 0
        self.errors = 0
        self.reopens = 0
        self.error: str | None = None  # why a non-live source ended early
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._ended = False
        self._queue: queue.Queue = queue.Queue(maxsize=2)
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        while True:  # unblock a producer waiting on a full queue
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, Frame):
                item.done()
        self._thread.join(timeout)
        with self._cond:
            if self._latest is not None:
                self._latest.done()
                self._latest = None
        if self._thread.is_alive():  # still inside a blocking read: releasing the device under
            # it crashes OpenCV; the thread closes the source itself when the read returns
            log.warning("%s did not return from a read within %.0f s", self.source.description,
                        timeout)  # fmt: skip
            return
        self.source.close()

    def get(self, timeout: float) -> Frame | None:
        """The next frame to process, None after ``timeout`` seconds without one.

        Raises EndOfStream when the source is finished."""
        if not self.live:
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                return None
            if item is _END:
                raise EndOfStream(self.error or "end of source")
            return item
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._latest is None and not self._ended:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if self._latest is None:
                raise EndOfStream(self.error or "end of source")
            frame, self._latest = self._latest, None
            return frame

    # --- capture thread ---------------------------------------------------------------------------

    def _put(self, item) -> bool:
        """Hand ``item`` to the pipeline (non-live sources), waiting for room; False if stopped."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _deliver(self, frame: Frame) -> None:
        self.captured += 1
        if not self.live:
            if not self._put(frame):
                frame.done()
            return
        with self._cond:
            if self._latest is not None:
                self.dropped += 1
                self._latest.done()
            self._latest = frame
            self._cond.notify()

    def _finish(self) -> None:
        if not self.live:
            self._put(_END)
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def _run(self) -> None:
        backoff = BACKOFF_MIN_S
        lost = False
        try:
            while not self._stop.is_set():
                try:
                    frame = self.source.read()
                except SourceError as exc:
                    self.errors += 1
                    if not self.source.recoverable or exc.permanent:
                        self.error = str(exc)
                        log.error("%s", exc)
                        return
                    if not lost:
                        lost = True
                        log.warning("camera lost: %s; reopening", exc)
                        self.on_status(f"camera lost: {exc}")
                    self.source.close()
                    if self._stop.wait(backoff):
                        return
                    backoff = min(backoff * 2, BACKOFF_MAX_S)
                    try:
                        self.source.open()
                        self.reopens += 1
                    except SourceError as reopen_exc:
                        log.info("reopen failed: %s (next try in %.1f s)", reopen_exc, backoff)
                    continue
                if frame is None:
                    return
                if lost:
                    lost = False
                    backoff = BACKOFF_MIN_S
                    log.info("%s is back", self.source.description)
                    self.on_status(None)
                self._deliver(frame)
        except Exception as exc:  # a bug in a source must not hang the daemon silently
            self.error = f"capture failed: {exc!r}"
            log.exception("capture thread failed")
        finally:
            if self._stop.is_set():  # stop() may have left the source to this thread
                self.source.close()
            self._finish()
