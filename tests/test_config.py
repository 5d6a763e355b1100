import dataclasses
import os
import re
import threading
import tomllib
from pathlib import Path

import pytest

from edge.service import config
from edge.service.cli import main
from edge.service.config import Config, ConfigError, load, read_password, to_toml


def write(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_defaults_round_trip_through_toml(tmp_path):
    cfg = load(write(tmp_path, to_toml(Config())))
    assert cfg == Config()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[mqtt]\nprot = 1\n", "unknown key mqtt.prot"),
        ("[camera]\nx = 1\n", "unknown key camera"),
        ('[mqtt]\nport = "1883"\n', "mqtt.port must be an integer"),
        ("[mqtt]\nport = 70000\n", "mqtt.port must be 1..65535"),
        ("[mqtt]\nqos_pose = 3\n", "mqtt.qos_pose must be 0, 1 or 2"),
        ('[mqtt]\nencoding = "xml"\n', "mqtt.encoding"),
        ('[mqtt]\ndevice_id = "a/b"\n', "mqtt.device_id must not contain"),
        ("[source]\nfps = 0\n", "source.fps"),
        ("[source]\nloop = 1\n", "source.loop must be true or false"),
        ('[pipeline]\nvariant = "int4"\n', "pipeline.variant"),
        ('[pipeline]\nmodel = "medium"\n', "pipeline.model must be lite, full or heavy"),
        (
            '[pipeline]\nmodel = "heavy"\nvariant = "int8"\n',
            "int8 exists for pipeline.model lite and full",
        ),
        ('[mqtt.tls]\nca_file = "/nope/ca.crt"\n', "mqtt.tls.ca_file"),
        ('[mqtt]\npassword_file = "/nope"\n', "mqtt.password_file"),
        ("[mqtt]\ntls = 3\n", "mqtt.tls must be a table"),
        ("not toml [", "not valid TOML"),
        ("[mqtt]\nreconnect_max_delay = nan\n", "mqtt.reconnect_max_delay must be 1..3600"),
        ("[mqtt]\nreconnect_max_delay = -5.0\n", "mqtt.reconnect_max_delay"),
    ],
)
def test_bad_values_name_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load(write(tmp_path, text))


def test_strings_with_control_characters_round_trip_through_toml(tmp_path):
    cfg = Config()
    cfg.source.uri = 'porch\nx "q" \\ caf\u00e9 \x7f\t'  # a key with no check on its characters
    path = tmp_path / "c.toml"
    path.write_text(to_toml(cfg), encoding="utf-8")
    assert load(path).source.uri == cfg.source.uri


def test_flags_override_the_file(tmp_path):
    cfg = load(write(tmp_path, '[mqtt]\nport = 1884\nhost = "broker"\n'), {"mqtt.port": 1999})
    assert cfg.mqtt.port == 1999 and cfg.mqtt.host == "broker"


def test_bad_override_names_the_flag_key(tmp_path):
    with pytest.raises(ConfigError, match=r"mqtt\.port must be 1\.\.65535"):
        load(write(tmp_path, ""), {"mqtt.port": 0})


def test_missing_explicit_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "none.toml")


def test_unreadable_or_non_utf8_file_is_a_config_error(tmp_path):
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b"[daemon]\n# caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load(latin1)
    folder = tmp_path / "a-folder.toml"
    folder.mkdir()  # said what it is, not "does not exist"
    with pytest.raises(ConfigError, match=r"a-folder\.toml is a directory$"):
        load(folder)


def test_unreadable_password_file_names_the_key_not_the_content(tmp_path):
    m = Config().mqtt
    m.password_file = str(tmp_path / "missing")
    with pytest.raises(ConfigError, match="mqtt.password_file: cannot read"):
        read_password(m)
    (tmp_path / "pw").write_bytes(b"s3cret\xff\n")
    (tmp_path / "pw").chmod(0o600)
    m.password_file = str(tmp_path / "pw")
    with pytest.raises(ConfigError, match="not UTF-8") as err:
        read_password(m)
    assert "s3cret" not in str(err.value)


def test_default_file_is_optional(monkeypatch, tmp_path):
    monkeypatch.setattr(config, "DEFAULT_CONFIG", tmp_path / "absent.toml")
    assert load() == Config()


def test_password_sources(tmp_path, monkeypatch):
    m = Config().mqtt
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv(m.password_env, raising=False)
    assert read_password(m) is None
    monkeypatch.setenv(m.password_env, "from-env")
    assert read_password(m) == "from-env"
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt_password").write_text("from-systemd\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert read_password(m) == "from-systemd"
    (tmp_path / "pw").write_text("from-file\n")
    m.password_file = str(tmp_path / "pw")
    assert read_password(m) == "from-file"


def test_check_config_command(tmp_path, capsys):
    good = write(tmp_path, "[mqtt]\nport = 1884\n")
    assert main(["check-config", "--config", str(good)]) == 0
    assert "configuration ok" in capsys.readouterr().out
    assert main(["check-config", "--config", str(good), "--mqtt-port", "0"]) == 2
    assert "mqtt.port" in capsys.readouterr().err
    assert main(["check-config", "--config", str(good), "--print"]) == 0
    assert "port = 1884" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[mqtt]\nkeepalive = 2\n", "mqtt.keepalive must be 5..3600 s, got 2"),
        ("[pipeline]\nmin_detection_score = 1.0\n", "pipeline.min_detection_score must be > 0"),
        ("[pipeline]\nthreads = 65\n", "pipeline.threads must be 0..64, got 65"),
        ("[spool]\nmax_age_s = 0.5\n", "spool.max_age_s must be >= 1 s, got 0.5"),
        ('[spool]\nmode = "maybe"\n', "spool.mode must be auto, on or off, got 'maybe'"),
        ('[daemon]\nlog_level = "trace"\n', "daemon.log_level must be debug, info, warning or"),
        ("[daemon]\nmax_frames = -1\n", "daemon.max_frames must be >= 0, got -1"),
        ('[mqtt]\nhost = " "\n', "mqtt.host must not be empty (use 'none' for stdout)"),
        ('[mqtt]\ntopic_prefix = "//"\n', "mqtt.topic_prefix must not be empty"),
        ('[mqtt]\ntopic_prefix = "a/+"\n', "mqtt.topic_prefix must not contain"),
        ("[spool]\nmax_mb = true\n", "spool.max_mb must be a number, got True"),
        ('[mqtt]\npassword_file = "c.toml"\n', "mqtt.username must be set when"),
        ('[mqtt.tls]\ncert_file = "c.toml"\n', "mqtt.tls.key_file and mqtt.tls.cert_file go"),
        ("[mqtt.tls]\nfoo = 1\n", "unknown key mqtt.tls.foo (known in this section: ca_file,"),
        ('[homeassistant]\nprefix = "ha/#"\n', "homeassistant.prefix must not contain"),
    ],
)
def test_declared_constraints_name_the_key(tmp_path, monkeypatch, text, message):
    monkeypatch.chdir(tmp_path)  # "c.toml" above is the file itself: one that exists
    with pytest.raises(ConfigError, match="^config: " + re.escape(message)):
        load(write(tmp_path, text))


def test_validate_checks_types_of_a_config_built_in_code():
    cfg = Config()
    cfg.mqtt.port = "1883"
    with pytest.raises(ConfigError, match="mqtt.port must be an integer"):
        config.validate(cfg)


def test_every_key_is_declared_once_with_a_description():
    assert len(config.KEYS) == 54
    for key in config.KEYS.values():
        assert key.spec.doc.strip(), key.name
        assert key.type in (bool, int, float, str), key.name
    assert config.default("mqtt.port") == Config().mqtt.port == 1883


def test_reloadable_keys_come_from_the_declarations():
    assert {
        "daemon.log_level",
        "mqtt.stats_interval",
        "pipeline.min_detection_score",
        "pipeline.smoothing",
        "pipeline.idle_detect_hz",
    } == config.RELOADABLE


def test_changed_keys():
    new = Config()
    new.mqtt.tls.insecure = True
    new.daemon.log_level = "debug"
    assert config.changed_keys(Config(), new) == {"mqtt.tls.insecure", "daemon.log_level"}


def test_printed_config_is_commented_toml_that_round_trips(tmp_path, capsys):
    good = write(tmp_path, '[mqtt]\nport = 1884\nencoding = "binary"\n[mqtt.tls]\nenabled = true\n')
    assert main(["check-config", "--config", str(good), "--threads", "2", "--print"]) == 0
    out = capsys.readouterr().out
    again = tmp_path / "again.toml"
    again.write_text(out, encoding="utf-8")
    cfg = load(again)
    assert cfg == load(good, {"pipeline.threads": 2})
    assert (cfg.mqtt.port, cfg.mqtt.encoding, cfg.mqtt.tls.enabled) == (1884, "binary", True)
    assert tomllib.loads(out)["pipeline"]["threads"] == 2
    lines = out.splitlines()
    for name, key in config.KEYS.items():
        section, leaf = name.rsplit(".", 1)  # in its own table: mqtt.port, http.port
        head = lines.index(f"[{section}]")
        at = next(i for i in range(head, len(lines)) if lines[i].startswith(f"{leaf} = "))
        start = at
        while lines[start - 1].startswith("# "):
            start -= 1
        above = " ".join(line[2:] for line in lines[start:at])
        assert above.startswith(" ".join(key.spec.doc.split())), name
        assert f"default: {config.toml_value(key.default)}" in above, name
    assert "# integer; allowed: 1..65535; default: 1883\nport = 1884\n" in out
    assert "# [mqtt.tls] " in out
    assert "applied on SIGHUP\nlog_level = " in out


def test_default_config_file_is_self_documenting():
    text = to_toml(Config())
    assert tomllib.loads(text) == tomllib.loads(to_toml(Config(), comments=False))
    assert "# Broker port.\n" in text


def test_reference_doc_is_generated_from_the_model():
    doc = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
    current = doc.read_text(encoding="utf-8") if doc.is_file() else ""
    assert current == config.markdown(), (
        "docs/configuration.md does not match edge/service/config.py; regenerate it with: "
        + config.MARKDOWN_COMMAND
    )
    for name in config.KEYS:
        assert f"| `{name}` |" in current


def test_run_flags_show_the_model_defaults(monkeypatch, capsys):
    port = config.KEYS["mqtt.port"]
    monkeypatch.setitem(config.KEYS, "mqtt.port", dataclasses.replace(port, default=1234))
    with pytest.raises(SystemExit):
        main(["check-config", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "mqtt.port, default 1234" in help_text
    assert 'mqtt.host, default "localhost"' in help_text
    assert "Broker port. (mqtt.port" in help_text
    assert "pipeline.threads, default 0" in help_text


def test_model_key_and_flag(tmp_path, capsys):
    assert Config().pipeline.model == "full"
    path = write(tmp_path, '[pipeline]\nmodel = "lite"\n')
    assert load(path).pipeline.model == "lite"
    assert main(["check-config", "--config", str(path), "--model", "heavy", "--print"]) == 0
    assert 'model = "heavy"' in capsys.readouterr().out
    assert main(["check-config", "--config", str(path), "--variant", "int8"]) == 0  # lite's int8
    capsys.readouterr()
    assert (
        main(["check-config", "--config", str(path), "--model", "heavy", "--variant", "int8"]) == 2
    )
    assert "pipeline.variant" in capsys.readouterr().err


# --- values that pass a type check but break the run (issue 14, item 4) -------------------------

LONG = 70_000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f'[mqtt]\ndevice_id = "{"d" * LONG}"\n', "mqtt.device_id must be at most 65,535 bytes"),
        (f'[mqtt]\nclient_id = "{"c" * LONG}"\n', "mqtt.client_id must be at most 65,535 bytes"),
        (f'[mqtt]\nhost = "{"h" * 10_000}"\n', "mqtt.host must be a host name of at most 253 "),
        (f'[mqtt]\nhost = "{"h" * 64}.lan"\n', "mqtt.host must be a host name (letters, digits"),
        ('[mqtt]\nhost = "broker\\u0000"\n', "mqtt.host must be a host name (letters, digits"),
        ('[mqtt]\nhost = "my broker"\n', "mqtt.host must be a host name"),
        ('[mqtt]\nhost = "-broker"\n', "mqtt.host must be a host name"),
        ('[mqtt]\nhost = "[::1]"\n', "mqtt.host must be a host name"),
        ('[mqtt]\ndevice_id = "cam\\u0000"\n', "mqtt.device_id must be UTF-8 text without control"),
        ('[mqtt]\ndevice_id = "cam\\n"\n', "mqtt.device_id must be UTF-8 text without control"),
        ('[mqtt]\ndevice_id = "cam\\uffff"\n', "mqtt.device_id must be UTF-8 text without"),
        ('[mqtt]\ndevice_id = "a+b"\n', "mqtt.device_id must not contain MQTT wildcards"),
        ('[mqtt]\ndevice_id = "#"\n', "mqtt.device_id must not contain MQTT wildcards"),
        ('[mqtt]\ntopic_prefix = "a\\u0000"\n', "mqtt.topic_prefix must be UTF-8 text without"),
        ('[mqtt]\ntopic_prefix = "a/#"\n', "mqtt.topic_prefix must not contain"),
        ('[mqtt]\nclient_id = "cam\\u0000"\n', "mqtt.client_id must be UTF-8 text without"),
        ('[mqtt]\nusername = "u\\u0007"\n', "mqtt.username must be UTF-8 text without"),
        ('[homeassistant]\nprefix = "ha\\u0000"\n', "homeassistant.prefix must be UTF-8 text"),
        ('[homeassistant]\nprefix = "ha/+"\n', "homeassistant.prefix must not contain"),
        # within each key's limit, too long as a whole topic
        (f'[mqtt]\ndevice_id = "{"d" * 65_530}"\n', "mqtt.topic_prefix and mqtt.device_id must"),
        (f'[mqtt]\ntopic_prefix = "{"a/" * 200}"\n', "mqtt.topic_prefix and mqtt.device_id must"),
        (f'[homeassistant]\nprefix = "{"h" * 65_520}"\n', "homeassistant.prefix and mqtt.device"),
    ],
)
def test_mqtt_strings_and_host_names_a_broker_would_refuse(tmp_path, text, message):
    with pytest.raises(ConfigError, match="^config: " + re.escape(message)) as err:
        load(write(tmp_path, text))
    assert len(str(err.value)) < 400  # a long value is cut in the message


@pytest.mark.parametrize(
    "host",
    ["localhost", "broker.lan", "broker.lan.", "10.0.0.2", "::1", "fe80::1%eth0", "none",
     "mosquitto_1", "b\u00fccher.example", "a" * 63 + ".lan"],
)  # fmt: skip
def test_host_names_and_addresses_are_accepted(tmp_path, host):
    assert load(write(tmp_path, f'[mqtt]\nhost = "{host}"\n')).mqtt.host == host


def test_discovery_topic_limit_only_with_discovery(tmp_path):
    text = f'[homeassistant]\nprefix = "{"h" * 65_520}"\ndiscovery = false\n'
    assert load(write(tmp_path, text)).homeassistant.discovery is False


def test_the_host_name_as_device_id_must_be_a_topic_level(tmp_path, monkeypatch):
    monkeypatch.setattr(config.socket, "gethostname", lambda: "raspberrypi-4.lan")
    assert load(write(tmp_path, "")).device_id == "raspberrypi-4.lan"
    monkeypatch.setattr(config.socket, "gethostname", lambda: "odd/name")
    with pytest.raises(ConfigError, match="^config: mqtt.device_id must be set where this machine"):
        load(write(tmp_path, ""))
    assert load(write(tmp_path, '[mqtt]\ndevice_id = "cam"\n')).device_id == "cam"


def test_text_that_was_not_utf8_on_the_command_line(tmp_path, capsys):
    # argv bytes that are not UTF-8 arrive as surrogates (PEP 383)
    assert (
        main(["check-config", "--config", str(write(tmp_path, "")), "--device-id", "\udcff"]) == 2
    )
    assert "mqtt.device_id must be UTF-8 text" in capsys.readouterr().err


@pytest.fixture
def odd_files(tmp_path):
    """A folder, a FIFO and /dev/zero: none is a file to read."""
    folder = tmp_path / "folder"
    folder.mkdir()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    return {
        folder: "is a directory",
        fifo: "is not a regular file (a named pipe)",
        Path("/dev/zero"): "is not a regular file (a character device)",
    }


def test_config_file_that_is_no_regular_file_says_what_it_is(odd_files):
    for path, what in odd_files.items():
        with pytest.raises(ConfigError, match="^" + re.escape(f"config: {path} {what}") + "$"):
            load(path)


def test_default_config_path_that_is_a_folder_is_not_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "DEFAULT_CONFIG", tmp_path)
    with pytest.raises(ConfigError, match="is a directory"):
        load()


def test_config_file_over_a_megabyte_is_refused(tmp_path):
    path = write(tmp_path, "# padding\n" * 110_000)
    with pytest.raises(ConfigError, match="is larger than 1 MB"):
        load(path)


@pytest.mark.parametrize("section", ["mqtt", "http"])
def test_password_file_that_is_no_regular_file_says_what_it_is(tmp_path, odd_files, section):
    for path, what in odd_files.items():
        text = f'[{section}]\nusername = "u"\npassword_file = "{path}"\n'
        with pytest.raises(ConfigError, match=re.escape(f"{section}.password_file {path} {what}")):
            load(write(tmp_path, text))


def test_reading_a_password_never_blocks_or_reads_forever(odd_files):
    """Read at connect time (the file may have changed since the check): a FIFO would block the
    open, /dev/zero would be read until memory runs out."""
    results = {}

    def read_all():
        for path in odd_files:
            with pytest.raises(ConfigError, match=re.escape(f"mqtt.password_file: {path} is")) as e:
                read_password(config.MqttConfig(username="u", password_file=str(path)))
            results[path] = str(e.value)

    reader = threading.Thread(target=read_all, daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive(), "reading a password file blocked"
    assert set(results) == set(odd_files)


def test_password_file_first_line_only_and_capped(tmp_path):
    m = config.MqttConfig(username="u", password_file=str(tmp_path / "pw"))
    (tmp_path / "pw").write_text("s3cret\r\nsecond line\n")
    assert read_password(m) == "s3cret"
    (tmp_path / "pw").write_bytes(b"x" * 65_535)
    assert read_password(m) == "x" * 65_535
    (tmp_path / "pw").write_bytes(b"x" * 65_536 + b"\n")
    with pytest.raises(ConfigError, match="has a first line longer than 65,535 bytes") as err:
        read_password(m)
    assert "xxx" not in str(err.value)


def spool_config(tmp_path, folder, extra=""):
    return write(tmp_path, f'[mqtt]\nqos_pose = 1\n{extra}[spool]\ndir = "{folder}"\n')


def test_spool_folder_under_a_file_is_a_config_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"^config: spool\.dir: cannot keep the spool in .*: "
                       + re.escape(f"{tmp_path / 'file'} is a file, not a folder")):  # fmt: skip
        load(spool_config(tmp_path, tmp_path / "file" / "spool"))
    # the device's own folder is a file
    with pytest.raises(ConfigError, match=r"^config: spool\.dir: .* is a file, not a folder"):
        load(spool_config(tmp_path, tmp_path, extra='device_id = "file"\n'))


def test_spool_folder_that_even_root_cannot_write_is_a_config_error(tmp_path):
    # sysfs: no one creates files or folders there, root included (chmod would not stop root)
    with pytest.raises(ConfigError, match=r"^config: spool\.dir: .*cannot create a folder in /sys"):
        load(spool_config(tmp_path, "/sys/blazepose-edge-spool"))
    with pytest.raises(ConfigError, match=r"^config: spool\.dir: .*cannot write in /sys/kernel"):
        load(spool_config(tmp_path, "/sys", extra='device_id = "kernel"\n'))


def test_default_spool_folder_is_checked_and_named(tmp_path, monkeypatch):
    (tmp_path / "state").write_text("")
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    with pytest.raises(ConfigError, match=r"^config: spool\.dir \(empty: the default folder\): "):
        load(write(tmp_path, '[spool]\nmode = "on"\n'))


def test_spool_folder_checked_only_when_in_use_and_left_as_it_was(tmp_path):
    (tmp_path / "file").write_text("")
    under_file = tmp_path / "file" / "spool"
    assert load(write(tmp_path, f'[spool]\ndir = "{under_file}"\n'))  # qos 0: no spool
    assert load(write(tmp_path, f'[spool]\nmode = "off"\ndir = "{under_file}"\n'))
    assert load(spool_config(tmp_path, under_file, extra='host = "none"\n'))  # stdout
    load(spool_config(tmp_path, tmp_path / "new" / "spool"))
    assert not (tmp_path / "new").exists()  # checked, not made
    (tmp_path / "spool" / "cam").mkdir(parents=True)
    load(spool_config(tmp_path, tmp_path / "spool", extra='device_id = "cam"\n'))
    assert list((tmp_path / "spool" / "cam").iterdir()) == []  # the test file is gone


def test_spool_folder_gone_bad_after_the_check_is_a_config_error(tmp_path):
    from edge.service.sinks import make_sinks

    cfg = Config()
    (tmp_path / "file").write_text("")
    cfg.spool.mode, cfg.spool.dir = "on", str(tmp_path / "file" / "spool")
    with pytest.raises(ConfigError, match=r"^config: spool\.dir: cannot keep the spool in "):
        make_sinks(cfg)


def test_check_config_reports_each_with_the_key(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    cases = [
        (f'[mqtt]\nqos_pose = 1\n[spool]\ndir = "{tmp_path / "file" / "s"}"\n', "spool.dir"),
        (f'[mqtt]\ndevice_id = "{"d" * LONG}"\n', "mqtt.device_id"),
        (f'[mqtt]\nclient_id = "{"c" * LONG}"\n', "mqtt.client_id"),
        (f'[mqtt]\nhost = "{"h" * 10_000}"\n', "mqtt.host"),
        ('[mqtt]\nhost = "broker\\u0000"\n', "mqtt.host"),
        ('[mqtt]\nusername = "u"\npassword_file = "/dev/zero"\n', "mqtt.password_file /dev/zero"),
    ]
    for text, key in cases:
        assert main(["check-config", "--config", str(write(tmp_path, text))]) == 2, text[:60]
        err = capsys.readouterr().err
        assert f"config: {key}" in err and "Traceback" not in err, err[:200]
        assert len(err) < 400
    assert main(["check-config", "--config", str(tmp_path)]) == 2
    assert f"config: {tmp_path} is a directory" in capsys.readouterr().err


def test_a_device_id_too_long_for_the_default_client_id(tmp_path):
    """The topics fit, but blazepose-edge-<device_id>-<suffix> would not (paho's thread dies)."""
    long_id = "d" * 65_470
    with pytest.raises(ConfigError, match="^config: mqtt.device_id is too long for the default"):
        load(write(tmp_path, f'[mqtt]\ndevice_id = "{long_id}"\ntopic_prefix = "b"\n'))
    text = f'[mqtt]\ndevice_id = "{long_id}"\ntopic_prefix = "b"\nclient_id = "cam"\n'
    assert load(write(tmp_path, text)).device_id == long_id
