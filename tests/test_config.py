import dataclasses
import re
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
        ('[pipeline]\nmodel = "lite"\nvariant = "int8"\n', "int8 exists for pipeline.model full"),
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
    cfg.mqtt.client_id = 'porch\nx "q" \\ caf\u00e9 \x7f\t'
    path = tmp_path / "c.toml"
    path.write_text(to_toml(cfg), encoding="utf-8")
    assert load(path).mqtt.client_id == cfg.mqtt.client_id


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
    folder.mkdir()  # is_file() is False: reported as missing, not a traceback
    with pytest.raises(ConfigError, match="does not exist"):
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
    assert main(["check-config", "--config", str(path), "--variant", "int8"]) == 2
    assert "pipeline.variant" in capsys.readouterr().err
