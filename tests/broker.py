"""A real Mosquitto for tests: own config, own free loopback port, optional password and TLS,
optionally bridged to another one."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

USER, PASSWORD = "pose", "s3cret-pw"
# what a board's broker forwards to the central one (docs/deployment.md, "Fleet"): the daemon's
# topics and its Home Assistant device out, Home Assistant's birth message in
BRIDGE_TOPICS = ("blazepose/# out 1", "homeassistant/device/# out 1", "homeassistant/status in 1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certs(folder: Path) -> dict[str, Path]:
    """A throw-away CA and a server certificate for localhost / 127.0.0.1."""

    def run(*args):
        subprocess.run(args, cwd=folder, check=True, capture_output=True)

    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=blazepose-edge-test-ca", "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", "server.key", "-out", "server.csr")  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt")  # fmt: skip
    return {"ca": folder / "ca.crt", "cert": folder / "server.crt", "key": folder / "server.key"}


def make_bad_certs(folder: Path) -> dict[str, Path]:
    """Beside ``make_certs``' files (same key): server certificates a client must refuse, signed
    by the test CA but expired in 2020 (``expired``), valid only from 2099 (``future``) or issued
    for another host name (``other_host``); and a CA that signed none of them (``other_ca``).
    ``openssl ca`` sets any validity period (``openssl x509`` only counts days from now)."""

    def run(*args):
        subprocess.run(args, cwd=folder, check=True, capture_output=True)

    (folder / "ca.cnf").write_text(
        "[ca]\ndefault_ca = test\n[test]\ndatabase = index.txt\nnew_certs_dir = .\n"
        "serial = serial\ndefault_md = sha256\npolicy = any\nunique_subject = no\n"
        "[any]\ncommonName = supplied\n"
        "[localhost]\nsubjectAltName = DNS:localhost,IP:127.0.0.1\n"
        "[other_host]\nsubjectAltName = DNS:broker.example\n"
    )
    (folder / "index.txt").write_text("")
    (folder / "serial").write_text("1000\n")
    out = {}
    for name, start, end, names in (
        ("expired", "20200101000000Z", "20200201000000Z", "localhost"),
        ("future", "20990101000000Z", "20990201000000Z", "localhost"),
        ("other_host", None, None, "other_host"),
    ):
        dates = ["-startdate", start, "-enddate", end] if start else ["-days", "2"]
        run("openssl", "ca", "-batch", "-notext", "-config", "ca.cnf", "-cert", "ca.crt",
            "-keyfile", "ca.key", "-in", "server.csr", "-out", f"{name}.crt",
            "-extensions", names, *dates)  # fmt: skip
        out[name] = folder / f"{name}.crt"
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=blazepose-edge-other-ca", "-keyout", "other-ca.key",
        "-out", "other-ca.crt")  # fmt: skip
    out["other_ca"] = folder / "other-ca.crt"
    return out


class Broker:
    def __init__(
        self,
        folder: Path,
        auth: bool = False,
        tls: bool = False,
        port: int | None = None,
        persistence: bool = False,
        bridge_to: Broker | None = None,
        bridge_topics: tuple[str, ...] = BRIDGE_TOPICS,
        log_subscriptions: bool = False,
        bad_certs: bool = False,
    ):
        """``bridge_to``: bridge this broker to that one (started first), forwarding
        ``bridge_topics`` (Mosquitto's ``topic`` lines: pattern, direction, QoS), as a board's
        local broker bridged to a central one. ``log_subscriptions``: log every subscription to
        ``self.log`` (``subscriptions()`` reads them). ``bad_certs`` (with ``tls``): also make
        ``make_bad_certs``' certificates, for ``serve()``."""
        if not shutil.which("mosquitto"):
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        self.folder = folder
        self.port = port or free_port()
        self.auth, self.tls = auth, tls
        self.certs = make_certs(folder) if tls else None
        if tls and bad_certs:
            self.certs.update(make_bad_certs(folder))
        lines = ["log_dest stderr", "log_type error", "log_type warning"]
        if persistence:  # keeps sessions and queued messages across a clean broker restart
            lines += ["persistence true", f"persistence_location {folder}/", "autosave_interval 1"]
        else:
            lines.append("persistence false")
        if os.geteuid() == 0:
            lines.append("user root")  # test only: read the files in the test's temp folder
        lines.append(f"listener {self.port} 127.0.0.1")
        if auth:
            passwd = folder / "passwd"
            subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), USER, PASSWORD], check=True,
                           capture_output=True)  # fmt: skip
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        if tls:
            lines += [f"cafile {self.certs['ca']}", f"certfile {self.certs['cert']}",
                      f"keyfile {self.certs['key']}"]  # fmt: skip
        self.log = folder / "mosquitto.log"
        if log_subscriptions:
            lines += [f"log_dest file {self.log}", "log_type subscribe"]
        if bridge_to is not None:  # last: the options after "connection" are the bridge's
            lines += [f"connection to-{bridge_to.port}", f"address 127.0.0.1:{bridge_to.port}",
                      "cleansession true", "restart_timeout 1", "start_type automatic"]  # fmt: skip
            lines += [f"topic {topic}" for topic in bridge_topics]
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> Broker:
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    err = self.proc.stderr.read().decode()
                    raise RuntimeError(f"mosquitto failed: {err}") from None
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def serve(self, certificate: str) -> None:
        """Present ``self.certs[certificate]`` from the next start on (stop the broker first)."""
        lines = self.conf.read_text().splitlines()
        lines = [f"certfile {self.certs[certificate]}" if line.startswith("certfile ") else line
                 for line in lines]  # fmt: skip
        self.conf.write_text("\n".join(lines) + "\n")

    def subscriptions(self) -> list[tuple[str, str]]:
        """(client id, topic filter) of every subscription so far (``log_subscriptions``)."""
        found = []
        for line in self.log.read_text().splitlines() if self.log.exists() else []:
            parts = line.split()  # "<time>: <client id> <qos> <topic filter>"
            if len(parts) == 4 and parts[2].isdigit():
                found.append((parts[1], parts[3]))
        return found

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Subscriber:
    """Collects (topic, payload, retain) for a topic filter, from a thread."""

    def __init__(
        self,
        broker: Broker,
        topic: str = "#",
        username=None,
        password=None,
        client_id: str = "",
        qos: int = 1,
    ):
        """With ``client_id`` the session is persistent: messages queued while the subscriber or
        the broker was away are delivered on reconnect (QoS 1)."""
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not client_id
        )
        client.reconnect_delay_set(1, 1)
        if username:
            client.username_pw_set(username, password)
        if broker.tls:
            client.tls_set(ca_certs=str(broker.certs["ca"]))
        client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=qos)
        client.on_subscribe = lambda c, u, mid, rcs, p: self.ready.set()
        client.on_message = self._on_message
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        if not self.ready.wait(10):
            raise RuntimeError("subscriber could not subscribe")
        self.client = client

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))

    def on(self, suffix: str) -> list[tuple[bytes, bool]]:
        with self.lock:
            return [(p, r) for t, p, r in self.messages if t.endswith(suffix)]

    def wait_for(self, predicate, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return predicate()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
