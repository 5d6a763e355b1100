"""The MQTT client id: ``mqtt.client_id`` if set, else one no other client can guess.

A broker lets one client per id connect: a second client connecting with the same id takes the
session over and the first is disconnected. A client id derived from the device id alone
(``blazepose-edge-<device_id>``) lets anyone who can connect to the broker knock the daemon off.
So the default is ``blazepose-edge-<device_id>-<16 random hex digits>``: the random part is made
once per installation (``secrets``), kept in the state folder (``SUFFIX_FILE`` in
``config.state_dir()``, written atomically, mode 0600) and used at every start, so the broker
sees the same client (and, with the spool, resumes its session) across restarts. A state folder
that cannot be written gives a fresh random id for this run, with a warning; never a crash.

Log lines name where the id comes from (``ClientId.source``), never the generated id.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from ..config import CLIENT_ID_SUFFIX_DIGITS, MqttConfig, default_client_id, state_dir

log = logging.getLogger(__name__)
SUFFIX_FILE = "mqtt-client-id-suffix"
SUFFIX_BYTES = CLIENT_ID_SUFFIX_DIGITS[0] // 2  # 16 hex digits, 64 random bits
_VALID = re.compile("[0-9a-f]{{{},{}}}".format(*CLIENT_ID_SUFFIX_DIGITS))


@dataclass(frozen=True)
class ClientId:
    value: str
    source: str  # where it comes from, for log lines (never the value itself)
    explicit: bool = False  # mqtt.client_id


def resolve_client_id(cfg: MqttConfig, device_id: str, folder: Path | None = None) -> ClientId:
    """``mqtt.client_id`` if set, else this installation's generated id (``folder``: the state
    folder, ``config.state_dir()`` by default)."""
    if cfg.client_id:
        return ClientId(cfg.client_id, "set in mqtt.client_id", explicit=True)
    path = (state_dir() if folder is None else folder) / SUFFIX_FILE
    suffix, source = _installation_suffix(path)
    return ClientId(default_client_id(device_id, suffix), source)


def _installation_suffix(path: Path) -> tuple[str, str]:
    """The stored random suffix (made and stored if there is none yet) and the id's source."""
    kept = f"generated for this installation, kept in {path}"
    try:
        stored = path.read_text(encoding="ascii").strip()
    except (FileNotFoundError, NotADirectoryError):  # not made yet
        stored = None
    except UnicodeDecodeError:
        stored = ""  # not what we wrote: replaced below
    except OSError as exc:
        return _for_this_run(path, f"cannot read it: {exc.strerror or exc}")
    if stored is not None and _VALID.fullmatch(stored):
        return stored, kept
    suffix = secrets.token_hex(SUFFIX_BYTES)
    try:
        _write_atomically(path, suffix + "\n")
    except OSError as exc:
        return _for_this_run(path, f"cannot write it: {exc.strerror or exc}")
    if stored is None:
        log.info("MQTT client id: generated for this installation, kept in %s", path)
    else:
        log.warning("%s did not hold a client id suffix (16+ hex digits): generated a new one, "
                    "so the broker sees a new client", path)  # fmt: skip
    return suffix, kept


def _for_this_run(path: Path, why: str) -> tuple[str, str]:
    log.warning(
        "MQTT client id: %s (%s); using a random one for this run, so the broker sees a new "
        "client at every start (set mqtt.client_id, or make the state folder writable)",
        path, why,
    )  # fmt: skip
    return secrets.token_hex(SUFFIX_BYTES), f"random for this run ({path} {why})"


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (mode 0600) so that a crash leaves the old file or the new one,
    never a part: a temporary file beside it, synced, renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a file left by an earlier crash
        os.write(fd, text.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    try:  # the rename itself survives a power cut once the folder is synced
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
