"""The multi-person tracking helpers, on arrays alone (no models)."""

import math

import numpy as np
import pytest

from edge.pose.tracking import (
    REACQUIRE_FRAMES,
    SAME_LANDMARKS,
    Tracker,
    alignment_distance,
    detector_due,
    duplicates,
    landmark_box,
    landmark_distance,
    reacquire_match,
    to_px,
)


def person(dx: float = 0.0, dy: float = 0.0, size: float = 100.0) -> np.ndarray:
    """33 points spread over a size x 2*size box, shifted by (dx, dy)."""
    rng = np.random.default_rng(3)
    pts = rng.uniform(0, 1, (33, 2)) * [size, 2 * size]
    pts[0], pts[1] = (0, 0), (size, 2 * size)  # the box is exactly size x 2*size
    return pts + [dx, dy]


def test_to_px_scales_x_and_y_by_the_image_size():
    np.testing.assert_allclose(to_px(np.array([[0.5, 0.25, 9.0]]), (640, 480)), [[320, 120]])


def test_alignment_distance_is_the_worse_point_over_the_scale():
    ref = np.array([[100.0, 100.0], [100.0, 0.0]])  # scale 100
    assert alignment_distance(ref, ref) == 0.0
    moved = ref + [[30.0, 0.0], [0.0, 50.0]]
    assert alignment_distance(moved, ref) == pytest.approx(0.5)
    assert alignment_distance(ref, np.zeros((2, 2))) == math.inf


def test_landmark_box_and_distance():
    a = person()
    np.testing.assert_allclose(landmark_box(a), [0, 0, 100, 200])
    assert landmark_distance(a, a) == 0.0
    diag = math.hypot(100, 200)
    assert landmark_distance(a, person(dx=30)) == pytest.approx(30 / diag)
    # the larger of the two people sets the scale, whichever comes first
    big = person(size=200)
    assert landmark_distance(a, big) == landmark_distance(big, a)
    assert landmark_distance(np.zeros((33, 2)), np.zeros((33, 2))) == math.inf


def test_duplicates_keeps_the_first_of_each_person():
    a, b = person(), person(dx=300)
    near_a = person(dx=0.5 * SAME_LANDMARKS * math.hypot(100, 200))
    assert duplicates([a, near_a, b]) == [False, True, False]
    assert duplicates([b, a, near_a, b]) == [False, False, True, True]
    assert duplicates([]) == []
    # two people side by side, overlapping boxes, are two people
    assert duplicates([a, person(dx=40)]) == [False, False]


@pytest.mark.parametrize(
    ("tracked", "ended", "since", "expected"),
    [
        (2, False, 100, False),  # all N tracked: never
        (3, True, None, False),
        (0, False, 1, True),  # nobody tracked: every frame
        (1, True, 1, True),  # a track ended on this frame: at once
        (1, False, None, True),  # never ran yet
        (1, False, 14, False),  # fewer than N: at the interval
        (1, False, 15, True),
    ],
)
def test_detector_due(tracked, ended, since, expected):
    assert detector_due(tracked, 2, ended, since, 15) is expected


def test_tracker_ids_count_up_are_not_reused_and_restart_on_reset():
    tr = Tracker()
    a, b = tr.start(), tr.start()
    assert (a.id, b.id) == (0, 1) and a.smoother is not b.smoother
    tr.keep([b, a])
    assert [t.id for t in tr.tracks] == [0, 1]  # ordered by id
    tr.keep([b])  # a's person left
    assert tr.start().id == 2  # a's id is not given to the next person
    assert tr.since_detection is None
    tr.detected()
    tr.tracked()
    tr.tracked()
    assert (tr.detector_runs, tr.since_detection) == (1, 2)  # frames since the last run
    tr.reset()
    assert tr.tracks == [] and tr.start().id == 0 and tr.since_detection is None


def test_reacquire_match_is_the_nearest_lost_person_within_the_threshold():
    here = np.array([[100.0, 100.0], [100.0, 0.0]])  # scale 100
    lost = [here + 300, here + [60.0, 0.0], here + [20.0, 0.0]]
    assert reacquire_match(here, lost) == 2
    assert reacquire_match(here, lost[:2]) == 1
    assert reacquire_match(here, lost[:2], threshold=0.5) is None
    assert reacquire_match(here, []) is None


def test_tracker_gives_an_id_back_only_to_the_person_lost_with_it_and_only_for_a_while():
    tr = Tracker()
    seen = np.array([[100.0, 100.0], [100.0, 0.0]])
    a = tr.start(seen)
    a.seen = seen
    tr.keep([a])
    tr.tracked()
    tr.end(a)  # a's person is lost here
    tr.keep([])
    assert tr.start(seen + 500).id == 1  # someone else, elsewhere: a new id
    assert tr.start(seen + 5).id == 0  # a's person, back where they were lost
    assert tr.start(seen + 5).id == 2  # once only
    b = tr.start(seen)
    b.seen = seen
    tr.end(b)
    for _ in range(REACQUIRE_FRAMES + 1):
        tr.tracked()
    assert tr.start(seen).id == 4  # lost too long ago: a new id


def test_static_tracker_keeps_nothing_but_counts_frames():
    tr = Tracker(enabled=False)
    tr.keep([tr.start()])
    assert tr.tracks == [] and tr.tracked() == [] and tr.frames == 1
