"""Honest about delivery: the broker's absence is said at once, each connection change is one
line (none of paho's own), the exit summary counts what was delivered and a run that ends by
itself having delivered nothing exits 6."""

from __future__ import annotations

import io
import logging
import re
import signal
import subprocess
import threading
import time
from datetime import datetime

import pytest

from edge.service.daemon import EXIT_UNDELIVERED

from .broker import Subscriber, free_port
from .test_daemon import finish, start_daemon

PAHO_LINE = re.compile(r"paho|Client is not connected|Socket: None")


def stamp(line: str) -> float:
    """The asctime of a log line (``2026-01-02 03:04:05,678 LEVEL name: ...``), in seconds."""
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def line_with(err: str, text: str) -> str:
    lines = [line for line in err.splitlines() if text in line]
    assert len(lines) == 1, (text, err)
    return lines[0]


class Lines:
    """A running daemon's stderr, read line by line in a thread (to wait for a line)."""

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.lines, self.lock = proc, [], threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for raw in self.proc.stderr:
            with self.lock:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = [line for line in self.lines if text in line]
            if found:
                return found[0]
            time.sleep(0.05)
        raise AssertionError(f"no line with {text!r} in {timeout} s:\n{self.text}")

    def finish(self, timeout: float = 20.0) -> tuple[int, str]:
        code = self.proc.wait(timeout)
        self.thread.join(5)
        return code, self.text

    @property
    def text(self) -> str:
        with self.lock:
            return "\n".join(self.lines)


def test_no_broker_is_said_at_once_then_summarised_and_exit_6(models_ready):
    """Nothing listens on the port: one warning naming host:port and the reason, with no stall
    before the pipeline runs; none of paho's lines; a summary; exit 6 (nothing delivered)."""
    port = free_port()
    code, _, err = finish(start_daemon("--source", "demo", "--max-frames", "30",
                                       "--mqtt-host", "127.0.0.1", "--mqtt-port", str(port)))  # fmt: skip
    assert code == EXIT_UNDELIVERED, err
    warning = line_with(err, f"MQTT broker 127.0.0.1:{port} unreachable (connection refused)")
    assert "WARNING" in warning
    assert "pose messages are dropped until it answers, retrying every 1 to 10 s" in warning
    assert sum("WARNING" in line and "MQTT broker" in line for line in err.splitlines()) == 1
    opened, running = line_with(err, "opened file"), line_with(err, "running: ")
    assert stamp(warning) - stamp(opened) < 1.0  # said at once, not after a connect timeout
    assert stamp(running) - stamp(opened) < 1.5  # the pipeline does not wait for the broker
    assert "0 of 30 pose messages delivered, 30 dropped: broker unreachable" in err
    assert "no pose message was delivered; exit code 6" in err
    assert not PAHO_LINE.search(err), err


def test_broker_present_everything_delivered(models_ready, broker):
    sub = Subscriber(broker, "blazepose/dlv1/pose")
    code, _, err = finish(start_daemon("--source", "demo", "--max-frames", "200",
                                       "--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port),
                                       "--device-id", "dlv1"), 120)  # fmt: skip
    assert code == 0, err
    assert "INFO" in line_with(err, "200 of 200 pose messages delivered")
    assert "INFO" in line_with(err, f"connected to MQTT broker 127.0.0.1:{broker.port}")
    assert "WARNING" not in err and not PAHO_LINE.search(err), err
    assert sub.wait_for(lambda: len(sub.on("/pose")) == 200)
    sub.close()


def test_stop_by_signal_exits_0_with_the_summary(models_ready):
    """A service stop is not a failure, delivered or not; the summary still says what was lost."""
    port = free_port()
    proc = start_daemon("--source", "demo", "--realtime", "--mqtt-host", "127.0.0.1",
                        "--mqtt-port", str(port))  # fmt: skip
    lines = Lines(proc)
    try:
        lines.wait_for("running: ")
        time.sleep(1.5)
    finally:
        proc.send_signal(signal.SIGTERM)
    code, err = lines.finish()
    assert code == 0, err
    summary = line_with(err, " delivered")  # "1 pose message" on a slow machine
    assert re.search(
        r"0 of (\d+) pose messages? delivered, \1 dropped: broker unreachable", summary
    )
    assert not PAHO_LINE.search(err), err


def test_one_line_per_connection_change(models_ready, broker_factory, tmp_path):
    """Lost (with the reason and what happens meanwhile) and reconnected (after how long), once
    each, although paho retries several times; none of paho's own lines."""
    broker = broker_factory()
    cfg = tmp_path / "c.toml"
    cfg.write_text("[mqtt]\nreconnect_max_delay = 1\n")
    proc = start_daemon("--config", str(cfg), "--source", "demo", "--realtime",
                        "--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port))  # fmt: skip
    lines = Lines(proc)
    try:
        lines.wait_for("running: ")
        time.sleep(1)
        broker.stop()
        lines.wait_for("disconnected from MQTT broker")
        time.sleep(3.5)  # about three failed attempts, one second apart
        broker.start()
        lines.wait_for("reconnected to MQTT broker")
        time.sleep(1)
    finally:
        proc.send_signal(signal.SIGTERM)
    code, err = lines.finish()
    assert code == 0, err
    lost = line_with(err, f"disconnected from MQTT broker 127.0.0.1:{broker.port}")
    assert "WARNING" in lost and "(connection lost)" in lost and "retrying every 1 s" in lost
    back = line_with(err, "reconnected to MQTT broker")
    assert float(re.search(r"after (\d+\.\d) s", back).group(1)) >= 3
    assert "unreachable (" not in err, err  # failed attempts while down: not a new change
    assert not PAHO_LINE.search(err), err
    summary = line_with(err, " pose messages delivered")
    assert re.search(r"dropped: broker unreachable$", summary), summary


def test_spool_keeps_what_it_could_not_deliver_and_says_so(models_ready, broker_factory, tmp_path):
    broker = broker_factory()
    broker.stop()
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[mqtt]\nqos_pose = 1\n[spool]\ndir = "{tmp_path / "spool"}"\n')
    args = ("--config", str(cfg), "--source", "demo", "--mqtt-host", "127.0.0.1",
            "--mqtt-port", str(broker.port), "--device-id", "dlv2")  # fmt: skip
    code, _, err = finish(start_daemon(*args, "--max-frames", "20"))
    assert code == EXIT_UNDELIVERED, err
    assert "pose messages are kept in the spool until it answers" in err
    assert "0 of 20 pose messages delivered; 20 kept in the spool for the next start" in err
    broker.start()
    code, _, err = finish(start_daemon(*args, "--max-frames", "10"))
    assert code == 0, err
    line_with(err, "10 of 10 pose messages delivered; also delivered: 20 left in the spool by an "
                   "earlier run")  # fmt: skip


def test_stdout_counts_as_delivered_when_written(models_ready):
    code, out, err = finish(start_daemon("--source", "demo", "--max-frames", "5",
                                         "--mqtt-host", "none"))  # fmt: skip
    assert code == 0, err
    assert len(out.splitlines()) == 5
    assert "5 of 5 pose messages written to stdout" in err


# --- in process: the publisher's accounting -----------------------------------------------------


@pytest.mark.parametrize("qos", [0, 1])
def test_publisher_counts_pose_messages_only(broker, qos):
    """Status and stats messages are not pose messages; QoS 1 counts acknowledgements."""
    from edge.service.config import MqttConfig
    from edge.service.sinks.mqtt import MqttPublisher

    sub = Subscriber(broker, "blazepose/dlv3/pose")
    publisher = MqttPublisher(MqttConfig(host="127.0.0.1", port=broker.port, qos_pose=qos,
                                         qos_stats=1), "dlv3")  # fmt: skip
    publisher.start()
    for i in range(300):
        publisher.publish_pose(b"%d" % i)
        if i % 50 == 0:
            publisher.publish_stats(b"{}")
            publisher.set_status("online")
    assert sub.wait_for(lambda: len(sub.on("/pose")) == 300)
    assert publisher.report()["pose"]["messages"] == 300
    publisher.stop()
    sub.close()
    report = publisher.delivery(final=True)
    assert (report.produced, report.delivered, report.lost, report.pending) == (300, 300, 0, 0)
    assert report.complete and report.summary() == "300 of 300 pose messages delivered"


@pytest.mark.parametrize("spool", [False, True])
def test_dropped_offline_counts_pose_messages_only(tmp_path, spool):
    """Stats messages dropped while the broker is away are not pose messages dropped."""
    from edge.service.config import MqttConfig
    from edge.service.sinks.mqtt import MqttPublisher
    from edge.service.sinks.spool import Spool

    port = free_port()
    publisher = MqttPublisher(
        MqttConfig(host="127.0.0.1", port=port, qos_pose=1 if spool else 0),
        "cnt1",
        Spool(tmp_path / "spool") if spool else None,
    )
    publisher.start()
    for i in range(5):
        publisher.publish_pose(b"%d" % i)
    for _ in range(3):
        publisher.publish_stats(b"{}")
    report = publisher.report()
    publisher.stop()
    assert report["dropped_offline"] == report["pose"]["dropped"].get("offline", 0)
    assert report["dropped_offline"] == (0 if spool else 5)
    assert report["dropped_queue_full"] == 0


def test_publisher_start_does_not_wait_for_an_absent_broker(caplog):
    from edge.service.config import MqttConfig
    from edge.service.sinks.mqtt import MqttPublisher

    port = free_port()
    publisher = MqttPublisher(MqttConfig(host="127.0.0.1", port=port, qos_pose=1,
                                         queue_limit=5), "dlv4")  # fmt: skip
    caplog.set_level(logging.INFO)
    t0 = time.monotonic()
    publisher.start()
    assert time.monotonic() - t0 < 0.5
    for i in range(8):
        publisher.publish_pose(b"%d" % i)
    time.sleep(2.5)  # two more failed attempts: no new line
    publisher.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        f"MQTT broker 127.0.0.1:{port} unreachable (connection refused); pose messages wait in "
        "memory (at most mqtt.queue_limit, 5) until it answers, retrying every 1 to 10 s"
    ]
    assert not [r for r in caplog.records if r.name.startswith("paho") and r.levelno > 10]
    report = publisher.delivery(final=True)
    assert report.summary() == (
        "0 of 8 pose messages delivered, 8 dropped: 5 broker unreachable, "
        "3 queue full (mqtt.queue_limit)"
    )


def test_summary_wording():
    from edge.service.sinks import Delivery, StdoutPublisher

    assert Delivery(10, 10).summary() == "10 of 10 pose messages delivered"
    mixed = Delivery(10, 4, {"offline": 5, "spool_full": 1}, pending=3, spool=True, earlier=2)
    assert mixed.summary() == (
        "4 of 10 pose messages delivered, 6 dropped: 5 broker unreachable, 1 spool full "
        "(spool.max_mb); 3 kept in the spool for the next start; also delivered: 2 left in the "
        "spool by an earlier run"
    )
    assert not mixed.complete
    closed = io.StringIO()
    out = StdoutPublisher(closed)
    out.publish_pose(b"{}")
    closed.close()
    out.publish_pose(b"{}")
    assert (
        out.delivery().summary()
        == "1 of 2 pose messages written to stdout, 1 dropped: stdout closed"
    )


@pytest.fixture
def silent_port():
    """A loopback port whose connections hang (a broker host that drops packets): a listener
    that never accepts, its queue already full, so the kernel ignores further SYNs."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.2)
    yield port
    for sock in [*fillers, server]:
        sock.close()


def test_silent_broker_holds_up_neither_start_nor_stop(silent_port, caplog):
    from edge.service.config import MqttConfig
    from edge.service.sinks.mqtt import START_WAIT_S, MqttPublisher

    publisher = MqttPublisher(MqttConfig(host="127.0.0.1", port=silent_port), "dlv5")
    caplog.set_level(logging.INFO)
    t0 = time.monotonic()
    publisher.start()
    assert time.monotonic() - t0 < START_WAIT_S + 0.5
    publisher.publish_pose(b"{}")
    t0 = time.monotonic()
    publisher.stop()  # the connection attempt (up to mqtt.connect_timeout, 10 s) is not waited for
    assert time.monotonic() - t0 < 2.0
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        f"MQTT broker 127.0.0.1:{silent_port} not answering (no reply within 1 s); pose messages "
        "are dropped until it answers, retrying every 1 to 10 s"
    ]
    assert publisher.delivery(final=True).summary() == (
        "0 of 1 pose message delivered, 1 dropped: broker unreachable"
    )
