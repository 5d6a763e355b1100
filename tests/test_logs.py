"""edge/service/logs.py: native chatter goes to the log, not the terminal."""

import logging
import os
import subprocess
import sys

from edge.service.logs import native_stderr_to_log


def test_native_lines_are_logged_not_printed(capfd, caplog):
    caplog.set_level(logging.INFO, logger="edge.native")
    with native_stderr_to_log():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"something went wrong in C++\n")
    err = capfd.readouterr().err
    assert "INFO: Created" not in err
    assert "something went wrong in C++\n" not in err.replace("edge.native: something", "")
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert (logging.WARNING, "something went wrong in C++") in messages
    assert not any("XNNPACK" in m for _, m in messages)  # INFO lines only at debug level


def test_commands_print_no_tflite_info_line(models_ready, tmp_path):
    """``infer`` on the shipped demo clip: the result line, and nothing from TFLite or setuptools."""
    done = subprocess.run(
        [sys.executable, "-m", "edge.service.cli", "infer"],
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "arms_up.mp4: 120/120 frames with a pose" in done.stdout
    assert "INFO: Created TensorFlow Lite" not in done.stderr
    assert done.stderr == ""


def test_python_log_lines_meanwhile_are_not_wrapped(tmp_path):
    """A log line written while native output is caught reaches the terminal as itself."""
    code = (
        "import logging\n"
        "from edge.service.logs import native_stderr_to_log, setup_logging\n"
        "setup_logging('info')\n"
        "with native_stderr_to_log():\n"
        "    logging.getLogger('x').info('hello from python')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    assert "INFO x: hello from python" in done.stderr
    assert "edge.native" not in done.stderr


def test_opencv_level_set_whichever_setter_this_release_has(monkeypatch):
    """4.11 (Pi OS Bookworm's pin) has cv2.setLogLevel and no cv2.utils.logging."""
    import types

    import cv2

    from edge.service.logs import quiet_opencv

    calls = []
    monkeypatch.setattr(cv2, "utils", types.SimpleNamespace(), raising=False)
    monkeypatch.setattr(cv2, "setLogLevel", calls.append, raising=False)
    quiet_opencv("info")
    quiet_opencv("debug")
    assert calls == [2, 5]
    monkeypatch.delattr(cv2, "setLogLevel")
    quiet_opencv("info")  # neither: nothing to do, no error


def test_ffmpeg_decoder_errors_stay_off_the_terminal(models_ready, tmp_path):
    """A video damaged in its second half: FFmpeg's per-frame ``[mpeg4 @ 0x...]`` lines are not
    printed; ``infer`` says itself how many frames were read (at debug level FFmpeg shows them)."""
    import cv2
    import numpy as np

    from edge.service.media import demo_clip

    src = cv2.VideoCapture(str(demo_clip()))
    clip = tmp_path / "damaged.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 30, (576, 576))
    for _ in range(30):
        writer.write(src.read()[1])
    writer.release()
    data = bytearray(clip.read_bytes())
    half, end = len(data) // 2, len(data) - 4000  # keep the trailing index (moov) intact
    data[half:end] = np.random.default_rng(0).integers(0, 256, end - half, np.uint8).tobytes()
    clip.write_bytes(bytes(data))
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_FFMPEG_LOGLEVEL"}
    args = [sys.executable, "-m", "edge.service.cli", "infer", "--json", str(clip)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert "frames its header promised were read" in done.stderr
    assert "@ 0x" not in done.stderr and "@ 0x" not in done.stdout
    debug = subprocess.run([*args[:3], "--log-level", "debug", *args[3:]], capture_output=True,
                           text=True, timeout=300, env=env, check=False)  # fmt: skip
    assert "[mpeg4 @ 0x" in debug.stderr
