import io
import json
import os
import socket
import struct
from pathlib import Path

import numpy as np
import pytest

from edge.pose.pipeline import Pose
from edge.pose.roi import Roi
from edge.service.sdnotify import Watchdog, notify
from edge.service.sinks import StdoutPublisher, decode_binary, pose_binary, pose_json


def make_pose(seed=0, pose_id=0):
    rng = np.random.default_rng(seed)
    lm = rng.uniform(0, 1, (33, 5)).astype(np.float32)
    lm[:, 0] *= 640
    lm[:, 1] *= 480
    lm[:, 2] = (lm[:, 2] - 0.5) * 200
    world = rng.normal(0, 0.4, (33, 3)).astype(np.float32)
    return Pose(0.93, lm, world, Roi(1, 2, 3, 3), id=pose_id)


def test_json_payload_normalises_pixels():
    pose = make_pose()
    doc = json.loads(pose_json("dev", 7, 1700000000.5, 640, 480, [pose]))
    assert doc["v"] == 1 and doc["frame"] == 7 and doc["device"] == "dev"
    lm = np.array(doc["poses"][0]["landmarks"])
    np.testing.assert_allclose(lm[:, 0], pose.landmarks[:, 0] / 640, atol=1e-5)
    np.testing.assert_allclose(lm[:, 1], pose.landmarks[:, 1] / 480, atol=1e-5)
    np.testing.assert_allclose(lm[:, 2], pose.landmarks[:, 2] / 640, atol=1e-5)
    np.testing.assert_allclose(lm[:, 3:], pose.landmarks[:, 3:], atol=1e-4)


def test_empty_frame_still_has_a_message():
    doc = json.loads(pose_json("dev", 0, 1.0, 10, 10, []))
    assert doc["poses"] == []


def test_json_payload_carries_each_person_id():
    poses = [make_pose(1, 3), make_pose(2, 7)]
    doc = json.loads(pose_json("dev", 7, 1700000000.5, 640, 480, poses))
    assert [p["id"] for p in doc["poses"]] == [3, 7]
    assert list(doc["poses"][0])[:2] == ["id", "score"]


def test_json_payload_matches_the_schema_with_several_people():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(
        (Path(__file__).parent.parent / "edge/service/schema/pose.schema.json").read_text()
    )
    validator = jsonschema.Draft202012Validator(schema)
    doc = json.loads(
        pose_json("dev", 7, 1700000000.5, 640, 480, [make_pose(1, 0), make_pose(2, 5)])
    )
    for pose in doc["poses"]:  # random test landmarks: keep visibility/presence in range
        for lm in pose["landmarks"]:
            lm[3], lm[4] = min(max(lm[3], 0), 1), min(max(lm[4], 0), 1)
    validator.validate(doc)
    del doc["poses"][1]["id"]
    with pytest.raises(jsonschema.ValidationError, match="'id' is a required property"):
        validator.validate(doc)


def test_binary_payload_layout_round_trip():
    poses = [make_pose(1, 4), make_pose(2, 2**32 + 9)]
    data = pose_binary(123456, 1700000000.25, 640, 480, poses)
    assert data[:4] == b"BPE2" and len(data) == 24 + 2 * 1064
    assert struct.unpack_from("<If", data, 24) == (4, pytest.approx(0.93))  # id, then score
    assert struct.unpack_from("<I", data, 24 + 1064)[0] == 9  # ids wrap at 2**32
    doc = decode_binary(data)
    assert (doc["frame"], doc["ts"], doc["width"], doc["height"]) == (
        123456,
        1700000000.25,
        640,
        480,
    )
    np.testing.assert_allclose(
        doc["poses"][1]["landmarks"][:, 0], poses[1].landmarks[:, 0] / 640, rtol=1e-6
    )
    np.testing.assert_allclose(
        doc["poses"][0]["world_landmarks"], poses[0].world_landmarks, rtol=1e-6
    )
    assert doc["poses"][0]["score"] == pytest.approx(0.93)
    assert [p["id"] for p in doc["poses"]] == [4, 9]
    with pytest.raises(ValueError):
        decode_binary(b"XXXX" + data[4:])


def test_binary_decoder_still_reads_layout_version_1():
    """Version 1 (before ids): 'BPE1', 1060 bytes per pose (float32 score, landmarks, world)."""
    poses = [make_pose(1), make_pose(2)]
    v1 = [struct.pack("<4sIdHHB3x", b"BPE1", 5, 2.5, 640, 480, 2)]
    for pose in poses:
        lm = pose.landmarks.astype(np.float64) / [640, 480, 640, 1, 1]
        v1.append(np.concatenate([[pose.score], lm.ravel(), pose.world_landmarks.ravel()]))
    data = v1[0] + b"".join(block.astype("<f4").tobytes() for block in v1[1:])
    assert len(data) == 24 + 2 * 1060
    doc = decode_binary(data)
    assert [p["id"] for p in doc["poses"]] == [0, 1]
    np.testing.assert_allclose(doc["poses"][1]["world_landmarks"], poses[1].world_landmarks)
    np.testing.assert_allclose(
        doc["poses"][0]["landmarks"][:, 1], poses[0].landmarks[:, 1] / 480, rtol=1e-6
    )


def test_stdout_publisher_writes_lines():
    out = io.StringIO()
    pub = StdoutPublisher(out)
    pub.publish_pose(b'{"a":1}')
    pub.publish_pose(b'{"a":2}')
    assert out.getvalue() == '{"a":1}\n{"a":2}\n'
    assert pub.report()["sent"] == 2


def test_sd_notify_and_watchdog(tmp_path, monkeypatch):
    path = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert notify("READY=1", "STATUS=running")
    assert server.recv(100) == b"READY=1\nSTATUS=running"
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    dog = Watchdog()
    assert dog.interval == 1.0
    dog.ping()
    dog.ping()  # rate-limited: one datagram
    assert server.recv(100) == b"WATCHDOG=1"
    server.settimeout(0.2)
    with pytest.raises(TimeoutError):
        server.recv(100)
    server.close()


def test_notify_without_systemd_is_a_no_op(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False


def test_telemetry_summary_while_recording():
    """The stats thread summarises while the pipeline records new stages: no race."""
    import threading

    from edge.service.telemetry import Telemetry

    tel = Telemetry(window=50)
    stop = threading.Event()

    def pipeline():
        i = 0
        while not stop.is_set():
            tel.record({"estimator_invoke": 5.0, f"stage_{i % 3000}": 1.0})  # new stages appear
            i += 1

    t = threading.Thread(target=pipeline)
    t.start()
    try:
        for _ in range(10):
            summary = tel.summary()
            assert summary["frames"] >= 0 and "latency_ms" in summary
    finally:
        stop.set()
        t.join()
    assert tel.summary()["latency_ms"]["estimator_invoke"]["p50"] == 5.0
