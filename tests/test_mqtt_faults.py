"""Broker-side faults that must not pass as "unreachable" or go unseen (issue 14): a TLS
certificate the daemon will never accept (exit 5, the cause named), another client taking the
session over (a default client id nobody can guess; one line when it happens), paho's network
thread dying (exit 1), and the publish counters counting pose messages only. All against a real
Mosquitto."""

from __future__ import annotations

import logging
import re
import signal
import stat
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.service.config import Config, MqttConfig, TlsConfig
from edge.service.exits import EXIT_BROKER, EXIT_FAILED
from edge.service.sinks.clientid import SUFFIX_FILE, resolve_client_id
from edge.service.sinks.mqtt import MqttPublisher, PublishError, send_once

from .broker import Subscriber, free_port
from .test_daemon import finish, start_daemon
from .test_delivery import Lines, line_with

# certificate served, CA the client trusts, what the error line must say
TLS_CASES = {
    "wrong CA": (
        "cert",
        "other_ca",
        "the broker's certificate is not signed by a CA in mqtt.tls.ca_file ({ca})",
    ),  # fmt: skip
    "expired": ("expired", "ca", "certificate has expired (renew the broker's certificate"),
    "host name": (
        "other_host",
        "ca",
        "Hostname mismatch, certificate is not valid for "
        "'localhost' (the broker's certificate is issued for another name than "
        "mqtt.host 'localhost'",
    ),  # fmt: skip
}


@pytest.fixture
def tls_broker(broker_factory):
    return broker_factory("tls", tls=True, bad_certs=True)


def tls_config(path, broker, ca, device="tls1"):
    path.write_text(
        f'[mqtt]\nhost = "localhost"\nport = {broker.port}\ndevice_id = "{device}"\n'
        "reconnect_max_delay = 1.0\n"
        f'[mqtt.tls]\nenabled = true\nca_file = "{ca}"\n'
    )
    return str(path)


@pytest.mark.parametrize("case", TLS_CASES)
def test_a_certificate_never_accepted_stops_the_daemon_naming_why(
    models_ready, tls_broker, tmp_path, case
):
    """Exit 5 at once, one line naming the cause; not 'unreachable; retrying' and exit 0."""
    served, trusted, cause = TLS_CASES[case]
    ca = tls_broker.certs[trusted]
    tls_broker.stop()
    tls_broker.serve(served)
    tls_broker.start()
    cfg = tls_config(tmp_path / "c.toml", tls_broker, ca)
    code, _, err = finish(start_daemon("--config", cfg, "--source", "demo", "--max-frames", "30"))
    assert code == EXIT_BROKER, err
    line = line_with(err, "TLS certificate verification failed")
    assert f"MQTT broker localhost:{tls_broker.port}: " in line
    assert cause.format(ca=ca) in line and "retrying cannot help" in line
    assert "unreachable (" not in err and "Traceback" not in err, err  # no retry line


def test_a_certificate_rejected_on_a_later_reconnect_stops_the_daemon(
    models_ready, tls_broker, tmp_path
):
    """Connected, then the broker comes back with an expired certificate: exit 5, as at start."""
    cfg = tls_config(tmp_path / "c.toml", tls_broker, tls_broker.certs["ca"])
    proc = start_daemon("--config", cfg, "--source", "demo", "--realtime")
    lines = Lines(proc)
    try:
        lines.wait_for(f"connected to MQTT broker localhost:{tls_broker.port}", 60)
        tls_broker.stop()
        tls_broker.serve("expired")
        tls_broker.start()
        code, err = lines.finish(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == EXIT_BROKER, err
    line = line_with(err, "certificate has expired")
    assert "ERROR" in line and line.endswith("retrying cannot help; stopping")
    assert "unreachable (" not in err, err  # no retry line (the summary's reason aside)


def test_a_certificate_not_valid_yet_is_retried(tls_broker, caplog):
    """Valid from 2099: this machine's clock may be behind (a Pi without network time yet), so
    the daemon runs on and retries, saying why."""
    tls_broker.stop()
    tls_broker.serve("future")
    tls_broker.start()
    cfg = MqttConfig(host="localhost", port=tls_broker.port,
                     tls=TlsConfig(enabled=True, ca_file=str(tls_broker.certs["ca"])))  # fmt: skip
    publisher = MqttPublisher(cfg, "tls2")
    caplog.set_level(logging.INFO)
    publisher.start()  # does not raise
    time.sleep(1.5)
    assert publisher.fatal is None
    publisher.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(
        f"MQTT broker localhost:{tls_broker.port} unreachable (TLS certificate verification "
        "failed: certificate is not yet valid (is this machine's clock behind?"
    )


@pytest.mark.parametrize("case", TLS_CASES)
def test_send_once_names_the_certificate_problem(tls_broker, case):
    """``ha remove``'s one-off connection says what failed too."""
    served, trusted, cause = TLS_CASES[case]
    ca = tls_broker.certs[trusted]
    tls_broker.stop()
    tls_broker.serve(served)
    tls_broker.start()
    cfg = MqttConfig(host="localhost", port=tls_broker.port,
                     tls=TlsConfig(enabled=True, ca_file=str(ca)))  # fmt: skip
    with pytest.raises(PublishError) as raised:
        send_once(cfg, [("blazepose/x/t", b"", True)], "remove-test", timeout=5)
    assert str(raised.value).startswith(
        f"MQTT broker localhost:{tls_broker.port}: TLS certificate verification failed: "
    )
    assert cause.format(ca=ca) in str(raised.value)


# --- the client id -------------------------------------------------------------------------------


def test_default_client_id_is_generated_once_and_kept(tmp_path, caplog):
    state = tmp_path / "state"
    first = resolve_client_id(MqttConfig(), "porch", state)
    assert re.fullmatch(r"blazepose-edge-porch-[0-9a-f]{16}", first.value)
    kept = state / SUFFIX_FILE
    assert kept.read_text() == first.value.rsplit("-", 1)[1] + "\n"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert [p.name for p in state.iterdir()] == [SUFFIX_FILE]  # no temporary file left
    assert first.source == f"generated for this installation, kept in {kept}"
    again = resolve_client_id(MqttConfig(), "porch", state)
    assert again == first  # stable across starts
    # the device id may change; the installation's random part stays
    assert (
        resolve_client_id(MqttConfig(), "yard", state).value
        == "blazepose-edge-yard-" + (first.value.rsplit("-", 1)[1])
    )
    other = resolve_client_id(MqttConfig(), "porch", tmp_path / "another-installation")
    assert other.value != first.value
    explicit = resolve_client_id(MqttConfig(client_id="porch-cam"), "porch", state)
    assert (explicit.value, explicit.source) == ("porch-cam", "set in mqtt.client_id")
    assert first.value not in caplog.text  # the generated id is never logged


def test_default_client_id_from_the_state_directory(tmp_path, monkeypatch):
    """$STATE_DIRECTORY under systemd (its first entry), else ~/.local/state/blazepose-edge."""
    monkeypatch.setenv("STATE_DIRECTORY", f"{tmp_path / 'svc'}:{tmp_path / 'other'}")
    resolve_client_id(MqttConfig(), "porch")
    assert (tmp_path / "svc" / SUFFIX_FILE).is_file()
    monkeypatch.delenv("STATE_DIRECTORY")
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    resolve_client_id(MqttConfig(), "porch")
    assert (tmp_path / "home/.local/state/blazepose-edge" / SUFFIX_FILE).is_file()
    assert Config().spool_dir() == tmp_path / "home/.local/state/blazepose-edge/spool" / (
        Config().device_id
    )


def test_unwritable_state_folder_gives_a_random_id_per_run(tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    state = blocker / "state"  # cannot be made, whoever runs the test (root included)
    ids = {resolve_client_id(MqttConfig(), "porch", state).value for _ in range(2)}
    assert len(ids) == 2 and all(re.fullmatch(r"blazepose-edge-porch-[0-9a-f]{16}", i) for i in ids)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and warnings[0].startswith(
        f"MQTT client id: {state / SUFFIX_FILE} (cannot write it: "
    )
    assert "using a random one for this run" in warnings[0]


def test_a_damaged_client_id_file_is_replaced(tmp_path, caplog):
    state = tmp_path / "state"
    state.mkdir()
    (state / SUFFIX_FILE).write_bytes(b"\xff\x00garbage")
    made = resolve_client_id(MqttConfig(), "porch", state)
    assert (state / SUFFIX_FILE).read_text().strip() == made.value.rsplit("-", 1)[1]
    assert "did not hold a client id suffix" in caplog.text
    assert resolve_client_id(MqttConfig(), "porch", state) == made


class Intruder:
    """Another client connecting with a given client id, reconnecting when it is thrown off (as a
    second daemon with the same id would)."""

    def __init__(self, broker, client_id: str):
        self.events: list[str] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda c, u, f, rc, p: self.events.append("connected")
        self.client.on_disconnect = lambda c, u, f, rc, p: self.events.append("disconnected")
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_default_client_id_cannot_be_guessed_and_a_takeover_is_said(models_ready, broker,
                                                                    tmp_path):  # fmt: skip
    """A client connecting as ``blazepose-edge-<device_id>`` (the old default) no longer knocks
    the daemon off; one with the daemon's real id does, and the daemon says so once, naming
    where its id comes from but not the id."""
    state = tmp_path / "state"
    sub = Subscriber(broker, "blazepose/gate/pose")
    proc = start_daemon("--source", "demo", "--realtime", "--mqtt-host", "127.0.0.1",
                        "--mqtt-port", str(broker.port), "--device-id", "gate",
                        env={"STATE_DIRECTORY": str(state)})  # fmt: skip
    lines = Lines(proc)
    try:
        lines.wait_for("connected to MQTT broker", 60)
        guess = Intruder(broker, "blazepose-edge-gate")
        time.sleep(3)
        assert guess.events == ["connected"], guess.events  # nobody was thrown off
        guess.close()
        before = len(sub.on("/pose"))
        assert sub.wait_for(lambda: len(sub.on("/pose")) > before + 5, 10)
        assert "disconnected" not in lines.text, lines.text
        suffix = (state / SUFFIX_FILE).read_text().strip()
        same = Intruder(broker, f"blazepose-edge-gate-{suffix}")
        warning = lines.wait_for("taking the session over", 40)
        time.sleep(4)  # the tug of war goes on: no more lines about it
        same.close()
        time.sleep(2)
    finally:
        proc.send_signal(signal.SIGTERM)
    code, err = lines.finish()
    assert code == 0, err
    assert "WARNING" in warning
    assert re.search(
        r"closed the connection 3 times in \d+ s, accepting the next one at once", warning
    )
    assert (
        f"same client id (generated for this installation, kept in {state / SUFFIX_FILE})"
        in warning
    )
    assert "cloned SD card" in warning
    assert suffix not in err
    assert len([line for line in err.splitlines() if "disconnected from MQTT broker" in line]) == 3
    assert err.count("taking the session over") == 1
    sub.close()


def test_a_takeover_of_an_explicit_client_id_names_the_key(broker, caplog):
    publisher = MqttPublisher(MqttConfig(host="127.0.0.1", port=broker.port,
                                         client_id="porch-cam"), "porch")  # fmt: skip
    caplog.set_level(logging.INFO)
    publisher.start()
    same = Intruder(broker, "porch-cam")
    deadline = time.monotonic() + 30
    while "taking the session over" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.1)
    same.close()
    publisher.stop()
    line = next(r for r in caplog.records if "taking the session over" in r.getMessage())
    assert line.levelno == logging.WARNING
    assert "same client id (set in mqtt.client_id)" in line.getMessage()
    assert "give every client its own mqtt.client_id" in line.getMessage()


def test_paho_debug_lines_leave_the_client_id_out(broker, caplog):
    publisher = MqttPublisher(MqttConfig(host="127.0.0.1", port=broker.port), "quiet")
    caplog.set_level(logging.DEBUG)
    publisher.start()
    assert publisher.connected.wait(5)
    publisher.stop()
    connect = [r.getMessage() for r in caplog.records if "Sending CONNECT" in r.getMessage()]
    assert connect and all("client_id=<client id>" in m for m in connect), connect
    assert publisher.client_id.value not in caplog.text


# --- paho's network thread ---------------------------------------------------------------------

LONG_LABEL = "a" * 64 + ".example"  # a host name label longer than 63: idna raises UnicodeError


def test_a_dead_network_thread_is_reported(caplog):
    """The exception that ends paho's thread (here inside its own getaddrinfo call) is logged
    with its traceback and reported as ``broken``, instead of only a traceback on stderr."""
    publisher = MqttPublisher(MqttConfig(host=LONG_LABEL, port=free_port()), "dead1")
    caplog.set_level(logging.INFO)
    publisher.start()
    deadline = time.monotonic() + 5
    while publisher.broken is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert publisher.broken is not None and publisher.broken.startswith(
        "MQTT network thread failed (UnicodeError: encoding with 'idna' codec failed"
    )
    record = next(r for r in caplog.records if r.getMessage() == "MQTT network thread failed")
    assert record.levelno == logging.ERROR and record.exc_info[0] is UnicodeError
    t0 = time.monotonic()
    publisher.stop()
    assert time.monotonic() - t0 < 2
    assert publisher.broken is None  # stopped: nothing more to report


def test_a_client_id_paho_cannot_encode_is_a_dead_thread_too(broker):
    """Issue 14's repro (a 70,000-character client id): struct.error inside paho's CONNECT."""
    publisher = MqttPublisher(
        MqttConfig(host="127.0.0.1", port=broker.port, client_id="x" * 70_000), "dead3"
    )
    publisher.start()
    deadline = time.monotonic() + 5
    while publisher.broken is None and time.monotonic() < deadline:
        time.sleep(0.05)
    broken = publisher.broken
    publisher.stop()
    assert broken == (
        "MQTT network thread failed (struct.error: 'H' format requires 0 <= number <= 65535): "
        "nothing can be sent"
    )


def test_the_daemon_stops_when_the_network_thread_dies(models_ready, caplog):
    """Exit 1 (systemd restarts it), not running on delivering nothing and exit 0."""
    from edge.service.daemon import Daemon

    cfg = Config()
    cfg.source.uri = "demo"
    cfg.mqtt.host = LONG_LABEL
    cfg.mqtt.device_id = "dead2"
    cfg.daemon.max_frames = 300
    daemon = Daemon(cfg)
    caplog.set_level(logging.INFO)
    assert daemon.run() == EXIT_FAILED
    assert daemon.processed < 300
    stopping = [r.getMessage() for r in caplog.records if r.getMessage().endswith("; stopping")]
    assert len(stopping) == 1 and stopping[0].startswith(
        "MQTT network thread failed (UnicodeError: "
    )
