"""Where the test media are (photos and videos of people; never committed, see the README).

One lookup for the package, the tests, the benchmarks and the build scripts:

1. ``$BLAZEPOSE_EDGE_MEDIA``;
2. ``shared/media`` beside the project (the workplace layout), or beside the current directory;
3. ``shared/media`` beside the checkout this one was cloned from, when its ``origin`` is a local
   path (a fresh clone in /tmp of a checkout that sits beside the media).

``python -m edge.media`` prints the folder, or exits 1 saying where it looked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ENV = "BLAZEPOSE_EDGE_MEDIA"
PROJECT = Path(__file__).resolve().parent.parent


def _origin_checkout() -> Path | None:
    """The local checkout the project was cloned from, if any."""
    try:
        url = subprocess.run(
            ["git", "-C", str(PROJECT), "config", "--get", "remote.origin.url"],
            capture_output=True, text=True, timeout=5, check=False,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    if not url or "://" in url or url.startswith("git@"):
        return None
    path = Path(url.removeprefix("file://"))
    return path if path.is_dir() else None


def candidates() -> list[Path]:
    if os.environ.get(ENV):
        return [Path(os.environ[ENV])]  # given explicitly: no guessing
    found = [PROJECT.parent / "shared" / "media", Path.cwd().parent / "shared" / "media"]
    origin = _origin_checkout()
    if origin is not None:
        found.append(origin.resolve().parent / "shared" / "media")
    return list(dict.fromkeys(found))


def _has_media(path: Path) -> bool:
    return (path / "images").is_dir() or (path / "video").is_dir()


def media_dir() -> Path:
    """The first candidate holding ``images/`` or ``video/``; else the first candidate (so that
    messages name where the media were expected)."""
    options = candidates()
    return next((path for path in options if _has_media(path)), options[0])


def demo_video() -> Path:
    """The clip behind ``--source demo`` and ``bench``'s default: street.avi, a person walking
    towards the camera among others (1280x720, 205 frames)."""
    return media_dir() / "video" / "street.avi"


def main() -> int:
    path = media_dir()
    if _has_media(path):
        print(path)
        return 0
    looked = ", ".join(str(p) for p in candidates())
    print(f"test media not found (looked in {looked}); set {ENV}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
