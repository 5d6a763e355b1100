"""The package stands alone: a wheel built from the checkout (not an editable install) carries the
manifest, the message schema, the demo clip and the notices, and runs from any folder."""

import subprocess
import sys
import zipfile

import pytest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    root = __import__("pathlib").Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(root)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (path,) = out.glob("blazepose_edge-*.whl")
    return path


def test_wheel_carries_its_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "edge/pose/manifest.json",
        "edge/service/schema/pose.schema.json",
        "edge/service/demo/arms_up.mp4",
    ):
        assert needed in names
    assert any(n.endswith("/NOTICE") for n in names) and any(n.endswith("/LICENSE") for n in names)
    assert not any(n.endswith(".tflite") for n in names)  # models are fetched, never shipped


def test_installed_copy_runs_from_anywhere(wheel, tmp_path, models_ready):
    """Unpacked away from the checkout (what a non-editable install is), from another folder:
    the demo clip and the manifest are found as package data."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import edge; "
        "assert edge.__file__.startswith(sys.argv[1]), edge.__file__; "
        "from edge.service.cli import main; sys.exit(main(['infer']))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(site)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "arms_up.mp4: 120/120 frames with a pose" in done.stdout
