import json
import threading
import time

import cv2
import pytest

from edge.pose import board
from edge.service import bench
from edge.service.cli import main


def test_bench_report_and_plot(media, models_ready, tmp_path):
    video = str(media / "video" / "synthetic_arms_up_tfjs.mp4")
    report = bench.run(video, frames=25, warmup=5, threads=1, show_progress=False)
    assert report["throughput"]["frames"] == 25 and report["throughput"]["fps"] > 0
    stages = report["stages_ms"]
    for stage in ("wait", "estimator_pre", "estimator_invoke", "estimator_post", "smoothing",
                  "publish", "frame"):  # fmt: skip
        assert stages[stage]["n"] == 25
        assert 0 <= stages[stage]["p50"] <= stages[stage]["p95"] <= stages[stage]["p99"]
    assert stages["decode"]["n"] == 25  # in the capture thread, matched by frame number
    assert 0 <= report["throughput"]["detector_share"] < 0.2
    assert 0 < report["throughput"]["outside_invoke_share"] < 1
    assert report["env"]["threads"] == 1 and report["resources"]["peak_rss_mb"] > 50
    assert report["env"]["isa"] == board.cpu_isa()  # which core the figures are from
    assert len(report["env"]["models"]["pose_landmark_full"]) == 64
    assert report["env"]["variant_requested"] == "auto" and report["env"]["model"] == "full"
    assert report["env"]["variant"] in ("float", "int8") and report["env"]["variant_reason"]
    png = tmp_path / "lat.png"
    bench.plot(report, str(png))
    assert cv2.imread(str(png)).shape[1] > 500


def test_bench_cli_min_fps_gate(media, models_ready, tmp_path, capsys):
    out = tmp_path / "r.json"
    video = str(media / "video" / "synthetic_arms_up_tfjs.mp4")
    args = ["bench", "--source", video, "--frames", "10", "--warmup", "2", "--json", str(out)]
    assert main([*args, "--min-fps", "100000"]) == 1
    assert "below --min-fps" in capsys.readouterr().err
    assert json.loads(out.read_text())["schema_version"] == 1
    assert main([*args, "--min-fps", "0.5"]) == 0


def test_bench_counts_the_first_measured_frame_everywhere(media, models_ready):
    """With no warm-up the first frame runs the detector: it must be in the share too."""
    video = str(media / "video" / "synthetic_arms_up_tfjs.mp4")
    report = bench.run(video, frames=6, warmup=0, threads=1, show_progress=False)
    stages = report["stages_ms"]
    assert stages["detector_invoke"]["n"] >= 1
    assert report["throughput"]["detector_share"] == pytest.approx(
        stages["detector_invoke"]["n"] / 6, abs=1e-3
    )
    assert stages["decode"]["n"] == stages["frame"]["n"] == 6


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--frames", "0"], "must be >= 1"),
        (["--warmup", "-1"], "must be >= 0"),
        (["--threads", "-5"], "must be >= 0"),
    ],
)
def test_bench_bad_numbers_exit_2(extra, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", *extra])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_bench_bad_paths_refused_before_measuring(media, tmp_path, capsys):
    video = str(media / "video" / "synthetic_arms_up_tfjs.mp4")
    assert main(["bench", "--source", str(tmp_path / "none.mp4")]) == 2
    assert "no such video file" in capsys.readouterr().err
    assert main(["bench", "--source", video, "--json", str(tmp_path / "no" / "r.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["bench", "--source", video, "--plot", str(tmp_path / "p.txt")]) == 2
    assert "image file name" in capsys.readouterr().err


def test_bench_names_the_landmark_model(media, need_model, capsys):
    need_model("lite")
    video = str(media / "video" / "synthetic_arms_up_tfjs.mp4")
    assert (
        main(["bench", "--model", "lite", "--source", video, "--frames", "5", "--warmup", "1"]) == 0
    )
    assert "FPS" in capsys.readouterr().out
    report = bench.run(video, frames=3, warmup=1, threads=1, show_progress=False, model="lite")
    assert report["env"]["model"] == "lite" and report["env"]["variant"] == "float"
    assert set(report["env"]["models"]) == {"pose_detection", "pose_landmark_lite"}
    assert bench.summary(report).count("lite float") == 1


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


@pytest.mark.skipif(not bench.PER_THREAD_CPU, reason="per-thread CPU clocks are Linux's")
def test_thread_cpu_clock_reads_other_threads_and_keeps_ended_ones():
    own = bench.thread_cpu_s(threading.get_native_id())
    assert own == pytest.approx(time.thread_time(), abs=2e-3)  # the same clock as Python's
    started, release, used = threading.Event(), threading.Event(), []

    def worker():
        _spin(0.05)
        started.set()
        release.wait(10)
        used.append(time.thread_time())

    thread = threading.Thread(target=worker)
    thread.start()
    started.wait(10)
    group = bench.ThreadGroupCpu()
    group.add({thread.native_id})
    assert group.seconds() == pytest.approx(bench.thread_cpu_s(thread.native_id))
    assert 0.05 <= group.seconds() < 0.5  # read from this thread, not the worker's
    group.end({thread.native_id})  # just before it ends
    release.set()
    thread.join()  # returns when Python is done with it; the OS thread exits a moment later
    deadline = time.monotonic() + 5.0
    while bench.thread_cpu_s(thread.native_id) != 0.0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert bench.thread_cpu_s(thread.native_id) == 0.0  # gone: its clock cannot be read
    assert group.seconds() == pytest.approx(used[0], abs=2e-3)  # but what it used is kept


@pytest.mark.skipif(not bench.PER_THREAD_CPU, reason="per-thread CPU clocks are Linux's")
def test_bench_separates_decoding_cpu_from_the_pipeline(media, models_ready):
    """A 1080p clip costs about 4 ms of CPU a frame to decode, on the same cores as the pipeline:
    that time is reported as decoding, not as the pipeline's. The clip (72 frames) loops inside
    the measured frames, so the decoder's threads end and are replaced while it is measured."""
    video = media / "video" / "two_people_hug_1080p_mmaction2.mp4"
    cap, decoded = cv2.VideoCapture(str(video)), 0
    t0 = time.process_time()
    while cap.read()[0]:
        decoded += 1
    alone_ms = 1000 * (time.process_time() - t0) / decoded  # decoding alone, every thread
    cap.release()
    report = bench.run(str(video), frames=70, warmup=10, threads=1, show_progress=False)
    cpu = report["resources"]["cpu_ms_per_frame"]
    assert 0.5 < cpu["decode"] / alone_ms < 2
    assert cpu["pipeline"] == pytest.approx(cpu["process"] - cpu["decode"], abs=2e-3)
    assert cpu["pipeline"] > 1 and cpu["pipeline"] < cpu["process"] - 0.5 * alone_ms
    # with one interpreter thread the pipeline is the calling thread alone: its own clock and the
    # decoding threads' clocks, read separately, add up to the whole process's CPU time
    assert cpu["pipeline_thread"] + cpu["decode"] == pytest.approx(cpu["process"], rel=0.05)
    assert report["throughput"]["wall_ms_per_frame"] == pytest.approx(
        1000 / report["throughput"]["fps"], rel=0.01
    )
    assert f"decoding {cpu['decode']:.2f} ms" in bench.summary(report)


def test_bench_realtime_paces_like_a_camera(media, models_ready, capsys):
    """--realtime: frames at the clip's own rate (30 FPS here); the wait for a frame's due time
    is not decoding time; nothing dropped when the pipeline keeps up."""
    video = str(media / "video" / "synthetic_arms_up_tfjs.mp4")
    report = bench.run(video, frames=20, warmup=3, threads=1, show_progress=False, realtime=True)
    t = report["throughput"]
    assert report["config"]["realtime"] is True and t["source_fps"] == 30.0
    assert 25.0 <= t["fps"] <= 31.0, t
    assert t["dropped"] == 0
    assert report["stages_ms"]["wait"]["p50"] > 15.0  # the pipeline waits for the next frame
    assert report["stages_ms"]["decode"]["p50"] < 15.0  # the pacing is not in the decode time
    assert "paced at the video's 30 FPS: 0 frame(s) dropped" in bench.summary(report)
    assert main(["bench", "--source", video, "--frames", "5", "--warmup", "1", "--realtime"]) == 0
    assert "paced at the video's 30 FPS" in capsys.readouterr().out


def test_bench_realtime_counts_the_frames_a_slow_pipeline_misses(media, models_ready, monkeypatch):
    class Slow(bench.PoseEstimator):
        def process(self, *args, **kwargs):
            time.sleep(0.1)  # three frame intervals at 30 FPS
            return super().process(*args, **kwargs)

    monkeypatch.setattr(bench, "PoseEstimator", Slow)
    video = str(media / "video" / "synthetic_arms_up_tfjs.mp4")
    report = bench.run(video, frames=8, warmup=1, threads=1, show_progress=False, realtime=True)
    t = report["throughput"]
    assert t["fps"] < 12.0 and t["dropped"] >= 8, t
    free = bench.run(video, frames=8, warmup=1, threads=1, show_progress=False)
    assert free["throughput"]["dropped"] == 0 and free["config"]["realtime"] is False
