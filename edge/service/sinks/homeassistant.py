"""Home Assistant MQTT discovery: the daemon as one Home Assistant device.

The device is announced with device-based discovery: one retained JSON document at
``<prefix>/device/<node_id>/config`` holding the device (``dev``), where the announcement comes
from (``o``) and its entities (``cmps``, each with its platform ``p`` and a ``unique_id`` made
from the device id, so the same daemon keeps the same entities across restarts):

- person present (binary sensor, occupancy) and people in view (sensor);
- frame rate, pipeline latency (p50, ms), CPU temperature and throttling where this board
  reports them, landmark model and variant (diagnostic entities).

Each entity expires (``expire_after``, 3 stats intervals, at least 60 s) when no state arrives.

Their state is a small retained JSON document on ``<topic_prefix>/<device_id>/state``
(``{"present": true, "people": 1, "fps": 29.8, "latency_ms": 41.2, ...}``), so Home Assistant
never parses landmarks: sent when the number of people changes (at most once per
``MIN_INTERVAL_S``) and with every stats document; ``null`` is unknown (presence while the camera
is lost, the figures before the first stats document). Availability follows the daemon's retained
status topic: ``online`` and ``degraded: ...`` count as available, ``offline`` (a clean stop, or
the broker's last will) does not.

The announcement is sent at every connection to the broker and again when Home Assistant
announces itself (``online`` on ``<prefix>/status``, its birth message): that topic is the only
one the daemon subscribes to, and ``online`` there only makes it announce again. ``blazepose-edge
ha remove`` (and ``install.sh --uninstall``) removes the device: an empty retained message on the
config topic (and on the state topic).

This sink uses the MQTT sink only through its transport API (``publish``, ``subscribe``,
``on_connect``, ``is_connected``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import threading
import time
from importlib import metadata
from typing import Protocol

from ... import __version__
from ...pose import board
from ..config import Config
from .base import FrameResult, Sink

log = logging.getLogger(__name__)

MIN_INTERVAL_S = 1.0  # at most one state message per second for changes of people in view
ANNOUNCE_INTERVAL_S = 1.0  # and one announcement per second, however often HA says online
QOS = 1
ORIGIN = "blazepose-edge"
# Home Assistant maps an availability payload through the template, then compares it with
# payload_available / payload_not_available (anything else leaves availability as it was): so
# "degraded: camera lost..." must become "online".
AVAILABILITY_TEMPLATE = "{{ 'offline' if value == 'offline' else 'online' }}"


class Transport(Protocol):
    """What this sink needs of the MQTT connection (``MqttPublisher`` provides it)."""

    topic_status: str

    @property
    def is_connected(self) -> bool: ...

    def publish(self, topic: str, payload, qos: int = 0, retain: bool = False) -> bool: ...

    def subscribe(self, topic: str, callback, qos: int = 1) -> None: ...

    def on_connect(self, callback) -> None: ...


def node_id(device_id: str) -> str:
    """The device id as a discovery topic level, which Home Assistant restricts to
    ``[a-zA-Z0-9_-]``: unchanged when it fits, else with the other characters replaced and a
    short hash of the original added (``cam.1`` -> ``cam_1_3f2a9c``), so two ids never meet."""
    safe = re.sub(r"[^a-zA-Z0-9_-]", "_", device_id)
    if safe == device_id:
        return safe
    return f"{safe}_{hashlib.sha256(device_id.encode()).hexdigest()[:6]}"


def topics(cfg: Config) -> dict[str, str]:
    """The topics of this device: ``config`` (discovery), ``state``, ``status`` (availability)
    and ``ha_status`` (Home Assistant's birth and last will)."""
    prefix = cfg.homeassistant.prefix.strip("/")
    base = f"{cfg.mqtt.topic_prefix.strip('/')}/{cfg.device_id}"
    return {
        "config": f"{prefix}/device/{node_id(cfg.device_id)}/config",
        "state": f"{base}/state",
        "status": f"{base}/status",
        "ha_status": f"{prefix}/status",
    }


def _support_url() -> str | None:
    """The project's URL from the installed package's metadata, if it declares one."""
    try:
        urls = metadata.metadata("blazepose-edge").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        return None
    for entry in urls:
        url = entry.split(",", 1)[-1].strip()
        if url.startswith(("http://", "https://")):
            return url
    return None


def _on_off(key: str) -> str:
    """A binary sensor's template: ON, OFF, or None (unknown) while the key is null."""
    return (
        f"{{{{ 'None' if value_json.{key} is none else ('ON' if value_json.{key} else 'OFF') }}}}"
    )


def expire_after(stats_interval: float) -> int:
    """Seconds after which Home Assistant shows an entity unavailable when no state arrived:
    the state is sent with every stats document, so this catches what the status topic cannot
    say (a board that lost power behind a bridged broker, a daemon that hangs)."""
    return max(60, math.ceil(3 * stats_interval))


def components(node: str, temperature: bool, throttling: bool, expire: int) -> dict[str, dict]:
    """The entities (``cmps``), keyed by a component id; each reads one key of the state
    document. ``temperature`` and ``throttling``: whether this board reports them; ``expire``:
    ``expire_after`` in seconds."""

    def entity(platform: str, key: str, name: str, template: str, **extra) -> dict:
        return {"p": platform, "name": name, "uniq_id": f"blazepose_edge_{node}_{key}",
                "val_tpl": template, "exp_aft": expire, **extra}  # fmt: skip

    diagnostic = {"ent_cat": "diagnostic"}
    out = {
        "person": entity("binary_sensor", "person", "Person present",
                         _on_off("present"), dev_cla="occupancy"),
        "people": entity("sensor", "people", "People in view", "{{ value_json.people }}",
                         stat_cla="measurement", ic="mdi:account-multiple"),
        "fps": entity("sensor", "fps", "Frame rate", "{{ value_json.fps }}",
                      unit_of_meas="fps", stat_cla="measurement", ic="mdi:speedometer",
                      **diagnostic),
        "latency": entity("sensor", "latency", "Pipeline latency", "{{ value_json.latency_ms }}",
                          dev_cla="duration", unit_of_meas="ms", stat_cla="measurement",
                          **diagnostic),
    }  # fmt: skip
    if temperature:
        out["temperature"] = entity(
            "sensor", "temperature", "CPU temperature", "{{ value_json.temperature_c }}",
            dev_cla="temperature", unit_of_meas="°C", stat_cla="measurement", **diagnostic,
        )  # fmt: skip
    if throttling:
        out["throttled"] = entity(
            "binary_sensor", "throttled", "Throttling",
            _on_off("throttled"), dev_cla="problem", **diagnostic,
        )  # fmt: skip
    out["model"] = entity("sensor", "model", "Landmark model", "{{ value_json.model }}",
                          ic="mdi:human", **diagnostic)  # fmt: skip
    out["variant"] = entity("sensor", "variant", "Model variant", "{{ value_json.variant }}",
                            ic="mdi:chip", **diagnostic)  # fmt: skip
    return out


def discovery_document(
    cfg: Config, temperature: bool | None = None, throttling: bool | None = None
) -> dict:
    """The device discovery document (abbreviated keys, as Home Assistant documents them).
    ``temperature`` / ``throttling``: whether to include those entities (default: whether this
    board reports them)."""
    t = topics(cfg)
    node = node_id(cfg.device_id)
    if temperature is None:
        temperature = board.soc_temperature() is not None
    if throttling is None:
        throttling = board.throttled_flags() is not None
    device = {
        "ids": [f"blazepose_edge_{node}"],
        "name": cfg.device_id,
        "mf": "blazepose-edge",
        "mdl": "BlazePose pose sensor",
        "sw": __version__,
    }
    hardware = board.board_model()
    if hardware:
        device["hw"] = hardware
    origin = {"name": ORIGIN, "sw": __version__}
    url = _support_url()
    if url:
        origin["url"] = url
    return {
        "dev": device,
        "o": origin,
        "avty": [
            {
                "t": t["status"],
                "val_tpl": AVAILABILITY_TEMPLATE,
                "pl_avail": "online",
                "pl_not_avail": "offline",
            }
        ],
        "stat_t": t["state"],
        "qos": QOS,
        "cmps": components(node, temperature, throttling, expire_after(cfg.mqtt.stats_interval)),
    }


class HomeAssistantDevice(Sink):
    """The Home Assistant device of one daemon, over the MQTT sink's connection."""

    name = "homeassistant"

    def __init__(self, cfg: Config, transport: Transport, clock=time.monotonic):
        self.cfg = cfg
        self.transport = transport
        self.clock = clock
        self.topics = topics(cfg)
        self.document = json.dumps(discovery_document(cfg), separators=(",", ":"),
                                   ensure_ascii=False).encode()  # fmt: skip
        self._lock = threading.Lock()
        self._state: dict = {"present": False, "people": 0, "fps": None, "latency_ms": None,
                             "temperature_c": None, "throttled": None, "model": None,
                             "variant": None}  # fmt: skip
        self._known = False  # a frame or stats document has filled the state in
        self._dirty = False  # a change not sent yet (rate limit)
        self._last_sent: float | None = None
        self._last_announce: float | None = None
        self._timer: threading.Timer | None = None
        self._stopped = False
        self.announcements = 0
        self.states = 0
        # registered before the MQTT sink starts: the first connection announces the device
        transport.on_connect(self._connected)
        transport.subscribe(self.topics["ha_status"], self._ha_status, qos=QOS)

    # --- network thread ---------------------------------------------------------------------

    def _connected(self) -> None:
        self.announce()

    def _ha_status(self, topic: str, payload: bytes) -> None:
        """Home Assistant's birth (``online``) or last will (``offline``) message; anything
        else is ignored."""
        if payload.strip() != b"online":
            return
        with self._lock:
            if self._stopped or self._timer is not None:
                return  # an announcement is due already
            now = self.clock()
            wait = 0.0
            if self._last_announce is not None:
                wait = ANNOUNCE_INTERVAL_S - (now - self._last_announce)
            if wait > 0:  # a burst of "online": one more announcement, a moment later
                self._timer = threading.Timer(wait, self._announce_later)
                self._timer.daemon = True
                self._timer.start()
                return
        log.info("Home Assistant is online: announcing the device again")
        self.announce()

    def _announce_later(self) -> None:
        with self._lock:
            self._timer = None
            if self._stopped:
                return
        self.announce()

    def announce(self) -> None:
        """Publish the discovery document (retained) and the current state."""
        with self._lock:
            self._last_announce = self.clock()
            if self.transport.publish(self.topics["config"], self.document, QOS, retain=True):
                self.announcements += 1
            if self._known:
                self._send()

    # --- the Sink interface -----------------------------------------------------------------

    def frame(self, result: FrameResult) -> None:
        people = len(result.poses)
        with self._lock:
            if people != self._state["people"] or not self._known:
                self._state["people"] = people
                self._state["present"] = people > 0
                self._known = True
                self._dirty = True
            if self._dirty and (
                self._last_sent is None or self.clock() - self._last_sent >= MIN_INTERVAL_S
            ):
                self._send()

    def set_status(self, status: str) -> None:
        """While the camera is lost, who is in view is unknown (the device stays available)."""
        if status.startswith("degraded"):
            with self._lock:
                if self._state["people"] is not None:
                    self._state.update(people=None, present=None)
                    self._known = True
                    self._send()

    def stats(self, stats: dict) -> None:
        total = (stats.get("latency_ms") or {}).get("total") or {}
        throttled = stats.get("throttled")
        with self._lock:
            self._state.update(
                fps=stats.get("fps"),
                latency_ms=total.get("p50"),
                temperature_c=stats.get("temperature_c"),
                throttled=None if throttled is None else bool(throttled & 0xF),
                model=stats.get("model"),
                variant=stats.get("variant"),
            )
            self._known = True
            self._send()

    def _send(self) -> None:
        """Publish the state document (holding ``self._lock``): when connected only, since a
        stale state must not arrive late; a connection sends the current one."""
        if not self.transport.is_connected:
            return
        payload = json.dumps(self._state, separators=(",", ":")).encode()
        if self.transport.publish(self.topics["state"], payload, QOS, retain=True):
            self.states += 1
            self._dirty = False
            self._last_sent = self.clock()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            if self._timer is not None:
                self._timer.cancel()

    def report(self) -> dict:
        with self._lock:
            return {"announcements": self.announcements, "states": self.states}


def removal_messages(cfg: Config) -> list[tuple[str, bytes, bool]]:
    """What ``blazepose-edge ha remove`` publishes: an empty retained message on the config
    topic (Home Assistant removes the device and its entities) and on the state topic (the
    broker forgets the last state)."""
    t = topics(cfg)
    return [(t["config"], b"", True), (t["state"], b"", True)]
