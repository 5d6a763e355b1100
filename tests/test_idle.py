"""``idle_detect_hz``: while nobody is tracked, scan at a rate instead of on every frame.

Real models on real frames: the demo clip that ships in the package (one person raising their
arms, from its first frame) and blank frames (nobody)."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge import FrameError, PoseEstimator, Poses

DEMO = Path(__file__).resolve().parent.parent / "edge" / "service" / "demo" / "arms_up.mp4"
SCHEMA = Path(__file__).resolve().parent.parent / "edge" / "service" / "schema" / "pose.schema.json"
FPS = 30.0


@pytest.fixture(scope="module")
def clip() -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(DEMO))
    frames = []
    while len(frames) < 40:
        ok, frame = cap.read()
        assert ok, f"cannot read {DEMO}"
        frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def blank(clip) -> np.ndarray:
    return np.zeros_like(clip[0])


def run(est: PoseEstimator, frames, start: int = 0) -> list[Poses]:
    """``process`` on each frame at 30 FPS, from frame number ``start``."""
    return [est.process(f, (start + i) * 1000.0 / FPS) for i, f in enumerate(frames)]


def scanned(results) -> list[int]:
    return [i for i, r in enumerate(results) if r.scanned]


# --- the library ---------------------------------------------------------------------------------


def test_blank_frames_at_30fps_with_5hz_run_the_detector_on_every_6th_frame(models_ready, blank):
    est = PoseEstimator("float", idle_detect_hz=5)
    out = run(est, [blank] * 31)
    assert scanned(out) == [0, 6, 12, 18, 24, 30]
    assert est.detector_runs == 6 and est.frames_scanned == 6
    assert est.frames_processed == 31  # every frame given to process is counted
    skipped = out[1]
    assert isinstance(skipped, Poses) and isinstance(skipped, list)
    assert skipped == [] and skipped.scanned is False
    est.process(blank, 31 * 1000.0 / FPS)
    assert est.timings == {}  # nothing ran on a frame not looked at


def test_hz_0_scans_every_frame_as_before(models_ready, blank):
    est = PoseEstimator("float")
    assert est.idle_detect_hz == 0.0
    out = run(est, [blank] * 12)
    assert scanned(out) == list(range(12)) and est.detector_runs == 12


@pytest.mark.parametrize("hz", [5.0, 2.0])
def test_a_person_walking_in_is_found_within_one_interval(models_ready, clip, blank, hz):
    """Blank frames, then the person from the clip's first frame, at every phase of the scans
    against their arrival: found on the first scan after they arrive, never later than one
    interval (with hz=0, on the frame they arrive)."""
    interval = round(FPS / hz)  # frames
    assert PoseEstimator("float").process(clip[0], 0.0)  # found at once when every frame is scanned
    est = PoseEstimator("float", idle_detect_hz=hz)
    delays = []
    for empty in range(interval, 2 * interval):  # every phase
        est.reset()
        out = run(est, [blank] * empty + clip[: interval + 1])
        first = next(i for i, r in enumerate(out) if r)
        delays.append(first - empty)
        assert all(r.scanned for r in out[first:])  # tracked: every frame processed
    assert sorted(delays) == list(range(interval))  # 0 .. interval - 1 frames
    assert max(delays) * 1000.0 / FPS < 1000.0 / hz


def test_a_tracked_person_is_processed_exactly_as_without_idle_scanning(models_ready, clip):
    a, b = PoseEstimator("float"), PoseEstimator("float", idle_detect_hz=5)
    for x, y in zip(run(a, clip), run(b, clip), strict=True):
        assert y.scanned and len(x) == len(y) == 1
        np.testing.assert_array_equal(x[0].landmarks, y[0].landmarks)
    assert a.detector_runs == b.detector_runs == 1 and b.frames_scanned == len(clip)


def test_newcomer_redetection_with_someone_tracked_stays_per_frame_interval(models_ready, clip):
    """num_poses > 1 with one person tracked: the detector still runs every redetect_interval
    frames to find newcomers (idle scanning applies only while nobody is tracked)."""
    runs = {}
    for hz in (0.0, 5.0):
        est = PoseEstimator("float", num_poses=2, redetect_interval=3, idle_detect_hz=hz)
        runs[hz] = []
        for i, frame in enumerate(clip[:10]):
            est.process(frame, i * 1000.0 / FPS)
            runs[hz].append(est.detector_runs)
    assert runs[5.0] == runs[0.0] == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4]


def test_after_the_last_track_ends_every_frame_is_scanned_for_one_interval(
    models_ready, clip, blank
):
    """A person lost for a moment is usually still there: every frame is scanned for one
    interval after the last frame someone was tracked on, then once an interval."""
    est = PoseEstimator("float", idle_detect_hz=5)
    out = run(est, clip[:3] + [blank] * 20)
    assert [bool(r) for r in out[:4]] == [True, True, True, False]
    # tracked on 0-2; 3: the track ends (the detector runs on that frame); 4-7: within one
    # interval (6 frames) of frame 2, the last one someone was tracked on; then one scan an
    # interval: 7 + 6 = 13, 19
    assert scanned(out) == [0, 1, 2, 3, 4, 5, 6, 7, 13, 19]
    # a frame not looked at always follows one with nobody: presence (Home Assistant, the live
    # view) reads the same from both and cannot flap
    assert all(not out[i - 1] for i, r in enumerate(out) if not r.scanned)


def test_a_person_lost_for_a_moment_is_found_again_on_the_next_frame(models_ready, clip, blank):
    est = PoseEstimator("float", idle_detect_hz=2)
    out = run(est, [clip[0], clip[1], blank, clip[3], clip[4]])
    assert [len(r) for r in out] == [1, 1, 0, 1, 1]
    assert out[3][0].id == out[0][0].id  # found where they were lost: their id back


def test_static_mode_is_unaffected(models_ready, blank):
    est = PoseEstimator("float", tracking=False, idle_detect_hz=5)
    out = run(est, [blank] * 8)
    assert scanned(out) == list(range(8)) and est.detector_runs == 8


def test_wants_frame_says_what_process_will_do(models_ready, clip, blank):
    est = PoseEstimator("float", idle_detect_hz=5)
    frames = [blank] * 9 + clip[:4] + [blank] * 15
    for i, frame in enumerate(frames):
        t = i * 1000.0 / FPS
        wanted = est.wants_frame(t)
        assert est.process(frame, t).scanned == wanted, i
    assert PoseEstimator("float", tracking=False, idle_detect_hz=5).wants_frame(0.0)


def test_time_going_back_or_reset_scans_at_once(models_ready, blank):
    est = PoseEstimator("float", idle_detect_hz=1)
    assert est.process(blank, 5000.0).scanned
    assert not est.process(blank, 5100.0).scanned
    assert est.process(blank, 100.0).scanned  # a seek back (or another clip without reset)
    assert not est.process(blank, 200.0).scanned
    est.reset()
    assert est.process(blank, 300.0).scanned


def test_a_frame_not_looked_at_is_still_checked(models_ready, blank):
    est = PoseEstimator("float", idle_detect_hz=5)
    est.process(blank, 0.0)
    with pytest.raises(FrameError):
        est.process(np.zeros((10, 10, 2), np.uint8), 10.0)
    with pytest.raises(FrameError):
        est.process(blank.astype(np.float32), 20.0)
    gray = np.zeros(blank.shape[:2], np.uint8)  # accepted, and not converted when not looked at
    assert est.process(gray, 30.0).scanned is False


@pytest.mark.parametrize("bad", [-1, -0.5, math.nan, math.inf, "5", None, True])
def test_idle_detect_hz_is_checked(models_ready, bad):
    with pytest.raises(ValueError, match="idle_detect_hz"):
        PoseEstimator("float", idle_detect_hz=bad)
    est = PoseEstimator("float")
    with pytest.raises(ValueError, match="idle_detect_hz"):
        est.idle_detect_hz = bad
    est.idle_detect_hz = 2  # settable between frames
    assert est.idle_detect_hz == 2.0
    est.idle_detect_hz = np.float32(0.5)  # numpy numbers too
    assert est.idle_detect_hz == 0.5 and type(est.idle_detect_hz) is float


# --- the service ---------------------------------------------------------------------------------


def test_config_key(tmp_path):
    from edge.service import config

    assert config.default("pipeline.idle_detect_hz") == 1.5
    assert "pipeline.idle_detect_hz" in config.RELOADABLE
    path = tmp_path / "config.toml"
    path.write_text("[pipeline]\nidle_detect_hz = 0.5\n")
    assert config.load(path).pipeline.idle_detect_hz == 0.5
    path.write_text("[pipeline]\nidle_detect_hz = -1\n")
    with pytest.raises(config.ConfigError, match="pipeline.idle_detect_hz"):
        config.load(path)


def test_pose_json_says_scanned_false_only_on_frames_not_looked_at():
    from edge.service.sinks import pose_binary, pose_json

    unscanned = json.loads(pose_json("cam", 3, 1.5, 640, 480, [], scanned=False))
    assert unscanned["poses"] == [] and unscanned["scanned"] is False
    assert "scanned" not in json.loads(pose_json("cam", 3, 1.5, 640, 480, []))
    # the binary layout has no room for it: the same message as a frame with nobody in view
    assert pose_binary(3, 1.5, 640, 480, Poses(scanned=False)) == pose_binary(3, 1.5, 640, 480, [])


def test_daemon_publishes_frames_not_looked_at_as_empty_and_scanned_false(
    models_ready, tmp_path, clip, blank
):
    """Blank images played as a 30 FPS clip with idle_detect_hz = 5, then the person: every
    frame gives one message; those not scanned have no poses and "scanned": false; they obey
    the schema; the person is found at the next scan."""
    from edge.service.config import load
    from edge.service.daemon import Daemon
    from edge.service.sinks import StdoutPublisher

    folder = tmp_path / "frames"
    folder.mkdir()
    frames = [blank] * 12 + clip[:3]
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:03d}.png"), frame)
    cfg = load(None, {"source.uri": str(folder), "mqtt.host": "none"})
    cfg.pipeline.idle_detect_hz = 5.0
    cfg.pipeline.variant = "float"
    out = io.StringIO()
    daemon = Daemon(cfg, sinks=[StdoutPublisher(stream=out, device="x")])
    assert daemon.run() == 0
    messages = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [m["frame"] for m in messages] == list(range(len(frames)))
    not_scanned = [m["frame"] for m in messages if m.get("scanned") is False]
    assert not_scanned == [1, 2, 3, 4, 5, 7, 8, 9, 10, 11]  # scans on 0, 6 and 12
    assert all(messages[i]["poses"] == [] for i in not_scanned)
    assert "scanned" not in messages[0] and "scanned" not in messages[6]
    assert [len(m["poses"]) for m in messages[12:]] == [1, 1, 1]  # found at the scan on 12
    assert daemon.stats()["scanned_share"] == pytest.approx(5 / 15, abs=1e-4)
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    for message in messages:
        validator.validate(message)


def test_sighup_applies_idle_detect_hz(models_ready, caplog):
    import copy
    import logging

    from edge.service.config import load
    from edge.service.daemon import Daemon

    cfg = load(None, {"source.uri": "demo", "mqtt.host": "none"})
    cfg.pipeline.variant = "float"
    new = copy.deepcopy(cfg)
    new.pipeline.idle_detect_hz = 0.5
    daemon = Daemon(cfg, sinks=[], reload_config=lambda: new)
    assert daemon.estimator.idle_detect_hz == 1.5  # built with the configured rate
    caplog.set_level(logging.INFO)
    daemon.request_reload()
    daemon._apply_reload()
    assert daemon.estimator.idle_detect_hz == 0.5 and cfg.pipeline.idle_detect_hz == 0.5
    assert "applied: pipeline.idle_detect_hz" in caplog.text
