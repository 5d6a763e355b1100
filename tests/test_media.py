"""edge/media.py: where the test media are found."""

import subprocess
import sys

from edge import media


def test_env_wins_and_is_not_second_guessed(tmp_path, monkeypatch):
    monkeypatch.setenv(media.ENV, str(tmp_path / "nowhere"))
    assert media.candidates() == [tmp_path / "nowhere"]
    assert media.media_dir() == tmp_path / "nowhere"


def test_a_clone_elsewhere_finds_the_media_beside_its_origin(tmp_path, monkeypatch):
    """A fresh clone in /tmp of a checkout that sits beside shared/media."""
    checkout = tmp_path / "work" / "main"
    (tmp_path / "work" / "shared" / "media" / "video").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(checkout)], check=True)
    clone = tmp_path / "elsewhere" / "fresh"
    clone.parent.mkdir()
    subprocess.run(["git", "clone", "-q", str(checkout), str(clone)], check=True,
                   capture_output=True)  # fmt: skip
    monkeypatch.delenv(media.ENV, raising=False)
    monkeypatch.setattr(media, "PROJECT", clone)
    monkeypatch.chdir(tmp_path)
    assert media.media_dir() == tmp_path / "work" / "shared" / "media"


def test_module_reports_where_it_looked(tmp_path, monkeypatch):
    env = {"BLAZEPOSE_EDGE_MEDIA": str(tmp_path / "none"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "edge.media"], env=env, capture_output=True,
                          text=True, check=False)  # fmt: skip
    assert done.returncode == 1
    assert str(tmp_path / "none") in done.stderr
