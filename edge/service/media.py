"""Media: the demo clip that ships in the package, and the test media that never do.

- ``demo_clip()``: a short Apache-2.0 clip of one person raising their arms (576x576, 120 frames
  at 30 FPS; credited in NOTICE). ``--source demo``, ``infer`` with no path and ``bench`` with no
  ``--source`` use it, so a fresh install can be tried without a camera.
- The test media (real photos and videos of people, several under non-commercial licences) are
  found at ``$BLAZEPOSE_EDGE_MEDIA`` or ``../shared/media`` beside the project checkout, and
  nowhere else: behaviour never depends on where a checkout was cloned from. The tests, the
  benchmarks and ``models/quantize.py`` read them; the service never does.

``python -m edge.service.media`` prints the test media folder, or exits 1 saying where it looked.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENV = "BLAZEPOSE_EDGE_MEDIA"
PROJECT = Path(__file__).resolve().parents[2]  # the checkout (edge/service/media.py)
DEMO_CLIP = Path(__file__).resolve().parent / "demo" / "arms_up.mp4"


def demo_clip() -> Path:
    """The clip shipped in the package (see the module's docstring)."""
    return DEMO_CLIP


def candidates() -> list[Path]:
    if os.environ.get(ENV):
        return [Path(os.environ[ENV])]  # given explicitly: no guessing
    return [PROJECT.parent / "shared" / "media"]


def has_media(path: Path) -> bool:
    return (path / "images").is_dir() or (path / "video").is_dir()


def media_dir() -> Path:
    """The test media folder: the first candidate (it is named in messages when missing)."""
    return candidates()[0]


def main() -> int:
    path = media_dir()
    if has_media(path):
        print(path)
        return 0
    print(f"test media not found at {path}; set {ENV} to the media folder", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
