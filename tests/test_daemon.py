"""The daemon end to end: real video in, a real Mosquitto (started per test), a real subscriber."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .broker import PASSWORD, USER, Subscriber

SCHEMA = Path(__file__).resolve().parent.parent / "edge" / "service" / "schema" / "pose.schema.json"


def start_daemon(*args: str, env: dict | None = None, stdout=subprocess.PIPE) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "edge.service.cli", "run", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )


def finish(proc: subprocess.Popen, timeout: float = 60) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, (out or b"").decode(), err.decode()


@pytest.fixture(scope="module")
def validator():
    jsonschema = pytest.importorskip("jsonschema")
    return jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))


def test_one_message_per_frame_and_status_sequence(media, models_ready, broker, validator):
    sub = Subscriber(broker, "blazepose/cam1/#")
    video = media / "video" / "synthetic_arms_up_tfjs.mp4"
    n = 40
    proc = start_daemon("--source", str(video), "--mqtt-host", "127.0.0.1",
                        "--mqtt-port", str(broker.port), "--device-id", "cam1", "--max-frames", str(n))  # fmt: skip
    code, _, err = finish(proc)
    assert code == 0, err
    assert sub.wait_for(lambda: sub.on("/status") and sub.on("/status")[-1][0] == b"offline")
    poses = [json.loads(p) for p, _ in sub.on("/pose")]
    assert [m["frame"] for m in poses] == list(range(n))  # one per frame, contiguous
    for message in poses:
        validator.validate(message)
        assert message["device"] == "cam1" and message["width"] == 576
        assert len(message["poses"]) == 1
    statuses = [p for p, _ in sub.on("/status")]
    assert statuses[0] == b"online" and statuses[-1] == b"offline"
    sub.close()
    # a late subscriber gets the retained final status
    late = Subscriber(broker, "blazepose/cam1/status")
    assert late.wait_for(lambda: late.on("/status") == [(b"offline", True)], 5)
    late.close()


def test_retained_online_and_will_on_kill_9(media, models_ready, broker):
    video = media / "video" / "synthetic_arms_up_tfjs.mp4"
    proc = start_daemon("--source", str(video), "--loop", "--realtime", "--mqtt-host", "127.0.0.1",
                        "--mqtt-port", str(broker.port), "--device-id", "cam2")  # fmt: skip
    try:
        sub = Subscriber(broker, "blazepose/cam2/#")
        assert sub.wait_for(lambda: len(sub.on("/pose")) >= 5, 30), proc.stderr.peek().decode()
        late = Subscriber(broker, "blazepose/cam2/status")
        assert late.wait_for(lambda: (b"online", True) in late.on("/status"), 5)
        late.close()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert sub.wait_for(lambda: sub.on("/status")[-1][0] == b"offline", 10)
        sub.close()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_sigterm_exits_cleanly_with_offline(media, models_ready, broker):
    video = media / "video" / "synthetic_arms_up_tfjs.mp4"
    proc = start_daemon("--source", str(video), "--loop", "--realtime", "--mqtt-host", "127.0.0.1",
                        "--mqtt-port", str(broker.port), "--device-id", "cam3")  # fmt: skip
    sub = Subscriber(broker, "blazepose/cam3/#")
    assert sub.wait_for(lambda: len(sub.on("/pose")) >= 3, 30)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code, _, err = finish(proc, 10)
    assert code == 0, err
    assert time.monotonic() - t0 < 5
    assert sub.wait_for(lambda: sub.on("/status")[-1] == (b"offline", False), 5)
    sub.close()


def test_reconnects_after_broker_restart(media, models_ready, broker_factory):
    broker = broker_factory()
    video = media / "video" / "synthetic_arms_up_tfjs.mp4"
    proc = start_daemon("--source", str(video), "--loop", "--realtime", "--mqtt-host", "127.0.0.1",
                        "--mqtt-port", str(broker.port), "--device-id", "cam4")  # fmt: skip
    try:
        sub = Subscriber(broker, "blazepose/cam4/#")
        assert sub.wait_for(lambda: len(sub.on("/pose")) >= 5, 30)
        sub.close()
        broker.stop()
        time.sleep(2)
        broker.start()
        sub = Subscriber(broker, "blazepose/cam4/#")
        assert sub.wait_for(lambda: len(sub.on("/pose")) >= 5, 40), "no pose after restart"
        assert b"online" in [p for p, _ in sub.on("/status")]  # re-announced on reconnect
        sub.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        code, _, err = finish(proc, 15)
    assert code == 0, err
    assert "disconnected from MQTT broker" in err


def write_config(path: Path, broker, password_file: Path, ca: Path | None) -> Path:
    tls = f'\n[mqtt.tls]\nenabled = true\nca_file = "{ca}"\n' if ca else ""
    path.write_text(
        f'[mqtt]\nhost = "localhost"\nport = {broker.port}\nusername = "{USER}"\n'
        f'password_file = "{password_file}"\ndevice_id = "cam5"\n{tls}'
    )
    return path


def test_tls_and_password_accepted(media, models_ready, broker_factory, tmp_path):
    broker = broker_factory("tls", auth=True, tls=True)
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    cfg = write_config(tmp_path / "c.toml", broker, secret, broker.certs["ca"])
    sub = Subscriber(broker, "blazepose/cam5/#", USER, PASSWORD)
    video = media / "video" / "synthetic_arms_up_tfjs.mp4"
    code, _, err = finish(
        start_daemon("--config", str(cfg), "--source", str(video), "--max-frames", "5")
    )
    assert code == 0, err
    assert sub.wait_for(lambda: len(sub.on("/pose")) == 5)
    assert PASSWORD not in err
    sub.close()


def test_wrong_password_refused_clearly(media, models_ready, broker_factory, tmp_path):
    broker = broker_factory("auth", auth=True)
    secret = tmp_path / "pw"
    secret.write_text("not-the-password")
    cfg = write_config(tmp_path / "c.toml", broker, secret, None)
    video = media / "video" / "synthetic_arms_up_tfjs.mp4"
    code, out, err = finish(start_daemon("--config", str(cfg), "--source", str(video)))
    assert code == 5
    assert "refused the connection" in err and "password" in err
    assert "not-the-password" not in err + out


def test_credentials_refused_after_start_stop_the_daemon_too(media, models_ready, broker_factory,
                                                            tmp_path):  # fmt: skip
    """The broker is down at start (the daemon runs on and retries); when it comes up and
    refuses the password, the daemon stops with exit 5 as it would have at start."""
    broker = broker_factory("late", auth=True)
    broker.stop()
    secret = tmp_path / "pw"
    secret.write_text("not-the-password")
    secret.chmod(0o600)
    cfg = write_config(tmp_path / "c.toml", broker, secret, None)
    with open(cfg, "a") as fh:
        fh.write("connect_timeout = 1.0\nreconnect_max_delay = 1.0\n")
    video = media / "video" / "synthetic_arms_up_tfjs.mp4"
    proc = start_daemon("--config", str(cfg), "--source", str(video), "--loop", "--realtime")
    time.sleep(3)
    assert proc.poll() is None  # unreachable broker: running on
    broker.start()
    code, out, err = finish(proc, 30)
    assert code == 5, err
    # (on a slow machine the broker may answer before the daemon runs: refused at start, also 5)
    assert "refused the connection" in err
    assert "not-the-password" not in err + out


def test_password_from_environment(media, models_ready, broker_factory, tmp_path):
    broker = broker_factory("env", auth=True)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[mqtt]\nport = {broker.port}\nusername = "{USER}"\ndevice_id = "cam6"\n')
    video = media / "video" / "synthetic_arms_up_tfjs.mp4"
    proc = start_daemon("--config", str(cfg), "--source", str(video), "--max-frames", "2",
                        env={"BLAZEPOSE_EDGE_MQTT_PASSWORD": PASSWORD})  # fmt: skip
    code, _, err = finish(proc)
    assert code == 0, err


def test_stdout_mode_prints_valid_messages(media, models_ready, validator):
    folder = media / "images"
    proc = start_daemon("--source", str(folder), "--mqtt-host", "none", "--max-frames", "6",
                        "--device-id", "x")  # fmt: skip
    code, out, err = finish(proc)
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [m["frame"] for m in lines] == list(range(6))
    for message in lines:
        validator.validate(message)


def test_missing_source_explains(models_ready, tmp_path):
    code, _, err = finish(
        start_daemon("--source", str(tmp_path / "nope.mp4"), "--mqtt-host", "none")
    )
    assert code == 4
    assert "not a camera" in err and "video file" in err


def test_camera_absent_at_start_runs_degraded_and_retries(models_ready, broker):
    """A camera that boots slower than the board: exit 4 at once would use up systemd's start
    limit in seconds; the daemon runs on, says why, and reopens it with backoff instead."""
    sub = Subscriber(broker, "blazepose/late/#")
    proc = start_daemon("--source", "/dev/video99", "--mqtt-host", "127.0.0.1",
                        "--mqtt-port", str(broker.port), "--device-id", "late")  # fmt: skip
    try:
        degraded = lambda: any(p.startswith(b"degraded: camera lost") for p, _ in sub.on("/status"))  # noqa: E731
        assert sub.wait_for(degraded, 30)
        time.sleep(2)
        assert proc.poll() is None  # still running, retrying
    finally:
        proc.send_signal(signal.SIGTERM)
        code, _, err = finish(proc, 20)
    assert code == 0, err
    assert "running on and reopening it with backoff" in err
    sub.close()


def _fake_picamera2(folder: Path, body: str) -> dict:
    """An environment whose ``picamera2`` package is ``body``."""
    package = folder / "fake" / "picamera2"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(body)
    return {
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(folder / "fake"), os.environ.get("PYTHONPATH")])
        )
    }


def test_pi_camera_absent_at_start_runs_degraded_and_retries(models_ready, tmp_path):
    """picamera2 installed but no camera found yet (its ``Picamera2()`` raises IndexError): the
    default source, the Pi camera, is retried like any other camera, not exit 4 at once."""
    env = _fake_picamera2(tmp_path, "class Picamera2:\n    def __init__(self, n=0):\n"
                                    "        raise IndexError('list index out of range')\n")  # fmt: skip
    log = tmp_path / "err.log"
    with open(log, "wb") as err_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge.service.cli", "run", "--mqtt-host", "none",
             "--max-frames", "5"],
            stdout=subprocess.DEVNULL, stderr=err_file, env={**os.environ, **env},
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while "reopen failed" not in log.read_text() and time.monotonic() < deadline:
                assert proc.poll() is None, log.read_text()
                time.sleep(0.2)
            time.sleep(1)
            assert proc.poll() is None, log.read_text()  # still running, retrying
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(20)
    err = log.read_text()
    assert code == 0, err
    assert err.count("status degraded: camera lost: cannot start Pi camera 0") == 1  # said once
    assert "running on and reopening it with backoff" in err


def test_pi_camera_without_picamera2_exits_at_once(models_ready, tmp_path):
    """No picamera2 cannot mend by waiting: exit 4 with the hint, not a retry loop."""
    env = _fake_picamera2(tmp_path, "raise ImportError('no libcamera')\n")
    proc = start_daemon("--source", "picam", "--mqtt-host", "none", env=env)
    code, _, err = finish(proc, 60)
    assert code == 4, err
    assert "python3-picamera2" in err


def test_bad_config_names_the_key(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[mqtt]\nprot = 1883\n")
    code, _, err = finish(start_daemon("--config", str(cfg)))
    assert code == 2
    assert "unknown key mqtt.prot" in err


def test_stats_topic(media, models_ready, broker, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[mqtt]\nstats_interval = 0.5\n")
    video = media / "video" / "synthetic_arms_up_tfjs.mp4"
    proc = start_daemon("--config", str(cfg), "--source", str(video), "--loop", "--realtime",
                        "--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port),
                        "--device-id", "cam7")  # fmt: skip
    try:
        sub = Subscriber(broker, "blazepose/cam7/stats")

        def settled():  # a report made after a second of steady running
            reports = [json.loads(p) for p, _ in sub.on("/stats")]
            return [r for r in reports if r["frames"] >= 60 and r["uptime_s"] > 3]

        assert sub.wait_for(lambda: settled(), 40), sub.on("/stats")
        stats = settled()[0]
        sub.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        finish(proc, 15)
    assert stats["device"] == "cam7" and stats["frames"] > 0
    assert 5 < stats["fps"] < 40  # a 30 fps file paced in real time
    for stage in ("wait", "estimator_pre", "estimator_invoke", "estimator_post", "smoothing",
                  "publish", "total"):  # fmt: skip
        assert stats["latency_ms"][stage]["p95"] >= stats["latency_ms"][stage]["p50"] >= 0
    assert stats["rss_mb"] > 50 and stats["cpu_percent"] >= 0 and stats["threads"] >= 3
    assert stats["publish"]["connected"] is True
    assert "dropped_frames" in stats and "temperature_c" in stats
    assert 0 < stats["detector_share"] < 0.5
    assert stats["variant"] in ("float", "int8")  # auto resolved to the variant in use
    assert stats["model"] == "full"


def test_systemd_notifications(media, models_ready, tmp_path):
    import socket

    path = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(20)
    video = media / "video" / "synthetic_arms_up_tfjs.mp4"
    proc = start_daemon("--source", str(video), "--realtime", "--mqtt-host", "none",
                        "--max-frames", "30", env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"},
                        stdout=subprocess.DEVNULL)  # fmt: skip
    messages = []
    try:
        while not any(m.startswith(b"STOPPING=1") for m in messages):
            messages.append(server.recv(200))
    finally:
        code, _, err = finish(proc)
        server.close()
    assert code == 0, err
    ready = next(i for i, m in enumerate(messages) if m.startswith(b"READY=1"))
    assert ready < len(messages) - 1
    assert sum(m == b"WATCHDOG=1" for m in messages) >= 5  # about 1 s of frames, pings every 0.1 s


class RecordingSink:
    """A sink as the daemon sees one (edge.service.sinks.base.Sink)."""

    def __init__(self, name: str, fail: bool = False):
        from edge.service.sinks import Sink

        self.sink = type(name, (Sink,), {"name": name})()
        self.sink.frame = self.frame
        self.sink.set_status = self.status
        self.sink.stats = self.stats
        self.sink.report = lambda: {"frames": len(self.frames)}
        self.fail = fail
        self.frames, self.statuses, self.stats_docs = [], [], []

    def frame(self, result):
        self.frames.append((result.index, len(result.poses), result.image.shape))
        if self.fail:
            raise RuntimeError("this sink is broken")

    def status(self, status):
        self.statuses.append(status)

    def stats(self, stats):
        self.stats_docs.append(stats)


def test_every_sink_gets_every_frame_and_a_broken_one_harms_none(models_ready, tmp_path):
    """The daemon hands each frame's result, status and stats to every sink and knows nothing
    else of them: a sink that raises is logged, and the others (and the daemon) go on."""
    from edge.service.config import load
    from edge.service.daemon import Daemon

    cfg = load(None, {"source.uri": "demo", "mqtt.host": "none", "daemon.max_frames": 30,
                      "mqtt.stats_interval": 0.5})  # fmt: skip
    broken, good = RecordingSink("broken", fail=True), RecordingSink("good")
    daemon = Daemon(cfg, sinks=[broken.sink, good.sink])
    daemon._camera_status(None)
    assert daemon.run() == 0
    assert [f[0] for f in good.frames] == list(range(30))
    assert all(n == 1 and shape == (576, 576, 3) for _, n, shape in good.frames)
    assert len(broken.frames) == 30  # it kept being called
    assert good.statuses == ["online"]
    stats = daemon.stats()
    assert stats["good"] == {"frames": 30} and stats["broken"] == {"frames": 30}
