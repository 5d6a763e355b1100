"""Daemon configuration: typed dataclasses, loaded from TOML, overridden by flags, validated once.

Every problem is reported with the dotted name of the key (``mqtt.port``), so a user editing
``/etc/blazepose-edge/config.toml`` knows what to fix. Secrets are never part of the config: the
MQTT password is read from a file or an environment variable named here, at connect time.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

log = logging.getLogger(__name__)
DEFAULT_CONFIG = Path("/etc/blazepose-edge/config.toml")
DEFAULT_PASSWORD_ENV = "BLAZEPOSE_EDGE_MQTT_PASSWORD"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key."""


@dataclass
class SourceConfig:
    uri: str = ""  # "" = Pi camera if present, else /dev/video0
    width: int = 640
    height: int = 480
    fps: float = 30.0
    loop: bool = False  # video files: start again at the end
    realtime: bool = False  # video files: pace at the file's own frame rate


@dataclass
class PipelineConfig:
    variant: str = "auto"  # "auto" = the fastest verified variant on this board; "float"; "int8"
    threads: int = 0  # 0 = the CPUs this process may use, at most 4
    min_detection_score: float = 0.5
    smoothing: bool = True
    num_poses: int = 1  # at most this many people per frame, each with an id


@dataclass
class TlsConfig:
    enabled: bool = False
    ca_file: str = ""  # "" = the system's CA store
    cert_file: str = ""
    key_file: str = ""
    insecure: bool = False  # skip the host name check (self-signed test brokers only)


@dataclass
class MqttConfig:
    host: str = "localhost"  # "none" = print the messages on stdout instead
    port: int = 1883
    device_id: str = ""  # "" = this machine's host name
    topic_prefix: str = "blazepose"
    client_id: str = ""  # "" = blazepose-edge-<device_id>
    username: str = ""
    password_file: str = ""
    password_env: str = DEFAULT_PASSWORD_ENV
    keepalive: int = 30
    qos_pose: int = 0
    qos_status: int = 1
    qos_stats: int = 0
    queue_limit: int = 1000  # QoS >= 1 messages held while the broker is away
    encoding: str = "json"  # "json" or "binary" (see README, "Binary pose messages")
    stats_interval: float = 5.0
    connect_timeout: float = 10.0
    reconnect_max_delay: float = 10.0  # seconds; the delay doubles from 1 s up to this
    tls: TlsConfig = field(default_factory=TlsConfig)


@dataclass
class SpoolConfig:
    mode: str = "auto"  # "auto" = on when mqtt.qos_pose >= 1; "on"; "off"
    dir: str = ""  # "" = $STATE_DIRECTORY/spool, else ~/.local/state/blazepose-edge/spool
    max_mb: float = 256.0
    max_age_s: float = 86400.0
    fsync_interval: float = 1.0  # seconds between fsyncs of the spool (0 = every message)


@dataclass
class DaemonConfig:
    max_frames: int = 0  # 0 = run until stopped
    log_level: str = "info"


@dataclass
class Config:
    source: SourceConfig = field(default_factory=SourceConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    spool: SpoolConfig = field(default_factory=SpoolConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)

    @property
    def device_id(self) -> str:
        return self.mqtt.device_id or socket.gethostname()

    @property
    def spool_enabled(self) -> bool:
        mode = self.spool.mode
        return mode == "on" or (mode == "auto" and self.mqtt.qos_pose >= 1)

    def spool_dir(self) -> Path:
        """Per-device spool folder."""
        if self.spool.dir:
            base = Path(self.spool.dir)
        elif os.environ.get("STATE_DIRECTORY"):  # systemd StateDirectory=
            base = Path(os.environ["STATE_DIRECTORY"].split(":")[0]) / "spool"
        else:
            state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
            base = Path(state) / "blazepose-edge" / "spool"
        return base / self.device_id


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
    """Check values (types are checked on load). Raises ConfigError naming the key."""

    def need(ok: bool, key: str, what: str) -> None:
        if not ok:
            raise ConfigError(f"config: {key} {what}")

    s, p, m, d = cfg.source, cfg.pipeline, cfg.mqtt, cfg.daemon
    need(16 <= s.width <= 8192, "source.width", f"must be 16..8192, got {s.width}")
    need(16 <= s.height <= 8192, "source.height", f"must be 16..8192, got {s.height}")
    need(0 < s.fps <= 1000, "source.fps", f"must be > 0 and <= 1000, got {s.fps}")
    need(
        p.variant in ("auto", "float", "int8"),
        "pipeline.variant",
        f"must be auto, float or int8, got {p.variant!r}",
    )
    need(0 <= p.threads <= 64, "pipeline.threads", f"must be 0 (auto) .. 64, got {p.threads}")
    need(1 <= p.num_poses <= 255, "pipeline.num_poses", f"must be 1..255, got {p.num_poses}")
    need(
        0 < p.min_detection_score < 1,
        "pipeline.min_detection_score",
        f"must be between 0 and 1, got {p.min_detection_score}",
    )
    need(bool(m.host.strip()), "mqtt.host", "must not be empty (use 'none' for stdout)")
    need(1 <= m.port <= 65535, "mqtt.port", f"must be 1..65535, got {m.port}")
    for key in ("qos_pose", "qos_status", "qos_stats"):
        need(
            getattr(m, key) in (0, 1, 2), f"mqtt.{key}", f"must be 0, 1 or 2, got {getattr(m, key)}"
        )
    need(5 <= m.keepalive <= 3600, "mqtt.keepalive", f"must be 5..3600 s, got {m.keepalive}")
    need(
        1 <= m.queue_limit <= 1_000_000,
        "mqtt.queue_limit",
        f"must be 1..1000000, got {m.queue_limit}",
    )
    need(
        m.encoding in ("json", "binary"),
        "mqtt.encoding",
        f"must be 'json' or 'binary', got {m.encoding!r}",
    )
    need(
        0.5 <= m.stats_interval <= 3600,
        "mqtt.stats_interval",
        f"must be 0.5..3600 s, got {m.stats_interval}",
    )
    need(
        1 <= m.reconnect_max_delay <= 3600,
        "mqtt.reconnect_max_delay",
        f"must be 1..3600 s, got {m.reconnect_max_delay}",
    )
    need(
        0 < m.connect_timeout <= 300,
        "mqtt.connect_timeout",
        f"must be > 0 and <= 300 s, got {m.connect_timeout}",
    )
    for key in ("device_id", "topic_prefix"):
        value = getattr(m, key)
        bad = (
            [c for c in "+#/" if c in value]
            if key == "device_id"
            else [c for c in "+#" if c in value]
        )
        need(
            not bad,
            f"mqtt.{key}",
            f"must not contain MQTT wildcards or separators {bad}, got {value!r}",
        )
    need(bool(m.topic_prefix.strip("/")), "mqtt.topic_prefix", "must not be empty")
    if m.password_file:
        need(
            Path(m.password_file).is_file(),
            "mqtt.password_file",
            f"{m.password_file} does not exist",
        )
        need(bool(m.username), "mqtt.username", "must be set when mqtt.password_file is")
    for key in ("ca_file", "cert_file", "key_file"):
        value = getattr(m.tls, key)
        if value:
            need(Path(value).is_file(), f"mqtt.tls.{key}", f"{value} does not exist")
    need(
        bool(m.tls.cert_file) == bool(m.tls.key_file),
        "mqtt.tls.key_file",
        "and mqtt.tls.cert_file go together",
    )
    sp = cfg.spool
    need(
        sp.mode in ("auto", "on", "off"), "spool.mode", f"must be auto, on or off, got {sp.mode!r}"
    )
    need(1 <= sp.max_mb <= 1_000_000, "spool.max_mb", f"must be 1..1000000, got {sp.max_mb}")
    need(sp.max_age_s >= 1, "spool.max_age_s", f"must be >= 1 s, got {sp.max_age_s}")
    need(
        0 <= sp.fsync_interval <= 3600,
        "spool.fsync_interval",
        f"must be 0..3600 s, got {sp.fsync_interval}",
    )
    need(d.max_frames >= 0, "daemon.max_frames", f"must be >= 0, got {d.max_frames}")
    need(
        d.log_level in ("debug", "info", "warning", "error"),
        "daemon.log_level",
        f"must be debug, info, warning or error, got {d.log_level!r}",
    )
    return cfg


def load(path: Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Read ``path`` (default: /etc/blazepose-edge/config.toml if it exists), apply ``overrides``
    ({"mqtt.port": 1884, ...}), validate, return."""
    cfg = Config()
    explicit = path is not None
    path = path or DEFAULT_CONFIG
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config: {path} is not valid TOML: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config: {path} is not UTF-8 text (TOML must be): {exc}") from exc
        except OSError as exc:
            raise ConfigError(f"config: cannot read {path}: {exc.strerror or exc}") from exc
        _check_section(cfg, data, "")
    elif explicit:
        raise ConfigError(f"config: {path} does not exist")
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        *parents, key = dotted.split(".")
        section = cfg
        for part in parents:
            section = getattr(section, part)
        _check_section(section, {key: value}, "".join(f"{p}." for p in parents))
    return validate(cfg)


def read_password(m: MqttConfig) -> str | None:
    """The MQTT password from mqtt.password_file, $CREDENTIALS_DIRECTORY/mqtt_password (systemd
    LoadCredential=), or the environment variable named by mqtt.password_env; None if none is set."""
    if m.password_file:
        path = Path(m.password_file)
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            raise ConfigError(f"mqtt.password_file: cannot read {path}: {exc.strerror}") from exc
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning(
                "mqtt.password_file %s can be read by other users (mode %03o): chmod 600 it",
                path, stat.S_IMODE(mode),
            )  # fmt: skip
        return _read_secret(path, "mqtt.password_file")
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds and (Path(creds) / "mqtt_password").is_file():
        return _read_secret(Path(creds) / "mqtt_password", "$CREDENTIALS_DIRECTORY/mqtt_password")
    if m.password_env and m.password_env in os.environ:
        return os.environ[m.password_env]
    return None


def _read_secret(path: Path, key: str) -> str:
    """The first line's worth of ``path`` (a password file), or a ConfigError naming ``key``
    (never the content)."""
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"{key}: cannot read {path}: {why}") from None


RELOADABLE = {
    "daemon.log_level",
    "mqtt.stats_interval",
    "pipeline.min_detection_score",
    "pipeline.smoothing",
}


def changed_keys(old: Config, new: Config) -> set[str]:
    """Dotted names of the settings that differ."""
    out: set[str] = set()

    def walk(a: Any, b: Any, prefix: str) -> None:
        for f in dataclasses.fields(a):
            x, y = getattr(a, f.name), getattr(b, f.name)
            if dataclasses.is_dataclass(x):
                walk(x, y, f"{prefix}{f.name}.")
            elif x != y:
                out.add(f"{prefix}{f.name}")

    walk(old, new, "")
    return out


def to_toml(cfg: Config) -> str:
    """The configuration as TOML (the default config file is written from this)."""
    lines: list[str] = []

    def emit(obj: Any, name: str) -> None:
        scalars = [
            f for f in dataclasses.fields(obj) if not dataclasses.is_dataclass(getattr(obj, f.name))
        ]
        tables = [
            f for f in dataclasses.fields(obj) if dataclasses.is_dataclass(getattr(obj, f.name))
        ]
        if name and scalars:
            lines.append(f"\n[{name}]")
        for f in scalars:
            value = getattr(obj, f.name)
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, str):  # JSON's escapes are TOML's; DEL must be escaped too
                text = json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
            else:
                text = repr(value)
            lines.append(f"{f.name} = {text}")
        for f in tables:
            emit(getattr(obj, f.name), f"{name}.{f.name}" if name else f.name)

    emit(cfg, "")
    return "\n".join(lines).lstrip() + "\n"
