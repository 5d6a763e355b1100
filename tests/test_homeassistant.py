"""The Home Assistant device: the discovery document checked against Home Assistant's documented
device discovery schema, its templates rendered as Home Assistant renders them (Jinja2), the state
topic's rate, the re-announcement, ``ha remove``; end to end with the demo clip and a real
Mosquitto, and a fleet of two daemons behind bridged brokers."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edge.service import config
from edge.service.sinks import FrameResult, MqttPublisher, StdoutPublisher, make_sinks
from edge.service.sinks import homeassistant as ha

from .broker import PASSWORD, USER, Subscriber, free_port
from .test_daemon import finish, start_daemon

ROOT = Path(__file__).resolve().parent.parent

# --- Home Assistant's device discovery schema, as documented ------------------------------------
# (www.home-assistant.io/integrations/mqtt, "Device discovery payload"; the abbreviations are
# those of homeassistant/components/mqtt/abbreviations.py, the keys those of its schemas.py)

ABBREVIATIONS = {
    "avty": "availability", "avty_mode": "availability_mode", "avty_t": "availability_topic",
    "avty_tpl": "availability_template", "cmps": "components", "dev": "device",
    "dev_cla": "device_class", "ent_cat": "entity_category", "exp_aft": "expire_after",
    "ic": "icon", "name": "name", "o": "origin", "p": "platform", "pl_avail": "payload_available",
    "pl_not_avail": "payload_not_available", "pl_off": "payload_off", "pl_on": "payload_on",
    "qos": "qos", "stat_cla": "state_class", "stat_t": "state_topic", "t": "topic",
    "uniq_id": "unique_id", "unit_of_meas": "unit_of_measurement", "val_tpl": "value_template",
}  # fmt: skip
DEVICE_ABBREVIATIONS = {
    "cns": "connections", "cu": "configuration_url", "hw": "hw_version", "ids": "identifiers",
    "mdl": "model", "mdl_id": "model_id", "mf": "manufacturer", "name": "name",
    "sa": "suggested_area", "sn": "serial_number", "sw": "sw_version",
}  # fmt: skip
ORIGIN_ABBREVIATIONS = {"name": "name", "sw": "sw_version", "url": "support_url"}
# DEVICE_DISCOVERY_SCHEMA: the keys allowed at the root of a device discovery payload
ROOT_KEYS = {
    "device", "origin", "components", "availability", "availability_mode",
    "availability_template", "availability_topic", "payload_available", "payload_not_available",
    "state_topic", "command_topic", "qos", "encoding",
}  # fmt: skip
ENTITY_KEYS = {
    "platform", "name", "unique_id", "value_template", "device_class", "unit_of_measurement",
    "state_class", "entity_category", "icon", "expire_after", "payload_on", "payload_off",
    "enabled_by_default", "force_update",
}  # fmt: skip
DEVICE_CLASSES = {
    "binary_sensor": {"occupancy", "presence", "motion", "problem", "running"},
    "sensor": {"duration", "temperature"},
}
UNITS = {"duration": {"d", "h", "min", "s", "ms", "µs"}, "temperature": {"°C", "°F", "K"}}
DISCOVERY_TOPIC = re.compile(
    r"^(?P<prefix>.+)/(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?"
    r"(?P<object_id>[a-zA-Z0-9_-]+)/config$"
)


def expand(payload: dict, names: dict) -> dict:
    """Home Assistant's ``_replace_abbreviations``; an unknown abbreviation fails the test."""
    out = {}
    for key, value in payload.items():
        assert key in names or key in names.values(), f"{key!r} is not a valid key/abbreviation"
        out[names.get(key, key)] = value
    return out


def valid_topic(topic: str) -> bool:
    return bool(topic) and "+" not in topic and "#" not in topic and "\0" not in topic


def check_discovery(topic: str, document: dict, prefix: str = "homeassistant") -> dict:
    """Assert ``document`` on ``topic`` is a valid device discovery payload; return it with
    every abbreviation expanded."""
    match = DISCOVERY_TOPIC.match(topic)
    assert match and match["prefix"] == prefix and match["component"] == "device", topic
    doc = expand(document, ABBREVIATIONS)
    assert set(doc) <= ROOT_KEYS, set(doc) - ROOT_KEYS
    for required in ("device", "origin", "components"):  # the mandatory mappings
        assert required in doc, required
    device = expand(doc["device"], DEVICE_ABBREVIATIONS)
    assert device.get("identifiers") or device.get("connections")
    assert all(isinstance(i, str) and i for i in device["identifiers"])
    assert all(isinstance(device[k], str) for k in device if k != "identifiers")
    origin = expand(doc["origin"], ORIGIN_ABBREVIATIONS)
    assert isinstance(origin.get("name"), str) and origin["name"]
    if "support_url" in origin:
        assert origin["support_url"].startswith(("http://", "https://"))
    assert valid_topic(doc["state_topic"])
    assert doc.get("qos", 0) in (0, 1, 2)
    availability = [expand(a, ABBREVIATIONS) for a in doc["availability"]]
    for entry in availability:
        assert valid_topic(entry["topic"])
    doc["availability"] = availability
    components, unique_ids = {}, set()
    for cid, raw in doc["components"].items():
        assert re.fullmatch(r"[a-zA-Z0-9_-]+", cid), cid
        comp = expand(raw, ABBREVIATIONS)
        assert set(comp) <= ENTITY_KEYS, (cid, set(comp) - ENTITY_KEYS)
        assert comp["platform"] in DEVICE_CLASSES, comp["platform"]
        assert isinstance(comp["unique_id"], str) and comp["unique_id"] not in unique_ids
        unique_ids.add(comp["unique_id"])
        if "device_class" in comp:
            assert comp["device_class"] in DEVICE_CLASSES[comp["platform"]], comp
            if comp["device_class"] in UNITS:
                assert comp["unit_of_measurement"] in UNITS[comp["device_class"]], comp
        assert comp.get("entity_category") in (None, "diagnostic", "config")
        assert comp.get("state_class") in (None, "measurement")
        assert isinstance(comp.get("expire_after", 1), int) and comp.get("expire_after", 1) > 0
        components[cid] = comp
    doc["components"] = components
    doc["device"], doc["origin"] = device, origin
    return doc


def render(template: str, payload: bytes | str):
    """A template as Home Assistant renders an MQTT value template: ``value`` is the payload,
    ``value_json`` the payload parsed as JSON when it is JSON."""
    jinja2 = pytest.importorskip("jinja2")
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    text = payload.decode() if isinstance(payload, bytes) else payload
    try:
        value_json = json.loads(text)
    except ValueError:
        value_json = jinja2.Undefined()
    env = ImmutableSandboxedEnvironment()
    return env.from_string(template).render(value=text, value_json=value_json).strip()


def available(doc: dict, status: bytes) -> bool | None:
    """What Home Assistant makes of a status message: the template's result compared with
    payload_available / payload_not_available (anything else: no change, None)."""
    entry = doc["availability"][0]
    result = render(entry.get("value_template") or "{{ value }}", status)
    if result == entry.get("payload_available", "online"):
        return True
    if result == entry.get("payload_not_available", "offline"):
        return False
    return None


def entity_states(doc: dict, state: bytes) -> dict[str, str]:
    """Each entity's state for a state message ("None": unknown)."""
    return {cid: render(c["value_template"], state) for cid, c in doc["components"].items()}


def cfg_for(device: str = "cam1"):
    return config.load(None, {"mqtt.device_id": device, "mqtt.host": "127.0.0.1"})


# --- the document, without a broker -------------------------------------------------------------


@pytest.mark.parametrize("readable", [True, False])
def test_document_follows_the_documented_schema(readable):
    cfg = cfg_for()
    t = ha.topics(cfg)
    document = ha.discovery_document(cfg, temperature=readable, throttling=readable)
    doc = check_discovery(t["config"], json.loads(json.dumps(document)))
    assert t["config"] == "homeassistant/device/cam1/config"
    assert doc["state_topic"] == t["state"] == "blazepose/cam1/state"
    assert doc["availability"][0]["topic"] == "blazepose/cam1/status"
    comps = doc["components"]
    assert comps["person"]["platform"] == "binary_sensor"
    assert comps["person"]["device_class"] == "occupancy"
    assert comps["people"]["platform"] == "sensor"
    for diagnostic in ("fps", "latency", "model", "variant"):
        assert comps[diagnostic]["entity_category"] == "diagnostic"
    assert ("temperature" in comps) is readable and ("throttled" in comps) is readable
    assert doc["origin"]["name"] == "blazepose-edge" and doc["origin"]["sw_version"]
    assert doc["device"]["name"] == "cam1" and doc["device"]["sw_version"]


def test_availability_online_and_degraded_count_offline_does_not():
    cfg = cfg_for()
    doc = check_discovery(ha.topics(cfg)["config"], ha.discovery_document(cfg))
    assert available(doc, b"online") is True
    assert available(doc, b"degraded: camera lost: /dev/video0 gone") is True
    assert available(doc, b"offline") is False


def test_entity_states_from_the_state_document():
    cfg = cfg_for()
    doc = check_discovery(
        ha.topics(cfg)["config"], ha.discovery_document(cfg, temperature=True, throttling=True)
    )
    state = {"present": True, "people": 2, "fps": 29.5, "latency_ms": 41.2, "temperature_c": 61.3,
             "throttled": False, "model": "full", "variant": "float"}  # fmt: skip
    states = entity_states(doc, json.dumps(state))
    assert states == {"person": "ON", "people": "2", "fps": "29.5", "latency": "41.2",
                      "temperature": "61.3", "throttled": "OFF", "model": "full",
                      "variant": "float"}  # fmt: skip
    unknown = {**state, "fps": None, "present": False, "people": 0}
    states = entity_states(doc, json.dumps(unknown))
    assert states["fps"] == "None"  # Home Assistant shows "None" as unknown
    assert states["person"] == "OFF" and states["people"] == "0"
    lost = {**state, "present": None, "people": None, "throttled": None}  # camera lost
    states = entity_states(doc, json.dumps(lost))
    assert states["person"] == states["people"] == states["throttled"] == "None"


def test_node_id_fits_the_discovery_topic_and_stays_distinct():
    assert ha.node_id("porch-cam_2") == "porch-cam_2"
    dotted, slashed = ha.node_id("cam.1"), ha.node_id("cam 1")
    assert re.fullmatch(r"[a-zA-Z0-9_-]+", dotted) and dotted.startswith("cam_1_")
    assert dotted != slashed and dotted == ha.node_id("cam.1")
    cfg = cfg_for("cam.1")
    assert DISCOVERY_TOPIC.match(ha.topics(cfg)["config"])


def test_sinks_the_configuration_asks_for():
    sinks = make_sinks(cfg_for())
    assert [type(s) for s in sinks] == [MqttPublisher, ha.HomeAssistantDevice]
    off = config.load(None, {"mqtt.device_id": "cam1"})
    off.homeassistant.discovery = False
    assert [type(s) for s in make_sinks(off)] == [MqttPublisher]
    stdout = config.load(None, {"mqtt.host": "none"})
    assert [type(s) for s in make_sinks(stdout)] == [StdoutPublisher]


# --- the sink's behaviour, with a stand-in transport --------------------------------------------


class FakeTransport:
    topic_status = "blazepose/cam1/status"

    def __init__(self):
        self.is_connected = True
        self.sent: list[tuple[str, bytes, int, bool]] = []
        self.subscriptions: dict = {}
        self.hooks: list = []

    def publish(self, topic, payload, qos=0, retain=False):
        self.sent.append((topic, payload, qos, retain))
        return True

    def subscribe(self, topic, callback, qos=1):
        self.subscriptions[topic] = callback

    def on_connect(self, callback):
        self.hooks.append(callback)

    def on(self, suffix: str) -> list[bytes]:
        return [p for t, p, _, _ in self.sent if t.endswith(suffix)]


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def result(people: int) -> FrameResult:
    return FrameResult(0, 0.0, 8, 8, [object()] * people, np.zeros((8, 8, 3), np.uint8))


def test_state_sent_on_change_at_most_once_a_second():
    transport, clock = FakeTransport(), Clock()
    device = ha.HomeAssistantDevice(cfg_for(), transport, clock=clock)
    assert list(transport.subscriptions) == ["homeassistant/status"]  # nothing else
    for hook in transport.hooks:
        hook()
    assert len(transport.on("/config")) == 1 and transport.on("/state") == []  # nothing known
    people = [0, 1] * 25  # flickering every 0.1 s for 5 s
    for n in people:
        device.frame(result(n))
        clock.now += 0.1
    states = [json.loads(p) for p in transport.on("/state")]
    assert 4 <= len(states) <= 6
    device.frame(result(1))  # no change since the last frame: nothing more
    clock.now += 2
    device.frame(result(1))  # the change not sent yet goes out once the second has passed
    last = json.loads(transport.on("/state")[-1])
    assert last["people"] == 1 and last["present"] is True
    before = len(transport.on("/state"))
    for _ in range(30):
        device.frame(result(1))
        clock.now += 0.1
    assert len(transport.on("/state")) == before  # steady: nothing sent
    device.stats({"fps": 30.0, "latency_ms": {"total": {"p50": 40.0}}, "temperature_c": None,
                  "throttled": 0x50000, "model": "full", "variant": "float"})  # fmt: skip
    last = json.loads(transport.on("/state")[-1])
    assert last["fps"] == 30.0 and last["latency_ms"] == 40.0 and last["throttled"] is False
    assert all(retain for t, _, _, retain in transport.sent)
    assert device.report() == {"announcements": 1, "states": len(transport.on("/state"))}


def test_nothing_is_sent_while_disconnected_and_the_connection_sends_the_state():
    transport, clock = FakeTransport(), Clock()
    device = ha.HomeAssistantDevice(cfg_for(), transport, clock=clock)
    transport.is_connected = False
    device.frame(result(1))
    assert transport.on("/state") == []
    transport.is_connected = True
    transport.hooks[0]()
    assert len(transport.on("/config")) == 1
    assert json.loads(transport.on("/state")[-1])["people"] == 1


def test_presence_is_unknown_while_the_camera_is_lost():
    transport, clock = FakeTransport(), Clock()
    device = ha.HomeAssistantDevice(cfg_for(), transport, clock=clock)
    device.frame(result(1))
    device.set_status("degraded: camera lost: /dev/video0 gone")
    last = json.loads(transport.on("/state")[-1])
    assert last["present"] is None and last["people"] is None
    device.set_status("online")
    clock.now += 1
    device.frame(result(1))
    last = json.loads(transport.on("/state")[-1])
    assert last["present"] is True and last["people"] == 1


def test_only_online_on_the_ha_status_topic_announces_and_bursts_are_bounded():
    transport, clock = FakeTransport(), Clock()
    device = ha.HomeAssistantDevice(cfg_for(), transport, clock=clock)
    on_status = transport.subscriptions["homeassistant/status"]
    for payload in (b"offline", b"", b"restart", b"online please", b'{"cmd":"remove"}'):
        on_status("homeassistant/status", payload)
    assert transport.on("/config") == []
    on_status("homeassistant/status", b"online")
    assert len(transport.on("/config")) == 1
    for _ in range(50):  # a burst: one more announcement, a moment later
        on_status("homeassistant/status", b"online")
    assert len(transport.on("/config")) == 1
    deadline = time.monotonic() + 3
    while len(transport.on("/config")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    assert len(transport.on("/config")) == 2
    device.stop()


def test_uninstall_removes_the_device_before_the_venv():
    text = (ROOT / "install.sh").read_text()
    block = text[text.index('if [ "$UNINSTALL" = 1 ]') :]
    assert block.index("ha remove") < block.index('rm -rf "$SVC_HOME"')


# --- a daemon, a real Mosquitto, a subscriber on homeassistant/# --------------------------------


def ha_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge.service.cli", "ha", *args],
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def configs(sub: Subscriber, node: str = "cam1") -> list[bytes]:
    return [p for p, _ in sub.on(f"homeassistant/device/{node}/config")]


def states(sub: Subscriber, device: str = "cam1") -> list[dict]:
    return [json.loads(p) for p, _ in sub.on(f"blazepose/{device}/state") if p]


def test_home_assistant_device_end_to_end(models_ready, broker_factory, tmp_path):
    broker = broker_factory(log_subscriptions=True)
    conf = tmp_path / "c.toml"
    conf.write_text("[mqtt]\nstats_interval = 1\n")
    hass = Subscriber(broker, "homeassistant/#")
    ours = Subscriber(broker, "blazepose/cam1/#")
    args = ("--config", str(conf), "--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port),
            "--device-id", "cam1")  # fmt: skip
    proc = start_daemon(*args, "--source", "demo", "--realtime", "--loop")
    try:
        assert hass.wait_for(lambda: configs(hass)), proc.stderr.peek().decode()
        first = configs(hass)[0]
        doc = check_discovery("homeassistant/device/cam1/config", json.loads(first))
        late = Subscriber(broker, "homeassistant/device/cam1/config")  # retained
        assert late.wait_for(lambda: late.on("/config") == [(first, True)], 5)
        late.close()
        status_topic = doc["availability"][0]["topic"]
        assert (
            status_topic == "blazepose/cam1/status" and doc["state_topic"] == "blazepose/cam1/state"
        )
        # the demo clip: one person, and the stats-derived values
        assert ours.wait_for(lambda: any(s["people"] == 1 and s["present"] for s in states(ours)))
        assert ours.wait_for(lambda: any(s["fps"] and s["model"] == "full" for s in states(ours)))
        last = ours.on("/state")[-1][0]
        shown = entity_states(doc, last)
        assert shown["person"] == "ON" and shown["people"] == "1" and shown["model"] == "full"
        assert float(shown["fps"]) > 0 and float(shown["latency"]) > 0
        assert available(doc, ours.on("/status")[-1][0]) is True
        # the state topic's rate: changes at most once a second, plus one per stats document
        before = len(ours.on("/state"))
        time.sleep(3)
        assert len(ours.on("/state")) - before <= 2 * 3 + 1
        # Home Assistant restarts: its birth message brings a new announcement
        announced = len(configs(hass))
        hass.client.publish("homeassistant/status", "online", qos=1).wait_for_publish(5)
        assert hass.wait_for(lambda: len(configs(hass)) > announced, 10)
        assert configs(hass)[-1] == first
        # nothing else on the broker steers it
        announced = len(configs(hass))
        for topic, payload in [
            ("homeassistant/status", "offline"), ("homeassistant/status", "remove"),
            ("blazepose/cam1/set", "stop"), ("blazepose/cam1/command", '{"cmd": "stop"}'),
            ("blazepose/cam1/config", "{}"), ("homeassistant/device/cam1/set", "OFF"),
            ("homeassistant/binary_sensor/cam1/person/set", "OFF"), ("blazepose-edge/cam1", "x"),
        ]:  # fmt: skip
            hass.client.publish(topic, payload, qos=1).wait_for_publish(5)
        time.sleep(1.5)
        assert len(configs(hass)) == announced and proc.poll() is None
        from edge.service.config import MqttConfig
        from edge.service.sinks.clientid import resolve_client_id

        daemon = resolve_client_id(MqttConfig(), "cam1").value  # the one kept in the state folder
        subscribed = {f for client, f in broker.subscriptions() if client == daemon}
        assert subscribed == {"homeassistant/status"}
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert "WARNING" not in err.decode() and "ERROR" not in err.decode(), err.decode()
    assert ours.wait_for(lambda: ours.on("/status")[-1][0] == b"offline", 10)
    assert available(doc, ours.on("/status")[-1][0]) is False
    # a restart announces the same device with the same entities (unique ids stable)
    code, _, err = finish(start_daemon(*args, "--source", "demo", "--max-frames", "10"))
    assert code == 0, err
    assert hass.wait_for(lambda: len(configs(hass)) > announced)
    assert json.loads(configs(hass)[-1]) == json.loads(first)
    # ha remove: the config topic emptied, nothing retained for Home Assistant to find again
    done = ha_cli("remove", "--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port),
                  "--device-id", "cam1")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "homeassistant/device/cam1/config" in done.stdout
    assert hass.wait_for(lambda: configs(hass)[-1] == b"")
    hass.close()
    ours.close()
    late = Subscriber(broker, "homeassistant/#")
    time.sleep(0.5)
    assert late.messages == []
    late.close()
    late = Subscriber(broker, "blazepose/cam1/state")
    time.sleep(0.5)
    assert late.messages == []
    late.close()


def test_ha_remove_without_a_broker_exits_5(tmp_path):
    done = ha_cli("remove", "--mqtt-host", "127.0.0.1", "--mqtt-port", str(free_port()),
                  "--device-id", "cam1", "--timeout", "3")  # fmt: skip
    assert done.returncode == 5
    assert "cannot remove the Home Assistant device" in done.stderr
    assert "unreachable" in done.stderr


def test_ha_remove_reads_the_password_as_the_daemon_does(broker_factory, tmp_path, monkeypatch):
    broker = broker_factory(auth=True)
    conf = tmp_path / "c.toml"
    conf.write_text(f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nusername = "{USER}"\n')
    monkeypatch.setenv("BLAZEPOSE_EDGE_MQTT_PASSWORD", "wrong")
    done = ha_cli("remove", "--config", str(conf), "--device-id", "cam1")
    assert done.returncode == 5 and "refused" in done.stderr, done.stderr
    assert "wrong" not in done.stderr
    monkeypatch.setenv("BLAZEPOSE_EDGE_MQTT_PASSWORD", PASSWORD)
    done = ha_cli("remove", "--config", str(conf), "--device-id", "cam1")
    assert done.returncode == 0, done.stderr


def test_ha_show_prints_the_document():
    done = ha_cli("show", "--device-id", "porch")
    assert done.returncode == 0, done.stderr
    topic, _, text = done.stdout.partition("\n")
    check_discovery(topic, json.loads(text))


# --- a fleet: two boards, each with its own broker bridged to a central one ---------------------


def test_fleet_two_daemons_through_bridged_brokers(models_ready, broker_factory):
    central = broker_factory("central")
    boards = {name: broker_factory(name, bridge_to=central) for name in ("board-a", "board-b")}
    hass = Subscriber(central, "homeassistant/#")
    ours = Subscriber(central, "blazepose/#")
    time.sleep(1.5)  # the bridges connect
    procs = {
        name: start_daemon(
            "--source",
            "demo",
            "--realtime",
            "--loop",
            "--mqtt-host",
            "127.0.0.1",
            "--mqtt-port",
            str(broker.port),
            "--device-id",
            name,
        )  # fmt: skip
        for name, broker in boards.items()
    }
    try:
        for name in boards:
            assert hass.wait_for(lambda n=name: configs(hass, n), 60), name
            check_discovery(
                f"homeassistant/device/{name}/config", json.loads(configs(hass, name)[0])
            )
            assert ours.wait_for(lambda n=name: ours.on(f"{n}/pose"), 60), name
            assert ours.wait_for(lambda n=name: any(s["present"] for s in states(ours, n))), name
            assert any(p == b"online" for p, _ in ours.on(f"{name}/status")), name
        # Home Assistant, on the central broker, restarts: both boards announce again
        counts = {name: len(configs(hass, name)) for name in boards}
        hass.client.publish("homeassistant/status", "online", qos=1).wait_for_publish(5)
        for name in boards:
            assert hass.wait_for(lambda n=name: len(configs(hass, n)) > counts[n], 10), name
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        errors = {name: proc.communicate(timeout=30)[1].decode() for name, proc in procs.items()}
    for name, proc in procs.items():
        assert proc.returncode == 0, errors[name]
        assert ours.wait_for(lambda n=name: ours.on(f"{n}/status")[-1][0] == b"offline", 10)
    # what a late subscriber on the central broker finds retained: both devices, offline
    hass.close()
    ours.close()
    late = Subscriber(central, "#")
    assert late.wait_for(lambda: len(late.messages) >= 6, 5)
    retained = {t: p for t, p, r in late.messages if r}
    for name in boards:
        assert retained[f"blazepose/{name}/status"] == b"offline"
        assert json.loads(retained[f"homeassistant/device/{name}/config"])["dev"]["name"] == name
        assert "present" in json.loads(retained[f"blazepose/{name}/state"])
    late.close()
