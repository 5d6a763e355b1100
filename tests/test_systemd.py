"""The systemd unit: parses cleanly and is hardened (where systemd-analyze is installed)."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "blazepose-edge.service"
analyze = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(analyze is None, reason="systemd-analyze is not installed")


@pytest.fixture
def unit(tmp_path):
    text = UNIT.read_text().replace("@PREFIX@", str(tmp_path))
    exe = tmp_path / ".venv" / "bin" / "blazepose-edge"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    path = tmp_path / "blazepose-edge.service"
    path.write_text(text)
    return path


def test_unit_promises():
    text = UNIT.read_text()
    assert "Type=notify" in text and "WatchdogSec=" in text and "Restart=on-failure" in text
    assert re.search(r"^RestartPreventExitStatus=2 3 5 6$", text, re.M)
    assert "SupplementaryGroups=video" in text and "PrivateDevices" not in text
    assert "MemoryDenyWriteExecute=yes" not in text  # Numba's JIT needs W+X pages
    assert not re.search(r"DeviceAllow=/dev/\S*\*", text)  # globs are silently ignored


def test_unit_prevents_restart_exactly_on_the_permanent_exit_codes():
    """The daemon's exit codes are defined once (EXIT_* in daemon.py): the unit must not restart
    on the permanent ones and must restart on the others."""
    from edge.service import daemon

    line = re.search(r"^RestartPreventExitStatus=(.*)$", UNIT.read_text(), re.M).group(1)
    assert sorted(int(code) for code in line.split()) == sorted(daemon.PERMANENT)
    assert (
        daemon.EXIT_UNDELIVERED in daemon.PERMANENT and daemon.EXIT_SOURCE not in daemon.PERMANENT
    )


@needs_analyze
def test_unit_verifies_cleanly(unit):
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    # systemd-analyze verify exits 0 even on parse errors: any message about the unit is a failure
    lines = [line for line in (result.stdout + result.stderr).splitlines() if unit.name in line]
    lines = [line for line in lines if "blazepose-edge" in line and "User" not in line]
    assert result.returncode == 0 and not lines, result.stdout + result.stderr


@needs_analyze
def test_unit_security_exposure_at_most_2(unit):
    result = subprocess.run(
        [analyze, "security", "--offline=true", str(unit)], capture_output=True, text=True
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout + result.stderr)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0
