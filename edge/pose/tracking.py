"""Detector-tracker policy for video mode: up to ``num_poses`` people, each on their own track.

Each track carries one person's ROI from one frame to the next: after each frame in which the
estimator found them, the next frame's ROI comes from this frame's two alignment landmarks
(33: body centre, 34: scale point), exactly as from a detection's keypoints 0 and 1. When the
estimator's pose flag drops below its threshold the track ends. Each track has its own id and its
own smoothing filters.

The detector runs when fewer than ``num_poses`` people are tracked: on every frame while nobody
is, on the frame a track ends, and otherwise every ``redetect_interval`` frames (frames, not
milliseconds: so that its cost, the detector's time over that many frames, is the same share of
the work at any frame rate and on any board). A detection whose
alignment points lie on a tracked person's (``alignment_distance``) is that person and is not
estimated again; a new one whose landmarks turn out to be a tracked person's
(``landmark_distance``) is dropped, and two tracks that converge on one person are merged into
the older one. A person lost for a moment (a missed frame, a brief occlusion) and found again
where they were lost, within ``REACQUIRE_FRAMES``, gets their id back (``reacquire_match``);
otherwise a new person gets a new id, and ids are not reused.

The numeric helpers are pure functions on arrays (pixels), tested on their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .detector import Detection
from .roi import Rect, roi_from_points
from .smoothing import PoseSmoother

CENTRE_LANDMARK = 33
SCALE_LANDMARK = 34
NUM_BODY = 33
REDETECT_INTERVAL = 15  # frames: 0.5 s at 30 FPS; with one person in view about +8 % of work
# A detection is a tracked person when both its alignment points lie within this share of the
# person's scale (|centre - scale point|) of the track's. Measured on the two-people clips: the
# same person 0.02-0.22, the other person of a close pair (handshake, hug) 0.9 and more.
SAME_ALIGNMENT = 0.5
# A person lost at most this many frames ago and found again with alignment points within this
# share of their scale of where they were lost gets their id back.
REACQUIRE_FRAMES = 30
REACQUIRE_ALIGNMENT = 1.0
# Two sets of landmarks are one person when their mean distance is below this share of the
# person's size (the larger landmark box's diagonal).
SAME_LANDMARKS = 0.1


def roi_from_detection(detection: Detection) -> Rect:
    kp = detection.keypoints_norm
    return roi_from_points(kp[0], kp[1], *detection.image_size)


def roi_from_landmarks(norm: np.ndarray, image_size: tuple[int, int]) -> Rect:
    """ROI for the next frame from (39, >=2) landmarks normalised to the image."""
    return roi_from_points(norm[CENTRE_LANDMARK, :2], norm[SCALE_LANDMARK, :2], *image_size)


# --- pure helpers (pixels) -----------------------------------------------------------------------


def to_px(points: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """(N, >=2) normalised x, y -> (N, 2) float64 pixels."""
    return np.asarray(points, np.float64)[:, :2] * np.asarray(image_size, np.float64)


def alignment_distance(points: np.ndarray, reference: np.ndarray) -> float:
    """How far two (2, 2) pairs of alignment points (centre, scale point; pixels) are apart: the
    larger of the two point distances, as a share of ``reference``'s scale (inf if that is 0)."""
    points = np.asarray(points, np.float64)
    reference = np.asarray(reference, np.float64)
    scale = float(np.linalg.norm(reference[1] - reference[0]))
    worst = float(np.linalg.norm(points - reference, axis=1).max())
    return worst / scale if scale > 0 else float("inf")


def landmark_box(points: np.ndarray) -> np.ndarray:
    """(4,) xmin, ymin, xmax, ymax around (N, >=2) points."""
    xy = np.asarray(points, np.float64)[:, :2]
    return np.concatenate([xy.min(axis=0), xy.max(axis=0)])


def landmark_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean distance between corresponding (N, >=2) landmarks (pixels), as a share of the larger
    of the two landmark boxes' diagonals (inf if both are points)."""
    a = np.asarray(a, np.float64)[:, :2]
    b = np.asarray(b, np.float64)[:, :2]
    size = max(
        float(np.linalg.norm(np.diff(landmark_box(p).reshape(2, 2), axis=0))) for p in (a, b)
    )
    mean = float(np.linalg.norm(a - b, axis=1).mean())
    return mean / size if size > 0 else float("inf")


def duplicates(people: list[np.ndarray], threshold: float = SAME_LANDMARKS) -> list[bool]:
    """For (N, >=2) landmark sets in order of precedence: whether each one is the same person as
    an earlier one that is kept (``landmark_distance`` below ``threshold``)."""
    kept: list[np.ndarray] = []
    out = []
    for person in people:
        dup = any(landmark_distance(person, other) < threshold for other in kept)
        out.append(dup)
        if not dup:
            kept.append(person)
    return out


def reacquire_match(
    points: np.ndarray, lost: list[np.ndarray], threshold: float = REACQUIRE_ALIGNMENT
) -> int | None:
    """The index of the lost person (each (2, 2) alignment points where they were last seen)
    nearest to ``points`` by ``alignment_distance``, if below ``threshold``; else None."""
    best, best_d = None, threshold
    for i, ref in enumerate(lost):
        d = alignment_distance(points, ref)
        if d < best_d:
            best, best_d = i, d
    return best


def detector_due(
    tracked: int, num_poses: int, ended: bool, since_run: int | None, interval: int
) -> bool:
    """Whether video mode runs the detector on this frame: only while fewer than ``num_poses``
    people are tracked, and then on every frame while nobody is, on the frame a track ended, at
    the first chance (``since_run`` None), and ``interval`` frames after the last run."""
    if tracked >= num_poses:
        return False
    if tracked == 0 or ended or since_run is None:
        return True
    return since_run >= interval


# --- state ---------------------------------------------------------------------------------------


@dataclass(eq=False)
class Track:
    """One tracked person: an id, the next frame's ROI, and the person's own filters."""

    id: int
    smoother: PoseSmoother
    roi: Rect | None = None  # the ROI to try on the next frame
    seen: np.ndarray | None = None  # (2, 2) alignment points (pixels) where last found


@dataclass(eq=False)
class Lost:
    """A track that ended: its id, where it was last found, and when (``Tracker.clock``)."""

    id: int
    seen: np.ndarray
    clock: int


class Tracker:
    """The tracks carried from one frame to the next, the next id, and how often detection ran.

    Ids count up from 0; an id goes back only to the person it was lost with (``end``,
    ``start``), never to someone else, until ``reset``."""

    def __init__(self, enabled: bool = True, smoother_factory=PoseSmoother):
        self.enabled = enabled
        self.tracks: list[Track] = []
        self.next_id = 0
        self.frames = 0
        self.detector_runs = 0
        self.since_detection: int | None = None  # frames since the detector last ran
        self.smoother_factory = smoother_factory
        self.lost: list[Lost] = []
        self.clock = 0  # frames seen (``frames`` may be reset by the caller; this is not)

    def tracked(self) -> list[Track]:
        """The tracks to try on this frame (counts the frame); none in static mode."""
        self.frames += 1
        self.clock += 1
        if self.since_detection is not None:
            self.since_detection += 1
        return list(self.tracks) if self.enabled else []

    def skipped(self) -> None:
        """A frame not looked at (``idle_detect_hz``): counted, as time passes for the lost."""
        self.frames += 1
        self.clock += 1
        if self.since_detection is not None:
            self.since_detection += 1

    def detected(self) -> None:
        self.detector_runs += 1
        self.since_detection = 0

    def start(self, seen: np.ndarray | None = None) -> Track:
        """A new track with fresh filters (not yet kept: see ``keep``): the id of a person lost
        within ``REACQUIRE_FRAMES`` where ``seen`` (alignment points, pixels) is, else a new id."""
        self.lost = [x for x in self.lost if self.clock - x.clock <= REACQUIRE_FRAMES]
        match = None if seen is None else reacquire_match(seen, [x.seen for x in self.lost])
        if match is not None:
            return Track(self.lost.pop(match).id, self.smoother_factory())
        track = Track(self.next_id, self.smoother_factory())
        self.next_id += 1
        return track

    def end(self, track: Track) -> None:
        """The person of ``track`` is no longer found: remember where, for a while."""
        if self.enabled and track.seen is not None:
            self.lost.append(Lost(track.id, track.seen, self.clock))

    def keep(self, tracks: list[Track]) -> None:
        """The tracks that go on to the next frame, ordered by id (none in static mode)."""
        self.tracks = sorted(tracks, key=lambda tr: tr.id) if self.enabled else []

    def restart_smoothing(self) -> None:
        for track in self.tracks:
            track.smoother.reset()

    def reset(self) -> None:
        self.tracks = []
        self.next_id = 0
        self.since_detection = None
        self.lost = []

    @property
    def detector_share(self) -> float:
        return self.detector_runs / self.frames if self.frames else 0.0
