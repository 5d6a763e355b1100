"""Several people at once (``num_poses`` > 1), on real photos and clips."""

import cv2
import numpy as np
import pytest

from edge import PoseEstimator
from edge.pose.roi import Rect
from edge.pose.tracking import Track


def frames(media, name: str, count: int | None = None) -> tuple[list[np.ndarray], float]:
    cap = cv2.VideoCapture(str(media / "video" / name))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    out = []
    while count is None or len(out) < count:
        ok, frame = cap.read()
        if not ok:
            break
        out.append(frame)
    return out, fps


@pytest.fixture(scope="module")
def static5(models_ready):
    return PoseEstimator("float", tracking=False, num_poses=5)


def test_num_poses_and_interval_are_checked(models_ready):
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="num_poses"):
            PoseEstimator(num_poses=bad)
        with pytest.raises(ValueError, match="redetect_interval"):
            PoseEstimator(num_poses=2, redetect_interval=bad)


@pytest.mark.parametrize(
    ("image", "people"),
    [("COCO_val2014_000000000241.jpg", 3), ("soccer_two_players_openpifpaf.jpeg", 2),
     ("hard_three_people_upper_body_tfjs.jpg", 3)],
)  # fmt: skip
def test_static_mode_returns_every_person_up_to_n_best_first(
    media, static_estimator, static5, image, people
):
    frame = cv2.imread(str(media / "images" / image))
    poses = static5.process(frame)
    assert len(poses) == people
    assert [p.id for p in poses] == list(range(people))  # the detection's rank
    # the first is the one a single-person run finds, bit for bit
    one = static_estimator.process(frame)
    np.testing.assert_array_equal(poses[0].landmarks, one[0].landmarks)
    assert one[0].id == 0
    # different people: their hips are apart
    hips = [p.landmarks[[23, 24], :2].mean(axis=0) for p in poses]
    assert min(np.linalg.norm(a - b) for i, a in enumerate(hips) for b in hips[i + 1 :]) > 20
    two = PoseEstimator("float", tracking=False, num_poses=2).process(frame)
    assert len(two) == 2
    for a, b in zip(two, poses[:2], strict=True):
        np.testing.assert_array_equal(a.landmarks, b.landmarks)


def test_video_mode_follows_two_people_with_their_own_ids(media, models_ready):
    clip, fps = frames(media, "two_people_handshake_mmhuman3d.mp4")
    est = PoseEstimator("float", num_poses=2)
    last = {}
    for i, frame in enumerate(clip):
        poses = est.process(frame, timestamp_ms=i * 1000 / fps)
        assert [p.id for p in poses] == [0, 1], i  # both from the first frame, ordered by id
        for p in poses:
            hip = p.landmarks[[23, 24], :2].mean(axis=0)
            if p.id in last:  # each id stays on its person (1080 px wide: people ~700 px apart)
                assert np.linalg.norm(hip - last[p.id]) < 100, (i, p.id)
            last[p.id] = hip
    assert np.linalg.norm(last[0] - last[1]) > 300
    assert [p.to_dict()["id"] for p in poses] == [0, 1]
    assert len({id(t.smoother) for t in est.tracker.tracks}) == 2  # filters of their own
    assert est.detector_runs == 1  # both found at once: no detector run after that


def test_one_person_in_view_with_n5_is_the_single_person_run(media, models_ready):
    """The extra detector runs find the tracked person (not estimated again) and nobody else:
    the landmarks are those of num_poses=1, bit for bit; the detector runs at the interval."""
    clip, _ = frames(media, "synthetic_arms_up_tfjs.mp4", 60)
    one = PoseEstimator("float")
    five = PoseEstimator("float", num_poses=5, redetect_interval=3)
    for i, frame in enumerate(clip):
        a, b = one.process(frame, i * 1000 / 30), five.process(frame, i * 1000 / 30)
        assert len(a) == len(b) == 1 and b[0].id == 0
        np.testing.assert_array_equal(a[0].landmarks, b[0].landmarks)
        np.testing.assert_array_equal(a[0].world_landmarks, b[0].world_landmarks)
    assert one.detector_runs == 1
    assert five.detector_runs == 1 + 59 // 3  # the first frame, then every 3 frames


def test_a_detection_on_a_tracked_person_does_not_start_a_second_track(media, models_ready):
    clip, fps = frames(media, "two_people_handshake_mmhuman3d.mp4", 12)
    est = PoseEstimator("float", num_poses=5, redetect_interval=1)  # detector on every frame
    for i, frame in enumerate(clip):
        assert [p.id for p in est.process(frame, i * 1000 / fps)] == [0, 1]
    assert est.detector_runs == len(clip)


def test_converging_tracks_are_merged_into_the_older_id(media, models_ready):
    clip, fps = frames(media, "synthetic_arms_up_tfjs.mp4", 3)
    est = PoseEstimator("float", num_poses=3)
    (pose,) = est.process(clip[0], 0.0)
    # a second track started on the same person from a slightly different crop, newer id
    roi = est.tracker.tracks[0].roi
    shifted = Rect(roi.x_center + 0.02, roi.y_center - 0.01, roi.width * 1.05, roi.height * 1.05)
    assert est.estimator.estimate(clip[1], shifted) is not None  # it does find the person
    extra = est.tracker.start()
    est.tracker.keep([*est.tracker.tracks, Track(extra.id, extra.smoother, shifted)])
    poses = est.process(clip[1], 1000 / fps)
    assert [p.id for p in poses] == [pose.id]
    assert [t.id for t in est.tracker.tracks] == [pose.id]


def test_a_person_who_leaves_ends_their_track_and_ids_are_not_reused(media, models_ready):
    from edge.pose.tracking import REACQUIRE_FRAMES

    clip, fps = frames(media, "synthetic_arms_up_tfjs.mp4", 3)
    empty = np.zeros_like(clip[0])
    est = PoseEstimator("float", num_poses=2)
    away = [empty] * (REACQUIRE_FRAMES + 1)  # gone for longer than a moment
    ids = [[p.id for p in est.process(f, i * 100.0)] for i, f in enumerate([*clip, *away, *clip])]
    assert ids == [[0]] * 3 + [[]] * len(away) + [[1]] * 3
    assert est.tracker.tracks[0].id == 1
    est.reset()
    assert [p.id for p in est.process(clip[0], 0.0)] == [0]  # a new video starts from 0


def test_a_person_lost_for_a_moment_gets_their_id_back(media, models_ready):
    """Lost on a few frames (a blank, a glitch) and found where they were: the same id; someone
    found elsewhere in the meantime gets a new one and keeps it."""
    clip, _ = frames(media, "synthetic_arms_up_tfjs.mp4", 4)
    empty = np.zeros_like(clip[0])
    photo = cv2.imread(str(media / "images" / "standing_businessman_pixabay.jpeg"))
    small = cv2.resize(photo, (359, 576))  # the arms_up person stands in x 200..370 of 576
    elsewhere = empty.copy()
    elsewhere[:, :200] = small[:, 80:280]
    est = PoseEstimator("float", num_poses=2)
    seq = [clip[0], clip[1], empty, empty, elsewhere, clip[2], clip[3]]
    ids = [[p.id for p in est.process(f, i * 100.0)] for i, f in enumerate(seq)]
    assert ids[:2] == [[0], [0]] and ids[2:4] == [[], []]
    assert ids[4] == [1]  # another person, elsewhere: a new id
    assert ids[5:] == [[0], [0]]  # the first one back where they were lost: their id


def test_newcomers_are_found_at_the_redetect_interval(media, models_ready):
    """Nobody, then one person: found on the first frame they are in (the detector runs on every
    frame while nobody is tracked); with one of two tracked, the detector waits the interval."""
    clip, _ = frames(media, "synthetic_arms_up_tfjs.mp4", 8)
    empty = np.zeros_like(clip[0])
    est = PoseEstimator("float", num_poses=2, redetect_interval=3)
    runs = []
    for i, frame in enumerate([empty, empty, *clip]):
        est.process(frame, i * 50.0)
        runs.append(est.detector_runs)
    # frames 0, 1 (nobody), 2 (found), then every 3 frames: 5, 8
    assert runs == [1, 2, 3, 3, 3, 4, 4, 4, 5, 5]


# --- the service: config, command line, bench, daemon --------------------------------------------


def test_config_pipeline_num_poses(tmp_path):
    from edge.service.config import ConfigError, load

    path = tmp_path / "c.toml"
    path.write_text("")
    assert load(path).pipeline.num_poses == 1
    path.write_text("[pipeline]\nnum_poses = 3\n")
    assert load(path).pipeline.num_poses == 3
    assert load(path, {"pipeline.num_poses": 5}).pipeline.num_poses == 5
    for bad, message in (
        ("0", "must be 1..255"),
        ("256", "must be 1..255"),
        ("2.0", "must be an integer"),
    ):
        path.write_text(f"[pipeline]\nnum_poses = {bad}\n")
        with pytest.raises(ConfigError, match=rf"pipeline\.num_poses {message}"):
            load(path)


def test_cli_num_poses_for_infer_run_and_bench(media, models_ready, tmp_path, capsys):
    import json

    from edge.service.cli import main

    photo = str(media / "images" / "COCO_val2014_000000000241.jpg")
    assert main(["infer", "--json", "--num-poses", "3", photo]) == 0
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [p["id"] for p in line["poses"]] == [0, 1, 2]
    assert main(["infer", "--json", photo]) == 0  # default 1
    assert [p["id"] for p in json.loads(capsys.readouterr().out)["poses"]] == [0]
    with pytest.raises(SystemExit):
        main(["infer", "--num-poses", "0", photo])
    assert "must be >= 1" in capsys.readouterr().err
    # run (and check-config) take it into the config
    assert main(["check-config", "--num-poses", "4", "--print"]) == 0
    assert "num_poses = 4" in capsys.readouterr().out
    assert main(["check-config", "--num-poses", "0"]) == 2
    assert "pipeline.num_poses must be 1..255" in capsys.readouterr().err
    out = tmp_path / "r.json"
    video = str(media / "video" / "two_people_handshake_mmhuman3d.mp4")
    args = ["bench", "--source", video, "--frames", "4", "--warmup", "1", "--json", str(out)]
    assert main([*args, "--num-poses", "2"]) == 0
    assert json.loads(out.read_text())["config"]["num_poses"] == 2


def test_daemon_builds_its_estimator_with_num_poses(media, models_ready):
    from edge.service.config import Config
    from edge.service.daemon import Daemon

    cfg = Config()
    cfg.pipeline.num_poses = 3
    cfg.pipeline.variant = "float"
    cfg.mqtt.host = "none"
    cfg.source.uri = str(media / "video" / "two_people_handshake_mmhuman3d.mp4")
    assert Daemon(cfg).estimator.num_poses == 3


# --- fidelity: each person as in a single-person run given their own detection ---------------


def torso(landmarks: np.ndarray) -> float:
    shoulders = (landmarks[11, :2] + landmarks[12, :2]) / 2
    hips = (landmarks[23, :2] + landmarks[24, :2]) / 2
    return float(np.linalg.norm(shoulders - hips))


def error(ours: np.ndarray, ref: np.ndarray) -> float:
    """Mean 2D landmark distance as a share of the reference torso (as in test_fidelity)."""
    return float(np.linalg.norm(ours[:, :2] - ref[:, :2], axis=1).mean()) / torso(ref)


@pytest.mark.parametrize(
    "image",
    ["COCO_val2014_000000000241.jpg", "COCO_val2014_000000000536.jpg",
     "soccer_two_players_openpifpaf.jpeg", "hard_three_people_upper_body_tfjs.jpg",
     "hard_night_crowd_hands_up_tfpose.jpg"],
)  # fmt: skip
def test_static_each_person_matches_a_single_person_run_on_their_detection(
    media, static_estimator, static5, image
):
    from edge.pose.landmarks import to_pixels
    from edge.pose.tracking import roi_from_detection

    frame = cv2.imread(str(media / "images" / image))
    poses = static5.process(frame)
    detections = static_estimator.detector.detect(frame)
    assert len(poses) >= 2
    for pose, detection in zip(poses, detections, strict=False):
        single = static_estimator.estimator.estimate(frame, roi_from_detection(detection))
        assert error(pose.landmarks, to_pixels(single.norm[:33], single.image_size)) < 0.01


@pytest.mark.parametrize(
    "clip", ["two_people_handshake_mmhuman3d.mp4", "two_people_hug_1080p_mmaction2.mp4"]
)
def test_video_each_person_matches_a_single_person_run_started_on_them(media, models_ready, clip):
    """Video mode with N = 2: each person's smoothed landmarks, frame by frame, against a
    num_poses=1 run whose track starts from that person's own detection on the frame the
    person was first found (tracked and smoothed on its own from there)."""
    from edge.pose.roi import rect_to_roi
    from edge.pose.tracking import roi_from_detection

    video, fps = frames(media, clip)
    multi = PoseEstimator("float", num_poses=2)
    people: dict[int, dict[int, np.ndarray]] = {}  # id -> frame -> landmarks
    first_roi = {}
    for i, frame in enumerate(video):
        for pose in multi.process(frame, i * 1000 / fps):
            if pose.id not in people:
                people[pose.id], first_roi[pose.id] = {}, pose.roi
            people[pose.id][i] = pose.landmarks
    assert len(people) == 2
    compared = 0
    for pid, track in people.items():
        start = min(track)
        h, w = video[start].shape[:2]
        detection = next(
            d for d in multi.detector.detect(video[start])
            if rect_to_roi(roi_from_detection(d), w, h) == first_roi[pid]
        )  # fmt: skip
        single = PoseEstimator("float")
        seed = single.tracker.start()
        seed.roi = roi_from_detection(detection)  # that person's detection starts the track
        single.tracker.keep([seed])
        for i in range(start, max(track) + 1):
            (pose,) = single.process(video[i], i * 1000 / fps)
            assert pose.id == 0, f"the single-person run lost person {pid} at frame {i}"
            assert error(track[i], pose.landmarks) < 0.01, (pid, i)
            compared += 1
    assert compared >= len(video)
