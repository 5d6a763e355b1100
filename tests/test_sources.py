import sys
import threading
import time
import types

import cv2
import numpy as np
import pytest

from edge.service.config import SourceConfig
from edge.service.sources import Frame, FrameGrabber, Source, SourceError, open_source
from edge.service.sources.folder import FolderSource
from edge.service.sources.grabber import EndOfStream
from edge.service.sources.opencv import VideoCaptureSource
from edge.service.sources.picam import PicameraSource


class FakeLive(Source):
    """A camera producing numbered frames at a fixed rate; can fail for a while."""

    live = True
    description = "fake camera"

    def __init__(self, fps=200.0, fail_between=(None, None)):
        self.index = 0
        self.period = 1 / fps
        self.fail_between = fail_between
        self.released = 0
        self.opens = 0

    def open(self):
        self.opens += 1

    def read(self):
        time.sleep(self.period)
        lo, hi = self.fail_between
        if lo is not None and lo <= self.index < hi:
            self.index += 1
            raise SourceError("unplugged")
        frame = Frame(np.zeros((4, 4, 3), np.uint8), self.index, time.time(), time.monotonic_ns(),
                      release=self._release)  # fmt: skip
        self.index += 1
        return frame

    def _release(self):
        self.released += 1


def test_live_grabber_keeps_newest_and_counts_drops():
    src = FakeLive(fps=500)
    grabber = FrameGrabber(src)
    grabber.start()
    got = []
    for _ in range(10):
        frame = grabber.get(1.0)
        got.append(frame.index)
        time.sleep(0.02)  # a slow pipeline
        frame.done()
    grabber.stop()
    assert got == sorted(got)
    assert grabber.dropped > 0
    assert got[-1] - got[0] > 9  # frames were skipped, not queued
    # every frame was either processed or dropped, and each buffer given back once
    assert src.released == grabber.captured


def test_live_grabber_reopens_after_failure_and_reports():
    statuses = []
    src = FakeLive(fps=200, fail_between=(5, 8))
    grabber = FrameGrabber(src, on_status=statuses.append)
    grabber.start()
    seen = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (not seen or seen[-1] < 20):
        frame = grabber.get(0.5)
        if frame:
            seen.append(frame.index)
            frame.done()
    grabber.stop()
    assert seen[-1] >= 20
    assert statuses[0].startswith("camera lost: unplugged") and statuses[-1] is None
    assert grabber.errors >= 1 and src.opens >= 1


class FakeLoopingFile(FakeLive):
    """A looping file: not live (lockstep), but it may come back after it fails."""

    live = False
    recoverable = True


def test_looping_file_that_fails_is_reopened_not_ended():
    statuses = []
    src = FakeLoopingFile(fps=500, fail_between=(3, 5))
    grabber = FrameGrabber(src, on_status=statuses.append)
    grabber.start()
    seen = []
    while len(seen) < 10:
        frame = grabber.get(5.0)
        assert frame is not None
        seen.append(frame.index)
        frame.done()
    grabber.stop()
    assert seen == [0, 1, 2, *range(5, 12)] and grabber.error is None
    assert statuses[0] == "camera lost: unplugged" and statuses[-1] is None


def test_a_source_that_fails_for_good_ends_with_its_error():
    src = FakeLoopingFile(fps=500, fail_between=(3, 4))
    src.recoverable = False
    grabber = FrameGrabber(src)
    grabber.start()
    assert [grabber.get(5.0).index for _ in range(3)] == [0, 1, 2]
    with pytest.raises(EndOfStream, match="unplugged"):
        grabber.get(5.0)
    grabber.stop()
    assert grabber.error == "unplugged"


def test_stop_never_closes_a_source_inside_a_blocking_read():
    """Releasing an OpenCV capture another thread is reading from crashes the process."""

    class Stalled(Source):
        live = True
        description = "stalled stream"

        def __init__(self):
            self.reading = threading.Event()
            self.closed_while_reading = False
            self.closed = 0

        def read(self):
            self.reading.set()
            time.sleep(1.0)  # a stream that stopped sending: the read blocks
            self.reading.clear()
            raise SourceError("read timed out")

        def close(self):
            self.closed_while_reading |= self.reading.is_set()
            self.closed += 1

    src = Stalled()
    grabber = FrameGrabber(src)
    grabber.start()
    assert src.reading.wait(2)
    grabber.stop(timeout=0.1)  # gives up waiting for the capture thread
    grabber._thread.join(3)
    assert not src.closed_while_reading and src.closed >= 1  # the thread closed it afterwards


def test_file_source_is_lockstep_without_drops(media):
    src = VideoCaptureSource(str(media / "video" / "hard_legs_only_pool_mmaction2.mp4"), "file")
    src.open()
    grabber = FrameGrabber(src)
    grabber.start()
    indices = []
    with pytest.raises(EndOfStream):
        while True:
            frame = grabber.get(5.0)
            assert frame is not None
            indices.append(frame.index)
            time.sleep(0.001)
    grabber.stop()
    assert indices == list(range(300)) and grabber.dropped == 0


def test_file_loop_and_realtime_pacing(media):
    src = VideoCaptureSource(str(media / "video" / "synthetic_arms_up_tfjs.mp4"), "file",
                             loop=True, realtime=True)  # fmt: skip
    src.open()
    t0 = time.monotonic()
    frames = [src.read() for _ in range(15)]
    assert time.monotonic() - t0 == pytest.approx(14 / 30, abs=0.15)  # paced at 30 fps
    assert frames[-1].pts_ms == pytest.approx(14 * 1000 / 30)
    src.close()
    short = VideoCaptureSource(
        str(media / "video" / "synthetic_arms_up_tfjs.mp4"), "file", loop=True
    )
    short.open()
    n = sum(1 for _ in range(130) if short.read() is not None)
    assert n == 130  # 120 frames, then from the start again


def test_folder_source_skips_unreadable(tmp_path, media):
    (tmp_path / "a.jpg").write_bytes((media / "images" / "yoga.jpg").read_bytes())
    (tmp_path / "b.jpg").write_bytes(b"broken")
    (tmp_path / "c.png").write_bytes((media / "images" / "three_dancers_tfpose.png").read_bytes())
    src = FolderSource(str(tmp_path))
    src.open()
    frames = [src.read(), src.read(), src.read()]
    assert [f.index for f in frames[:2]] == [0, 1] and frames[2] is None
    assert src.unreadable == 1


def test_looping_folder_of_unreadable_images_fails_instead_of_spinning(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"broken")
    (tmp_path / "b.png").write_bytes(b"broken too")
    src = FolderSource(str(tmp_path), loop=True)
    src.open()
    with pytest.raises(SourceError, match="none of the 2 images"):
        src.read()
    assert src.unreadable == 2


def test_camera_credentials_stay_out_of_descriptions_and_errors():
    src = open_source(SourceConfig(uri="rtsp://admin:hunter2@cam:554/live?token=abc&channel=1"))
    assert src.description == "stream rtsp://admin:***@cam:554/live?token=***&channel=1"
    assert "***@cam" in open_source(SourceConfig(uri="http://s3cr3t@cam/v.mjpg")).description
    with pytest.raises(SourceError) as err:
        open_source(SourceConfig(uri="rtspx://admin:hunter2@cam/live"))
    assert "hunter2" not in str(err.value) and "admin:***@cam" in str(err.value)


@pytest.mark.parametrize(
    ("uri", "kind"),
    [("/dev/video3", "device"), ("2", "device"), ("rtsp://cam/stream", "stream"),
     ("http://cam/mjpg", "stream")],
)  # fmt: skip
def test_open_source_dispatch(uri, kind):
    src = open_source(SourceConfig(uri=uri))
    assert isinstance(src, VideoCaptureSource) and src.kind == kind
    assert src.live


def test_open_source_files_and_errors(media, tmp_path):
    video = open_source(SourceConfig(uri=str(media / "video" / "street.avi")))
    assert video.kind == "file" and not video.live
    assert open_source(SourceConfig(uri=str(media / "video" / "street.avi"), realtime=True)).live
    assert isinstance(open_source(SourceConfig(uri=str(media / "images"))), FolderSource)
    with pytest.raises(SourceError, match="not a camera"):
        open_source(SourceConfig(uri=str(tmp_path / "missing.mp4")))
    with pytest.raises(SourceError, match="integer"):
        open_source(SourceConfig(uri="picam:x"))


def test_missing_device_explains():
    src = open_source(SourceConfig(uri="/dev/video99"))
    with pytest.raises(SourceError, match="group 'video'"):
        src.open()


def test_picam_without_picamera2_explains(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(SourceError, match="python3-picamera2"):
        PicameraSource().open()


def test_picam_zero_copy_and_sensor_timestamp(monkeypatch):
    """picamera2 faked: RGB888 requested, the buffer mapped (not copied) and released once."""
    calls = {"released": 0, "exited": 0}
    buffer = np.arange(480 * 640 * 3, dtype=np.uint8).reshape(480, 640, 3)

    class Request:
        def get_metadata(self):
            return {"SensorTimestamp": time.monotonic_ns() - 5_000_000}

        def release(self):
            calls["released"] += 1

    class MappedArray:
        def __init__(self, request, stream):
            assert stream == "main"
            self.array = buffer

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            calls["exited"] += 1

    class Picamera2:
        def __init__(self, index):
            self.index = index

        def create_video_configuration(self, main, controls, buffer_count, queue):
            calls["config"] = (main, controls, queue)
            return "config"

        def configure(self, config):
            pass

        def start(self):
            pass

        def capture_request(self, wait):
            return Request()

        def stop(self):
            pass

        def close(self):
            pass

    module = types.ModuleType("picamera2")
    module.Picamera2, module.MappedArray = Picamera2, MappedArray
    monkeypatch.setitem(sys.modules, "picamera2", module)
    src = open_source(SourceConfig(uri="picam:1", width=640, height=480, fps=25))
    src.open()
    main, controls, queue = calls["config"]
    assert main == {"size": (640, 480), "format": "RGB888"} and queue is False
    assert controls == {"FrameDurationLimits": (40000, 40000)}
    frame = src.read()
    assert frame.image is buffer  # no copy
    assert 0 < time.time() - frame.ts < 1
    frame.done()
    frame.done()
    assert calls["released"] == 1 and calls["exited"] == 1
    src.close()


def test_grabber_stop_unblocks_a_waiting_producer(media):
    src = VideoCaptureSource(str(media / "video" / "street.avi"), "file")
    src.open()
    grabber = FrameGrabber(src)
    grabber.start()
    time.sleep(0.3)  # the queue is full, the producer waits
    t = threading.Thread(target=grabber.stop)
    t.start()
    t.join(5)
    assert not t.is_alive()


def test_demo_source_is_the_shipped_clip_and_loops(monkeypatch):
    """``--source demo`` needs no test media: the clip is package data, and it loops like a
    camera (the Quick start asks for 200 frames of a 120-frame clip)."""
    from edge.service.media import demo_clip

    monkeypatch.setenv("BLAZEPOSE_EDGE_MEDIA", "/nonexistent/media")
    source = open_source(SourceConfig(uri="demo"))
    assert (source.target, source.kind) == (str(demo_clip()), "file")
    source.open()
    try:
        frames = [source.read() for _ in range(130)]
    finally:
        source.close()
    assert all(f is not None for f in frames)
    assert frames[-1].index == 129


def _blank_video(path, width, height, frames=2):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (width, height))
    for _ in range(frames):
        writer.write(np.zeros((height, width, 3), np.uint8))
    writer.release()
    return path


def test_video_frames_above_the_pixel_limit_are_refused_before_decoding(tmp_path, monkeypatch):
    clip = _blank_video(tmp_path / "wide.avi", 320, 240)
    monkeypatch.setenv("BLAZEPOSE_EDGE_MAX_IMAGE_PIXELS", str(320 * 240 - 1))
    src = VideoCaptureSource(str(clip), "file")
    with pytest.raises(
        SourceError, match="frames of 320 x 240 pixels .* more than the limit of 0.1 Mpx"
    ):
        src.open()
    assert src.cap is None
    monkeypatch.setenv("BLAZEPOSE_EDGE_MAX_IMAGE_PIXELS", str(320 * 240))
    frame = VideoCaptureSource(str(clip), "file").read()
    assert frame.image.shape == (240, 320, 3)
