"""What every frame source gives the pipeline."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import numpy as np

_SECRET_PARAM = re.compile(
    r"(?i)([?&;]?[^&;=]*(?:pass|pwd|token|secret|key|auth|sig)[^&;=]*=)[^&;]*"
)


class SourceError(RuntimeError):
    """The source cannot be opened or has failed; the message says what to do.

    ``permanent``: waiting cannot mend it (a package that is not installed), so it is never
    retried, whatever the source declares."""

    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


@dataclass
class Frame:
    image: np.ndarray  # (H, W, 3) uint8, BGR
    index: int  # 0-based position in the source (gaps mean frames were dropped)
    ts: float  # capture time, epoch seconds
    mono_ns: int  # capture time on CLOCK_MONOTONIC, for latency
    pts_ms: float = 0.0  # presentation time (ms) that drives smoothing: media time for files
    release: Callable[[], None] | None = None  # hands a zero-copy buffer back to its owner

    def done(self) -> None:
        if self.release is not None:
            release, self.release = self.release, None
            release()


def redact(uri: str) -> str:
    """``uri`` as it may appear in logs and in the retained status: a camera URL's password
    (``rtsp://admin:***@cam/...``; a user name alone may be a token: ``***@cam``) and the values
    of query parameters that look like credentials (``?token=***``) masked."""
    if "://" not in uri:
        return uri
    try:
        parts = urlsplit(uri)
    except ValueError:  # not parseable: keep only the scheme
        return uri.split("://", 1)[0] + "://***"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:***@{host}" if has_password else f"***@{host}"
    query = _SECRET_PARAM.sub(r"\1***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class Source:
    """A stream of frames. ``read()`` blocks for the next frame and returns None at the end.

    ``live`` sources (cameras, network streams, files paced in real time) produce frames whether
    or not the pipeline keeps up, so the daemon keeps only the newest; other sources (files,
    folders) wait for the pipeline, and every frame is processed.
    """

    live: bool = True
    description: str = ""
    # Whether a source that cannot be opened at start may yet appear by waiting (a camera that is
    # slower to boot than the board, a stream not up yet): the daemon then starts degraded and
    # reopens it with backoff. A file or folder that is not there is a mistake to report at once.
    may_appear_later: bool = False

    @property
    def recoverable(self) -> bool:
        """Whether a failure is retried (closed, reopened with backoff) rather than ending the
        stream: cameras and streams, and sources that loop (a file or folder that disappears
        may come back)."""
        return self.live

    def open(self) -> None:
        """Open (or reopen) the device; raises SourceError."""

    def read(self) -> Frame | None:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device. Safe to call more than once."""
