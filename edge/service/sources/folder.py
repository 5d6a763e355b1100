"""A folder of images, in name order, as a (non-live) frame source."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ..images import ImageError, read_image
from .base import Frame, Source, SourceError

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class FolderSource(Source):
    live = False

    def __init__(self, folder: str, loop: bool = False):
        self.folder = Path(folder)
        self.loop = loop
        self.description = f"folder {folder}"
        self.files: list[Path] = []
        self.position = 0
        self.index = 0
        self.unreadable = 0

    @property
    def recoverable(self) -> bool:
        return self.loop

    def open(self) -> None:
        if not self.folder.is_dir():
            raise SourceError(f"{self.folder} is not a folder")
        self.files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise SourceError(
                f"{self.folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
            )

    def read(self) -> Frame | None:
        if not self.files:
            self.open()
        failed = 0  # in a row: a whole pass of them means looping would spin for ever
        while True:
            if self.position >= len(self.files):
                if not self.loop:
                    return None
                self.position = 0
            if failed >= len(self.files):
                raise SourceError(
                    f"none of the {len(self.files)} images in {self.folder} is readable"
                )
            path = self.files[self.position]
            self.position += 1
            try:
                image, warning = read_image(path)  # the size checked before decoding
            except OSError as exc:  # ImageError: refused or unreadable; or gone meanwhile
                self.unreadable += 1
                failed += 1
                reason = exc if isinstance(exc, ImageError) else exc.strerror or exc
                log.warning("skipping image %s: %s", path, reason)
                continue
            if warning:
                log.warning("image %s: %s", path, warning)
            pts = self.index * 1000.0 / 30.0  # a folder plays as a 30 fps clip
            frame = Frame(image, self.index, time.time(), time.monotonic_ns(), pts)
            self.index += 1
            return frame
