import json

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
