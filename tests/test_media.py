"""edge/service/media.py: the demo clip, and where the test media are found."""

import subprocess
import sys

import cv2

from edge.service import media


def test_env_wins_and_is_not_second_guessed(tmp_path, monkeypatch):
    monkeypatch.setenv(media.ENV, str(tmp_path / "nowhere"))
    assert media.candidates() == [tmp_path / "nowhere"]
    assert media.media_dir() == tmp_path / "nowhere"


def test_only_beside_the_project_otherwise(tmp_path, monkeypatch):
    """Not beside the current directory, not beside the checkout a clone came from: a GitHub
    clone has neither, and behaviour must not depend on where one cloned from."""
    monkeypatch.delenv(media.ENV, raising=False)
    (tmp_path / "shared" / "media" / "video").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "shared")
    assert media.candidates() == [media.PROJECT.parent / "shared" / "media"]
    monkeypatch.setattr(media, "PROJECT", tmp_path / "checkout")
    assert media.media_dir() == tmp_path / "shared" / "media"


def test_module_reports_where_it_looked(tmp_path):
    env = {"BLAZEPOSE_EDGE_MEDIA": str(tmp_path / "none"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "edge.service.media"], env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 1
    assert str(tmp_path / "none") in done.stderr


def test_demo_clip_ships_in_the_package_with_its_credit():
    clip = media.demo_clip()
    cap = cv2.VideoCapture(str(clip))
    ok, frame = cap.read()
    assert ok and frame.shape == (576, 576, 3)
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 120
    cap.release()
    notice = (media.PROJECT / "NOTICE").read_text()
    assert "edge/service/demo/arms_up.mp4" in notice and "Apache" in notice
