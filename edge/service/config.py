"""Daemon configuration: typed dataclasses, loaded from TOML, overridden by flags, validated once.

Every key is declared once, below, with ``setting()``: its default, its constraint (a range,
a list of choices or a custom check), a description and whether SIGHUP applies it. Validation,
the commented TOML that ``check-config --print`` and ``install.sh`` write, and
docs/configuration.md (``python -m edge.service.config --markdown``) are all generated from those
declarations. Plain dataclasses and their field metadata rather than pydantic: nothing to install
or import on a Raspberry Pi for a few dozen keys.

Every problem is reported with the dotted name of the key (``mqtt.port``), so a user editing
``/etc/blazepose-edge/config.toml`` knows what to fix. Secrets are never part of the config: the
MQTT password is read from a file or an environment variable named here, at connect time.
"""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
import json
import logging
import os
import pwd
import re
import socket
import stat
import sys
import tempfile
import textwrap
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from ..pose import DEFAULT_MODEL, INT8_MODELS, LANDMARK_MODELS, VARIANT_CHOICES

log = logging.getLogger(__name__)
DEFAULT_CONFIG = Path("/etc/blazepose-edge/config.toml")
DEFAULT_PASSWORD_ENV = "BLAZEPOSE_EDGE_MQTT_PASSWORD"
DEFAULT_HTTP_PASSWORD_ENV = "BLAZEPOSE_EDGE_HTTP_PASSWORD"
MARKDOWN_COMMAND = "python -m edge.service.config --markdown > docs/configuration.md"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key."""


# --- how a key is declared -----------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """A constraint that is not a range or a list of choices. ``allowed`` says what is accepted
    (shown in the reference and the TOML comments); ``problem(value)`` says what is wrong with a
    value, as the rest of the sentence after the key ("must not be empty"), or None if it is fine."""

    allowed: str
    problem: Callable[[Any], str | None]


def not_blank(hint: str = "") -> Check:
    """Not empty or only spaces."""
    return Check("not empty", lambda v: None if v.strip() else f"must not be empty{hint}")


def without(chars: str, what: str) -> Check:
    """None of ``chars`` (``what`` names them in the error)."""
    shown = " or ".join(", ".join(f"`{c}`" for c in chars).rsplit(", ", 1))

    def problem(value: str) -> str | None:
        bad = [c for c in chars if c in value]
        return f"must not contain {what} {bad}, got {_shown(value)}" if bad else None

    return Check(f"no {shown}", problem)


def existing_file() -> Check:
    """Empty (not used) or the path of a regular file that exists (a folder, a FIFO or a device
    is refused before anything opens it: reading one would block, or never end)."""

    def problem(value: str) -> str | None:
        why = file_problem(Path(value)) if value else None
        return f"{value} {why}" if why else None

    return Check("empty, or an existing file (not a folder, a FIFO or a device)", problem)


# MQTT strings (topics, client ids, user names) carry a 16-bit length: at most this many bytes.
MQTT_STRING_BYTES = 65_535
# Mosquitto refuses a topic with more `/` than this (its TOPIC_HIERARCHY_LIMIT).
MQTT_TOPIC_SLASHES = 200
HOST_NAME_CHARS = 253  # RFC 1123: a host name of at most 253 characters, labels of 1..63
HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")  # `_` too: Docker service names


def _shown(value: str) -> str:
    """``value`` quoted for an error message, cut when long."""
    if len(value) <= 60:
        return repr(value)
    return f"{value[:40]!r}... ({len(value):,} characters)"


def _refused_by_brokers(char: str) -> bool:
    """Characters MQTT brokers refuse in a string (Mosquitto drops the connection): control
    characters (NUL included), Unicode non-characters, surrogates (text that was not UTF-8)."""
    code = ord(char)
    return (
        code <= 0x1F
        or 0x7F <= code <= 0x9F
        or 0xD800 <= code <= 0xDFFF
        or 0xFDD0 <= code <= 0xFDEF
        or code & 0xFFFE == 0xFFFE
    )


def mqtt_string() -> Check:
    """Text an MQTT broker accepts: valid UTF-8 without control characters or non-characters,
    at most 65,535 bytes."""

    def problem(value: str) -> str | None:
        bad = next((i for i, c in enumerate(value) if _refused_by_brokers(c)), None)
        if bad is not None:
            char = value[bad]
            what = "bytes that are not UTF-8" if 0xD800 <= ord(char) <= 0xDFFF else repr(char)
            return (
                "must be UTF-8 text without control characters (MQTT brokers refuse them), "
                f"got {what} at position {bad} of {_shown(value)}"
            )
        size = len(value.encode("utf-8"))
        if size > MQTT_STRING_BYTES:
            return f"must be at most {MQTT_STRING_BYTES:,} bytes (MQTT's limit), got {size:,}"
        return None

    return Check(
        f"UTF-8 text without control characters, at most {MQTT_STRING_BYTES:,} bytes", problem
    )


def host_name(also: str = "") -> Check:
    """A host name (RFC 1123: labels of letters, digits and hyphens, 1..63 characters each, at
    most 253 in all; `_` too; an internationalised name is checked in its ASCII form) or an IP
    address. ``also``: one more word accepted as it is (``none``)."""

    def problem(value: str) -> str | None:
        if also and value.lower() == also:
            return None
        try:
            ipaddress.ip_address(value)
            return None
        except ValueError:
            pass
        name = value[:-1] if value.endswith(".") else value  # a fully qualified name's root
        try:
            ascii_name = name if name.isascii() else name.encode("idna").decode("ascii")
        except UnicodeError:
            ascii_name = "\0"  # not a name IDNA can encode: refused below
        if len(ascii_name) > HOST_NAME_CHARS:
            return (
                f"must be a host name of at most {HOST_NAME_CHARS} characters or an IP address, "
                f"got {_shown(value)}"
            )
        if not all(HOST_LABEL.fullmatch(label) for label in ascii_name.split(".")):
            return (
                "must be a host name (letters, digits and hyphens, in dot-separated labels of "
                f"1 to 63 characters) or an IP address, got {_shown(value)}"
            )
        return None

    allowed = "a host name or an IP address" + (f", or {also}" if also else "")
    return Check(allowed, problem)


@dataclass(frozen=True)
class Setting:
    """What ``setting()`` records in a field's metadata."""

    doc: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple = ()
    checks: tuple[Check, ...] = ()
    unit: str = ""
    reload: bool = False

    def allowed(self, literal: bool = False) -> str:
        """The constraint in words ("1..65535", "auto, float or int8"); "" if there is none.
        ``literal``: choices written as TOML values ("auto" quoted)."""
        parts = []
        bounds = ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
        limits = [f"{op} {n}" for op, n in bounds if n is not None]
        if limits == [f">= {self.ge}", f"<= {self.le}"]:
            parts.append(f"{self.ge}..{self.le}")
        elif limits:
            parts.append(" and ".join(limits))
        if parts and self.unit:
            parts[-1] += f" {self.unit}"
        if self.choices:
            shown = [toml_value(c) if literal else str(c) for c in self.choices]
            parts.append(" or ".join(", ".join(shown).rsplit(", ", 1)))
        parts += [c.allowed for c in self.checks]
        return "; ".join(parts)

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` ("must be 1..65535, got 70000"), or None."""
        if self.choices and value not in self.choices:
            return f"must be {self.allowed()}, got {value!r}"
        ok = (
            (self.ge is None or value >= self.ge)
            and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le)
            and (self.lt is None or value < self.lt)
        )  # written as "all hold", so NaN (every comparison False) is refused
        if not ok:
            limits = dataclasses.replace(self, choices=(), checks=())
            return f"must be {limits.allowed()}, got {value!r}"
        for check in self.checks:
            problem = check.problem(value)
            if problem:
                return problem
        return None


def setting(
    default: Any,
    doc: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple = (),
    check: Check | tuple[Check, ...] = (),
    unit: str = "",
    reload: bool = False,
) -> Any:
    """A configuration key: its ``default``, a description (``doc``), its constraint (bounds
    ``ge``/``gt`` and ``le``/``lt``, ``choices``, custom checks in ``check``), the ``unit`` of
    its value, and whether SIGHUP applies it while running (``reload``)."""
    checks = check if isinstance(check, tuple) else (check,)
    spec = Setting(doc, ge, gt, le, lt, tuple(choices), checks, unit, reload)
    return field(default=default, metadata={"setting": spec})


def section(cls: type) -> Any:
    """A sub-table; its description is the class's docstring."""
    return field(default_factory=cls)


# --- the keys ------------------------------------------------------------------------------------


@dataclass
class SourceConfig:
    """Where frames come from."""

    uri: str = setting(
        "",
        "What to read: picam or picam:N (a Raspberry Pi camera), /dev/videoN or N (a V4L2 camera), "
        "an rtsp://, rtsps://, http(s)://, rtmp://, udp:// or tcp:// stream, a video file, a folder "
        "of images, or demo (the clip that ships with blazepose-edge, looping). "
        "Empty: the Pi camera if there is one, else /dev/video0.",
    )
    width: int = setting(
        640, "Frame width asked of a camera (Pi camera, /dev/video devices).", ge=16, le=8192
    )
    height: int = setting(
        480, "Frame height asked of a camera (Pi camera, /dev/video devices).", ge=16, le=8192
    )
    fps: float = setting(
        30.0, "Frame rate asked of a camera (Pi camera, /dev/video devices).", gt=0, le=1000
    )
    loop: bool = setting(False, "Video files and image folders: start again at the end.")
    realtime: bool = setting(
        False,
        "Video files: read at the file's own frame rate, like a camera, instead of as fast as "
        "the pipeline goes.",
    )


@dataclass
class PipelineConfig:
    """How poses are computed."""

    model: str = setting(
        DEFAULT_MODEL,
        "Landmark model (MediaPipe's model_complexity 0, 1, 2): lite is the fastest (about twice "
        "full's speed, the Raspberry Pi 4 choice), heavy the most accurate (about 4.5 times "
        "slower than full). Heavy is fetched only when asked: blazepose-edge models fetch "
        "--model heavy.",
        choices=LANDMARK_MODELS,
    )
    variant: str = setting(
        "auto",
        "Model variant: auto = the fastest verified variant on this board (measured once, "
        "cached); float; int8 = the int8 estimator built by models/quantize.py "
        "(install.sh --int8); fp16 = the landmark model marked for fp16 inference (derived on "
        "first use; fp16 on cores with fp16 arithmetic such as the Pi 5's, fp32 elsewhere; auto "
        "considers it only there).",
        choices=VARIANT_CHOICES,
    )
    threads: int = setting(
        0, "Interpreter threads; 0 = the CPUs this process may use, at most 4.", ge=0, le=64
    )
    min_detection_score: float = setting(
        0.5,
        "Person detections scoring below this are ignored: lower finds more people, and more "
        "false ones.",
        gt=0,
        lt=1,
        reload=True,
    )
    smoothing: bool = setting(
        True,
        "Smooth landmarks over time (MediaPipe's filters); false gives each frame's raw landmarks.",
        reload=True,
    )
    num_poses: int = setting(
        1,
        "At most this many people per frame, each with an id that stays with them while tracked "
        "(1: one person, as MediaPipe's legacy Pose).",
        ge=1,
        le=255,
    )
    redetect_interval: int = setting(
        15,
        "With num_poses > 1: frames between detector runs while fewer than num_poses people are "
        "tracked, to find people who walk in (15 = 0.5 s at 30 FPS; lower finds them sooner and "
        "costs more).",
        ge=1,
        le=1000,
    )
    idle_detect_hz: float = setting(
        1.5,
        "While nobody is tracked, look for people this many times a second instead of on every "
        "frame (the frames between are published with no poses and scanned: false): a person "
        "walking in is found up to 1/idle_detect_hz seconds later, and an empty room costs a "
        "fraction of scanning every frame (1.5: found within 0.67 s; an empty room at 12.5 FPS "
        "costs about a fifth of the CPU, see docs/performance.md); 0 = every frame, as "
        "MediaPipe.",
        ge=0,
        le=1000,
        unit="Hz",
        reload=True,
    )


@dataclass
class TlsConfig:
    """TLS to the broker, and client certificates."""

    enabled: bool = setting(False, "Connect to the broker with TLS (usually on port 8883).")
    ca_file: str = setting(
        "",
        "CA certificates (PEM) the broker's certificate is checked against; empty = the system's "
        "CA store.",
        check=existing_file(),
    )
    cert_file: str = setting(
        "",
        "Client certificate (PEM) for brokers that authenticate clients by certificate; needs "
        "key_file.",
        check=existing_file(),
    )
    key_file: str = setting(
        "", "Private key (PEM) of cert_file; needs cert_file.", check=existing_file()
    )
    insecure: bool = setting(
        False,
        "Skip the check that the broker's certificate names its host (self-signed test brokers "
        "only).",
    )


@dataclass
class MqttConfig:
    """The MQTT broker and what is published to it: topics <topic_prefix>/<device_id>/pose,
    .../status and .../stats (and .../state for Home Assistant, see [homeassistant])."""

    host: str = setting(
        "localhost",
        "Broker host name or address; none = print the messages on stdout instead.",
        check=(not_blank(" (use 'none' for stdout)"), host_name(also="none")),
    )
    port: int = setting(1883, "Broker port.", ge=1, le=65535)
    device_id: str = setting(
        "",
        "This device's topic level; empty = this machine's host name.",
        check=(mqtt_string(), without("+#/", "MQTT wildcards or separators")),
    )
    topic_prefix: str = setting(
        "blazepose",
        "First topic level(s), before the device id.",
        check=(
            mqtt_string(),
            without("+#", "MQTT wildcards or separators"),
            Check("not empty nor only /", lambda v: None if v.strip("/") else "must not be empty"),
        ),
    )
    client_id: str = setting(
        "",
        "MQTT client id, unique per broker (a client connecting with the same id takes the "
        "session over). Empty = blazepose-edge-<device_id>-<16 random hex digits>, generated once "
        "and kept in the state folder (mqtt-client-id-suffix in $STATE_DIRECTORY under systemd, "
        "else ~/.local/state/blazepose-edge/), so that no other client can guess it.",
        check=mqtt_string(),
    )
    username: str = setting("", "User name for the broker; empty = none.", check=mqtt_string())
    password_file: str = setting(
        "",
        "File whose first line is the broker password (chmod 600 it; needs username). Empty: "
        "systemd's credential $CREDENTIALS_DIRECTORY/mqtt_password, else the variable named by "
        "password_env.",
        check=existing_file(),
    )
    password_env: str = setting(
        DEFAULT_PASSWORD_ENV,
        "Environment variable holding the password when neither password file is there.",
    )
    keepalive: int = setting(
        30, "Seconds between keep-alive pings to the broker.", ge=5, le=3600, unit="s"
    )
    qos_pose: int = setting(
        0,
        "QoS of the pose messages (one per frame); 1 or 2 also turns the spool on "
        '(spool.mode = "auto").',
        choices=(0, 1, 2),
    )
    qos_status: int = setting(
        1,
        "QoS of the retained status messages (online, degraded: ..., offline).",
        choices=(0, 1, 2),
    )
    qos_stats: int = setting(0, "QoS of the stats messages.", choices=(0, 1, 2))
    queue_limit: int = setting(
        1000,
        "Without the spool: QoS 1 and 2 messages held in memory while the broker is away; past "
        "this, new ones are dropped and counted.",
        ge=1,
        le=1_000_000,
    )
    encoding: str = setting(
        "json",
        'Pose message format: json, or binary (about half the size; see the README, "Binary pose '
        'messages").',
        choices=("json", "binary"),
    )
    stats_interval: float = setting(
        5.0, "Seconds between stats messages.", ge=0.5, le=3600, unit="s", reload=True
    )
    connect_timeout: float = setting(
        10.0,
        "Seconds one connection attempt to the broker (TCP and TLS) may take; the daemon never "
        "waits for the broker at start (at most 1 s), it retries in the background.",
        gt=0,
        le=300,
        unit="s",
    )
    reconnect_max_delay: float = setting(
        10.0,
        "Longest wait between reconnection attempts; the wait doubles from 1 s up to this.",
        ge=1,
        le=3600,
        unit="s",
    )
    tls: TlsConfig = section(TlsConfig)


@dataclass
class SpoolConfig:
    """The on-disk spool: pose messages kept on disk until the broker acknowledges them, across
    broker outages and restarts of the daemon."""

    mode: str = setting(
        "auto",
        "Whether pose messages go through the spool: auto = when mqtt.qos_pose >= 1; on; off.",
        choices=("auto", "on", "off"),
    )
    dir: str = setting(
        "",
        "Spool folder (a sub-folder per device id is made in it); empty = $STATE_DIRECTORY/spool "
        "under systemd, else ~/.local/state/blazepose-edge/spool. When the spool is in use, "
        "check-config and run check that it is a folder this user can write in (or create).",
    )
    max_mb: float = setting(
        256.0,
        "Size limit; past it the oldest messages are dropped (counted).",
        ge=1,
        le=1_000_000,
        unit="MB",
    )
    max_age_s: float = setting(
        86400.0, "Messages older than this are dropped (counted).", ge=1, unit="s"
    )
    fsync_interval: float = setting(
        1.0,
        "Seconds between fsyncs of the spool; 0 = after every message.",
        ge=0,
        le=3600,
        unit="s",
    )


@dataclass
class HomeAssistantConfig:
    """Home Assistant MQTT discovery: the daemon appears in Home Assistant as one device (person
    present, people in view, frame rate, latency, CPU temperature, model), through the MQTT
    broker it publishes to, announced at <prefix>/device/<node_id>/config. Removed by
    blazepose-edge ha remove."""

    discovery: bool = setting(
        True,
        "Announce this daemon to Home Assistant (MQTT discovery), and again whenever Home "
        "Assistant restarts (<prefix>/status online). Needs an MQTT broker (not mqtt.host = "
        '"none").',
    )
    prefix: str = setting(
        "homeassistant",
        "Home Assistant's discovery prefix (its MQTT integration's setting; the default is "
        "homeassistant).",
        check=(
            mqtt_string(),
            without("+#", "MQTT wildcards"),
            Check("not empty nor only /", lambda v: None if v.strip("/") else "must not be empty"),
        ),
    )


@dataclass
class HttpConfig:
    """The live view: a web page with the camera's picture and the skeleton drawn on it, an MJPEG
    stream, a snapshot, the stats as JSON, Prometheus metrics and a health check, served over
    HTTP: /, /stream.mjpg, /snapshot.jpg, /api/stats, /metrics, /healthz."""

    enabled: bool = setting(
        False, "Serve the live view and the metrics over HTTP (--http-port turns it on)."
    )
    host: str = setting(
        "127.0.0.1",
        "Address to listen on: 127.0.0.1 = this machine only; 0.0.0.0 (or ::) = every network "
        "interface, which needs username and a password, or anonymous = true.",
        check=not_blank(" (0.0.0.0 listens on every interface)"),
    )
    port: int = setting(8080, "TCP port to listen on.", ge=1, le=65535)
    username: str = setting(
        "",
        "User name for HTTP basic authentication; empty = none (only for 127.0.0.1, or with "
        "anonymous = true). Without TLS the password crosses the network readable: beyond a "
        "home network, put a reverse proxy with TLS in front.",
        check=without(":", "a colon"),
    )
    password_file: str = setting(
        "",
        "File whose first line is the HTTP password (chmod 600 it; needs username). Empty: "
        "systemd's credential $CREDENTIALS_DIRECTORY/http_password, else the variable named by "
        "password_env.",
        check=existing_file(),
    )
    password_env: str = setting(
        DEFAULT_HTTP_PASSWORD_ENV,
        "Environment variable holding the HTTP password when neither password file is there.",
    )
    anonymous: bool = setting(
        False,
        "Listen beyond 127.0.0.1 without a password: anyone who can reach the port sees the "
        "camera's picture.",
    )
    max_streams: int = setting(
        4, "MJPEG streams served at once; a viewer beyond this gets 503.", ge=1, le=64
    )
    jpeg_quality: int = setting(80, "JPEG quality of the stream and the snapshot.", ge=10, le=100)


@dataclass
class DaemonConfig:
    """The daemon itself."""

    max_frames: int = setting(
        0, "Stop after this many processed frames; 0 = run until stopped.", ge=0
    )
    log_level: str = setting(
        "info", "Log level.", choices=("debug", "info", "warning", "error"), reload=True
    )


@dataclass
class Config:
    """The whole configuration, one section per TOML table."""

    source: SourceConfig = section(SourceConfig)
    pipeline: PipelineConfig = section(PipelineConfig)
    mqtt: MqttConfig = section(MqttConfig)
    spool: SpoolConfig = section(SpoolConfig)
    homeassistant: HomeAssistantConfig = section(HomeAssistantConfig)
    http: HttpConfig = section(HttpConfig)
    daemon: DaemonConfig = section(DaemonConfig)

    @property
    def device_id(self) -> str:
        return self.mqtt.device_id or socket.gethostname()

    @property
    def spool_enabled(self) -> bool:
        mode = self.spool.mode
        return mode == "on" or (mode == "auto" and self.mqtt.qos_pose >= 1)

    def spool_dir(self) -> Path:
        """Per-device spool folder."""
        base = Path(self.spool.dir) if self.spool.dir else state_dir() / "spool"
        return base / self.device_id


CLIENT_ID_SUFFIX_DIGITS = (16, 64)  # the hex digits of a generated client id's suffix: made, kept


def default_client_id(device_id: str, suffix: str) -> str:
    """The MQTT client id used when ``mqtt.client_id`` is empty (``suffix``: the installation's
    random hex digits, ``sinks/clientid.py``)."""
    return f"blazepose-edge-{device_id}-{suffix}"


def state_dir() -> Path:
    """The daemon's state folder (the spool, the generated MQTT client id): systemd's
    ``$STATE_DIRECTORY`` (its first entry) under systemd, else
    ``${XDG_STATE_HOME:-~/.local/state}/blazepose-edge``. Not created here."""
    if os.environ.get("STATE_DIRECTORY"):  # systemd StateDirectory=
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state) / "blazepose-edge"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (localhost, 127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:  # a host name: it may name any interface
        return False


@dataclass(frozen=True)
class Rule:
    """A check across keys: ``ok(cfg)`` must hold, else ``config: <key> <text>``."""

    key: str
    text: str
    ok: Callable[[Config], bool]


def topic_fits(*levels: str) -> bool:
    """Whether the topic made of ``levels`` (joined by `/`) is one brokers accept: at most
    65,535 bytes (UTF-8) and 200 `/`."""
    topic = "/".join(levels)
    return (
        len(topic.encode("utf-8")) <= MQTT_STRING_BYTES and topic.count("/") <= MQTT_TOPIC_SLASHES
    )


def _discovery_topic_fits(c: Config) -> bool:
    # the node id is the device id with some characters replaced, plus `_` and 6 hex digits at
    # most (sinks/homeassistant.py): at most 7 bytes longer
    node = c.device_id + "_" * 7
    return topic_fits(c.homeassistant.prefix.strip("/"), "device", node, "config")


# Checks across keys, run after every key's own check.
RULES = (
    Rule(
        "mqtt.topic_prefix",
        "and mqtt.device_id must make topics (topic_prefix/device_id/status) of at most "
        f"{MQTT_STRING_BYTES:,} bytes in UTF-8 (MQTT's limit) with at most {MQTT_TOPIC_SLASHES} "
        "`/` (Mosquitto's)",
        lambda c: topic_fits(c.mqtt.topic_prefix.strip("/"), c.device_id, "status"),
    ),
    Rule(
        "homeassistant.prefix",
        "and mqtt.device_id must make the discovery topic (prefix/device/node_id/config) of at "
        f"most {MQTT_STRING_BYTES:,} bytes in UTF-8 with at most {MQTT_TOPIC_SLASHES} `/`",
        lambda c: not c.homeassistant.discovery or _discovery_topic_fits(c),
    ),
    Rule(
        "mqtt.device_id",
        "must be set where this machine's host name is no valid topic level",
        lambda c: (
            bool(c.mqtt.device_id) or KEYS["mqtt.device_id"].spec.problem(c.device_id) is None
        ),
    ),
    Rule(
        "mqtt.device_id",
        f"is too long for the default client id (blazepose-edge-<device_id>-<suffix> within "
        f"{MQTT_STRING_BYTES:,} bytes): shorten it or set mqtt.client_id",
        lambda c: (
            bool(c.mqtt.client_id)
            or len(default_client_id(c.device_id, "0" * CLIENT_ID_SUFFIX_DIGITS[1]).encode())
            <= MQTT_STRING_BYTES
        ),
    ),
    Rule(
        "mqtt.username",
        "must be set when mqtt.password_file is",
        lambda c: bool(c.mqtt.username) or not c.mqtt.password_file,
    ),
    Rule(
        "mqtt.tls.key_file",
        "and mqtt.tls.cert_file go together",
        lambda c: bool(c.mqtt.tls.key_file) == bool(c.mqtt.tls.cert_file),
    ),
    Rule(
        "http.username",
        "must be set when http.password_file is",
        lambda c: bool(c.http.username) or not c.http.password_file,
    ),
    Rule(
        "http.host",
        "beyond 127.0.0.1 needs http.username (and a password), or http.anonymous = true to let "
        "anyone who can reach the port see the camera",
        lambda c: (
            not c.http.enabled
            or is_loopback(c.http.host)
            or bool(c.http.username)
            or c.http.anonymous
        ),
    ),
    Rule(
        "pipeline.variant",
        f"int8 exists for pipeline.model {' and '.join(INT8_MODELS)} only (use auto or float)",
        lambda c: c.pipeline.variant != "int8" or c.pipeline.model in INT8_MODELS,
    ),
)


# --- walking the model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """One configuration key as declared: dotted name, Python type, default and ``Setting``."""

    name: str
    type: type
    default: Any
    spec: Setting


def _sections(cls: type = Config, name: str = "") -> Iterator[tuple[str, type, list[Key]]]:
    """(dotted section name, class, its keys) for every section, depth first, in file order."""
    hints = get_type_hints(cls)
    scalars, tables = [], []
    for f in dataclasses.fields(cls):
        dotted = f"{name}.{f.name}" if name else f.name
        if dataclasses.is_dataclass(hints[f.name]):
            tables.append((dotted, hints[f.name]))
        elif "setting" in f.metadata:
            scalars.append(Key(dotted, hints[f.name], f.default, f.metadata["setting"]))
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: declare it with setting() or section()")
    yield name, cls, scalars
    for dotted, table in tables:
        yield from _sections(table, dotted)


KEYS: dict[str, Key] = {key.name: key for _, _, keys in _sections() for key in keys}
# The keys SIGHUP applies while running (Daemon._apply_reload must apply exactly these).
RELOADABLE = {name for name, key in KEYS.items() if key.spec.reload}


def default(key: str) -> Any:
    """The default value of a dotted key ("mqtt.port" -> 1883)."""
    return KEYS[key].default


def _owner(cfg: Config, dotted: str) -> tuple[Any, str]:
    """The section object holding a dotted key, and the key's last part."""
    *parents, name = dotted.split(".")
    obj: Any = cfg
    for part in parents:
        obj = getattr(obj, part)
    return obj, name


# --- files: the config file, password files, the spool folder -----------------------------------

CONFIG_MAX_BYTES = 2**20  # a configuration file is a few kB
SECRET_MAX_BYTES = MQTT_STRING_BYTES + 2  # the first line of a password file, and its newline
_KINDS = (
    (stat.S_ISDIR, "is a directory"),
    (stat.S_ISFIFO, "is not a regular file (a named pipe)"),
    (stat.S_ISCHR, "is not a regular file (a character device)"),
    (stat.S_ISBLK, "is not a regular file (a block device)"),
    (stat.S_ISSOCK, "is not a regular file (a socket)"),
)


def _kind_problem(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    return next((what for test, what in _KINDS if test(mode)), "is not a regular file")


def file_problem(path: Path) -> str | None:
    """Why ``path`` is no regular file to read ("does not exist", "is a directory", "is not a
    regular file (a named pipe)"), or None; from ``os.stat`` alone, without opening it."""
    try:
        return _kind_problem(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return "does not exist"
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"


def read_regular(path: Path, limit: int) -> bytes:
    """The first ``limit + 1`` bytes at most of the regular file ``path`` (a longer file shows
    as more than ``limit``). A FIFO or a device swapped in after a ``file_problem`` check is
    refused: checked with ``stat`` before opening (opening a device may do something), opened
    without blocking and checked again with ``fstat``. Raises OSError, or ValueError saying what
    the path is."""
    problem = _kind_problem(os.stat(path).st_mode)
    if problem:
        raise ValueError(problem)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        problem = _kind_problem(os.fstat(fd).st_mode)
        if problem:
            raise ValueError(problem)
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def spool_problem(cfg: Config) -> str | None:
    """Why the spool folder cannot be used, as a ConfigError's message naming spool.dir, or None
    (also None when the spool is not in use: spool off, or no broker)."""
    if not cfg.spool_enabled or cfg.mqtt.host.lower() == "none":
        return None
    folder = cfg.spool_dir()
    why = folder_problem(folder)
    return spool_message(cfg, folder, why) if why else None


def spool_message(cfg: Config, folder: Path, why: str) -> str:
    """``config: spool.dir: ...``: the folder that cannot be used and ``why``."""
    key = "spool.dir" if cfg.spool.dir else "spool.dir (empty: the default folder)"
    return f"config: {key}: cannot keep the spool in {folder}: {why}"


def folder_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot be made or written in, or None. It, or the nearest part of its path
    that exists, must be a folder this user can create a file (or a folder) in: tried for real,
    with a test entry removed at once, as permissions alone do not tell (root on a read-only
    file system, a kernel file system)."""
    for path in (folder, *folder.parents):
        try:
            mode = os.stat(path).st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            return f"cannot look at {path}: {exc.strerror or exc}{_as_user(exc)}"
        if not stat.S_ISDIR(mode):
            return f"{path} is {'a file, not a folder' if stat.S_ISREG(mode) else 'not a folder'}"
        try:
            if path == folder:
                fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=path)
                os.close(fd)
                os.unlink(probe)
            else:  # what the spool will do: make the missing folders
                os.rmdir(tempfile.mkdtemp(prefix=".write-test-", dir=path))
        except OSError as exc:
            what = "write in" if path == folder else "create a folder in"
            return f"cannot {what} {path}: {exc.strerror or exc}{_as_user(exc)}"
        return None
    return None  # pragma: no cover - "/" exists


def _as_user(exc: OSError) -> str:
    """`` (as user NAME)`` after a permission error: check-config may run as another user than
    the daemon."""
    if exc.errno not in (errno.EACCES, errno.EPERM):
        return ""
    try:
        return f" (as user {pwd.getpwuid(os.geteuid()).pw_name})"
    except KeyError:
        return f" (as uid {os.geteuid()})"


# --- loading and validating ----------------------------------------------------------------------


def _check_section(obj: Any, data: dict, prefix: str) -> None:
    if not isinstance(data, dict):
        raise ConfigError(f"config: {prefix.rstrip('.')} must be a table")
    hints = get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if key not in names:
            known = ", ".join(sorted(names))
            raise ConfigError(f"config: unknown key {name} (known in this section: {known})")
        expected = hints[key]
        if dataclasses.is_dataclass(expected):
            _check_section(getattr(obj, key), value, f"{name}.")
            continue
        setattr(obj, key, _coerce(name, value, expected))


def _coerce(name: str, value: Any, expected: type) -> Any:
    if expected is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config: {name} must be true or false, got {value!r}")
        return value
    if expected is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config: {name} must be an integer, got {value!r}")
        return value
    if expected is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"config: {name} must be a number, got {value!r}")
        return float(value)
    if expected is str:
        if not isinstance(value, str):
            raise ConfigError(f"config: {name} must be a string, got {value!r}")
        return value
    raise ConfigError(f"config: {name}: unsupported type")  # pragma: no cover


def validate(cfg: Config) -> Config:
    """Check every key against its declaration (type, then constraint), then the ``RULES``.
    Raises ConfigError naming the key."""
    for key in KEYS.values():
        obj, name = _owner(cfg, key.name)
        value = _coerce(key.name, getattr(obj, name), key.type)
        setattr(obj, name, value)
        problem = key.spec.problem(value)
        if problem:
            raise ConfigError(f"config: {key.name} {problem}")
    for rule in RULES:
        if not rule.ok(cfg):
            raise ConfigError(f"config: {rule.key} {rule.text}")
    problem = spool_problem(cfg)
    if problem:
        raise ConfigError(problem)
    return cfg


def load(path: Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Read ``path`` (default: /etc/blazepose-edge/config.toml if it exists), apply ``overrides``
    ({"mqtt.port": 1884, ...}), validate, return."""
    cfg = Config()
    explicit = path is not None
    path = path or DEFAULT_CONFIG
    problem = file_problem(path)
    if problem is None:
        try:
            raw = read_regular(path, CONFIG_MAX_BYTES)
            if len(raw) > CONFIG_MAX_BYTES:
                raise ValueError(
                    f"is larger than {CONFIG_MAX_BYTES // 2**20} MB: not a configuration file"
                )
            data = tomllib.loads(raw.decode("utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config: {path} is not valid TOML: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config: {path} is not UTF-8 text (TOML must be): {exc}") from exc
        except ValueError as exc:  # not a regular file after all
            raise ConfigError(f"config: {path} {exc}") from None
        except OSError as exc:
            raise ConfigError(f"config: cannot read {path}: {exc.strerror or exc}") from exc
        _check_section(cfg, data, "")
    elif explicit or problem != "does not exist":
        raise ConfigError(f"config: {path} {problem}")
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        section, key = _owner(cfg, dotted)
        _check_section(section, {key: value}, dotted[: -len(key)])
    return validate(cfg)


def read_password(m: MqttConfig | HttpConfig, name: str = "mqtt") -> str | None:
    """The password of section ``name`` (``mqtt``, ``http``) from <name>.password_file,
    $CREDENTIALS_DIRECTORY/<name>_password (systemd LoadCredential=), or the environment variable
    named by <name>.password_env; None if none is set."""
    if m.password_file:
        path = Path(m.password_file)
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            raise ConfigError(f"{name}.password_file: cannot read {path}: {exc.strerror}") from exc
        if _kind_problem(mode):  # a folder, a FIFO, a device: never opened
            raise ConfigError(f"{name}.password_file: {path} {_kind_problem(mode)}")
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning(
                "%s.password_file %s can be read by other users (mode %03o): chmod 600 it",
                name, path, stat.S_IMODE(mode),
            )  # fmt: skip
        return _read_secret(path, f"{name}.password_file")
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    credential = f"{name}_password"
    if creds and (Path(creds) / credential).is_file():
        return _read_secret(Path(creds) / credential, f"$CREDENTIALS_DIRECTORY/{credential}")
    if m.password_env and m.password_env in os.environ:
        return os.environ[m.password_env]
    return None


def _read_secret(path: Path, key: str) -> str:
    """The first line's worth of ``path`` (a password file), or a ConfigError naming ``key``
    (never the content)."""
    try:
        line = read_regular(path, SECRET_MAX_BYTES).split(b"\n", 1)[0].rstrip(b"\r")
        if len(line) > MQTT_STRING_BYTES:
            raise ValueError(f"has a first line longer than {MQTT_STRING_BYTES:,} bytes")
        return line.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{key}: cannot read {path}: not UTF-8 text") from None
    except ValueError as exc:
        raise ConfigError(f"{key}: {path} {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror or exc}") from None


def changed_keys(old: Config, new: Config) -> set[str]:
    """Dotted names of the settings that differ."""
    return {name for name in KEYS if getattr(*_owner(old, name)) != getattr(*_owner(new, name))}


# --- writing: commented TOML, the Markdown reference ---------------------------------------------


def toml_value(value: Any) -> str:
    """``value`` written as TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):  # JSON's escapes are TOML's; DEL must be escaped too
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    return repr(value)


TYPE_NAMES = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _comment(text: str) -> list[str]:
    return textwrap.wrap(
        _one_line(text),
        width=99,
        initial_indent="# ",
        subsequent_indent="# ",
        break_long_words=False,
        break_on_hyphens=False,
    )


def _about(key: Key) -> str:
    """Type, allowed values, default and SIGHUP, in one line: the TOML comment under the
    description."""
    allowed = key.spec.allowed(literal=True)
    words = TYPE_NAMES[key.type] + (f"; allowed: {allowed}" if allowed else "")
    words += f"; default: {toml_value(key.default)}"
    return words + ("; applied on SIGHUP" if key.spec.reload else "")


TOML_HEADER = """\
# blazepose-edge configuration (TOML). Every key is optional: one left out takes its default, and
# command-line flags override this file. Above each key: what it does, its type and allowed
# values, its default. Keys "applied on SIGHUP" change while the daemon runs; others need a restart.
# Check a change with: blazepose-edge check-config --config FILE (--print shows the result).
"""


def to_toml(cfg: Config, comments: bool = True) -> str:
    """The configuration as TOML, by default with each section's and key's description, type,
    allowed values and default as comments (the default config file is written from this)."""
    lines: list[str] = [TOML_HEADER] if comments else []
    for name, cls, keys in _sections():
        if not keys:
            continue
        if comments:
            lines += ["", *_comment(f"[{name}] {cls.__doc__}")]
        lines.append(f"[{name}]")
        for key in keys:
            if comments:
                lines += ["", *_comment(key.spec.doc), *_comment(_about(key))]
                for rule in RULES:
                    if rule.key == key.name:
                        lines += _comment(f"{rule.key} {rule.text}.")
            obj, attr = _owner(cfg, key.name)
            lines.append(f"{attr} = {toml_value(getattr(obj, attr))}")
        lines.append("")
    return "\n".join(lines).strip("\n") + "\n"


def _md(text: str) -> str:
    """Plain text as Markdown: one line, ``<name>`` not taken for an HTML tag."""
    return re.sub(r"<(?=[A-Za-z_])", r"\\<", _one_line(text))


def _cell(text: str) -> str:
    """Plain text for a Markdown table cell."""
    return _md(text).replace("|", "\\|")


def markdown() -> str:
    """The configuration reference, docs/configuration.md."""
    out = [
        "# Configuration reference",
        "",
        f"<!-- Generated from edge/service/config.py by: {MARKDOWN_COMMAND}",
        "     Do not edit: change the declarations in edge/service/config.py and regenerate. -->",
        "",
        f"The daemon reads `{DEFAULT_CONFIG}` if it exists, or the TOML file given with "
        "`--config FILE`. Every key is optional: one left out takes its default, and "
        "command-line flags (`--mqtt-host`, `--mqtt-port`, `--threads`, ...) override the file. "
        "The file is checked once at start: an unknown key, a value of the wrong type or out of "
        "its allowed values is refused with a message naming the key "
        "(`config: mqtt.port must be 1..65535, got 70000`), and so is a spool folder that cannot "
        "be written in (when the spool is in use). "
        "`blazepose-edge check-config` checks a file; `--print` prints the effective "
        "configuration as TOML, with the descriptions below as comments. "
        "Keys marked *yes* under SIGHUP are applied while the daemon runs when it receives "
        "SIGHUP; changing the others needs a restart.",
    ]
    for name, cls, keys in _sections():
        if not keys:
            continue
        out += ["", f"## `[{name}]`", "", _md(cls.__doc__ or ""), ""]
        out += [
            "| Key | Type | Default | Allowed | SIGHUP | Description |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for key in keys:
            cells = (
                f"`{key.name}`",
                TYPE_NAMES[key.type],
                f"`{toml_value(key.default)}`",
                _cell(key.spec.allowed(literal=True) or "any"),
                "yes" if key.spec.reload else "",
                _cell(key.spec.doc),
            )
            out.append("| " + " | ".join(cells) + " |")
    out += ["", "## Rules across keys", ""]
    out += [f"- `{rule.key}` {rule.text}." for rule in RULES]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m edge.service.config",
        description="Print the configuration reference or the default configuration file.",
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--markdown", action="store_true", help="docs/configuration.md")
    what.add_argument("--toml", action="store_true", help="the default config, commented")
    args = parser.parse_args(argv)
    sys.stdout.write(markdown() if args.markdown else to_toml(Config()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
