import json
import shutil

import cv2
import numpy as np
import pytest

from edge.service.cli import build_parser, main
from edge.service.media import demo_clip


def test_infer_json_for_images(media, models_ready, capsys):
    paths = [str(media / "images" / n) for n in ("yoga.jpg", "hard_no_person_kitten_tfpose.jpg")]
    assert main(["infer", "--json", *paths]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["source"] for line in lines] == paths
    assert lines[0]["width"] == 640 and lines[0]["height"] == 400
    pose = lines[0]["poses"][0]
    assert len(pose["landmarks"]) == 33 and len(pose["landmarks"][0]) == 5
    assert len(pose["world_landmarks"]) == 33 and 0 < pose["score"] <= 1
    assert lines[1]["poses"] == []


def test_infer_video_lines_per_frame_and_annotate(models_ready, tmp_path, capsys):
    # a short clip cut from the shipped demo keeps the test quick
    src = cv2.VideoCapture(str(demo_clip()))
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 30, (576, 576))
    for _ in range(12):
        ok, frame = src.read()
        assert ok
        writer.write(frame)
    writer.release()
    out_dir = tmp_path / "annotated"
    assert main(["infer", "--json", "--annotate", str(out_dir), str(clip)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["frame"] for line in lines] == list(range(12))
    assert all(len(line["poses"]) == 1 for line in lines)
    assert (out_dir / "clip.mp4").stat().st_size > 0


def test_infer_summary_counts_the_poses_with_num_poses(media, models_ready, capsys):
    """With ``--num-poses`` above 1 the summary says how many people were found, not only in how
    many frames: two people in every frame of the handshake clip, three in the photo."""
    names = (
        "hard_three_people_upper_body_tfjs.jpg",
        "yoga.jpg",
        "hard_no_person_kitten_tfpose.jpg",
    )
    paths = [media / "images" / name for name in names]
    paths.append(media / "video" / "two_people_handshake_mmhuman3d.mp4")
    assert main(["infer", "--num-poses", "3", *map(str, paths)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{paths[0]}: 1/1 image with a pose; 3 poses",
        f"{paths[1]}: 1/1 image with a pose; 1 pose",
        f"{paths[2]}: 0/1 image with a pose; 0 poses",
        f"{paths[3]}: 40/40 frames with a pose; 80 poses in all, up to 2 in one frame",
    ]
    assert main(["infer", str(paths[0]), str(paths[3])]) == 0  # one person: as before
    assert capsys.readouterr().out.splitlines() == [
        f"{paths[0]}: 1/1 image with a pose",
        f"{paths[3]}: 40/40 frames with a pose",
    ]


def test_unreadable_file_reported_others_processed(media, models_ready, tmp_path, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    good = tmp_path / "good.jpg"
    shutil.copy(media / "images" / "yoga.jpg", good)
    missing = tmp_path / "missing.png"
    code = main(["infer", "--annotate", str(tmp_path / "out"), str(bad), str(good), str(missing)])
    captured = capsys.readouterr()
    assert code == 1
    assert "broken.jpg: not a readable image" in captured.err
    assert "missing.png: no such file" in captured.err
    assert "good.jpg: 1/1 image with a pose" in captured.out
    assert (tmp_path / "out" / "good.png").is_file()


def test_annotate_never_overwrites_an_input_or_an_earlier_output(media, models_ready, tmp_path):
    photo = tmp_path / "dancers.png"
    shutil.copy(media / "images" / "three_dancers_tfpose.png", photo)
    original = photo.read_bytes()
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        shutil.copy(media / "images" / "yoga.jpg", tmp_path / sub / "yoga.jpg")
    args = ["infer", "--annotate", str(tmp_path), str(photo)]
    assert main([*args, str(tmp_path / "a" / "yoga.jpg"), str(tmp_path / "b" / "yoga.jpg")]) == 0
    assert photo.read_bytes() == original  # the annotated copy went beside it
    assert (tmp_path / "dancers-2.png").is_file()
    assert (tmp_path / "yoga.png").is_file() and (tmp_path / "yoga-2.png").is_file()


def test_models_verify(models_ready, capsys):
    from edge.pose import models

    assert main(["models", "verify"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in ("pose_detection", "pose_landmark_full"):
        assert any(line.startswith("ok ") and f"{name}.tflite" in line for line in lines)
    for model in ("lite", "heavy"):  # listed either way: ok, or absent with the fetch command
        (line,) = [line for line in lines if f"pose_landmark_{model}.tflite" in line]
        present = (models.models_dir() / f"pose_landmark_{model}.tflite").exists()
        assert line.startswith("ok ") if present else f"fetch --model {model}" in line


def test_models_verify_lists_absent_optional_models_and_fails_on_a_broken_one(
    tmp_path, monkeypatch, models_ready, capsys
):
    from edge.pose import models

    for name in ("pose_detection", "pose_landmark_full"):
        (tmp_path / f"{name}.tflite").symlink_to(models.locate(name))
    monkeypatch.setenv("BLAZEPOSE_EDGE_MODELS", str(tmp_path))
    assert main(["models", "verify"]) == 0
    out = capsys.readouterr().out
    assert "absent" in out and "models fetch --model heavy" in out
    (tmp_path / "pose_landmark_heavy.tflite").write_bytes(b"not a model")
    assert main(["models", "verify"]) == 3
    captured = capsys.readouterr()
    assert "pose_landmark_heavy.tflite has 11 bytes" in captured.err
    assert "ok " in captured.out  # the others are still listed


def test_models_fetch_rejects_an_unknown_model(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["models", "fetch", "--model", "medium"])
    assert exc.value.code == 2
    assert "lite" in capsys.readouterr().err


def test_missing_models_exit_code(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BLAZEPOSE_EDGE_MODELS", str(tmp_path))
    assert main(["infer"]) == 3
    assert "models fetch" in capsys.readouterr().err


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "infer" in out and "models" in out


def _subcommands(parser):
    """(name, parser) for every subcommand, nested ones included (``models fetch``)."""
    for action in parser._subparsers._group_actions:
        for name, sub in action.choices.items():
            yield name, sub
            if sub._subparsers is not None:
                yield from ((f"{name} {n}", s) for n, s in _subcommands(sub))


@pytest.mark.parametrize("name", [n for n, _ in _subcommands(build_parser())])
def test_every_command_help_has_a_description_and_an_example(name, capsys):
    with pytest.raises(SystemExit) as done:
        main([*name.split(), "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: blazepose-edge {name} ")  # its own help, not its parent's
    description = out.split("\n\n")[1]
    assert len(description) > 40 and not description.startswith(("positional", "options"))
    assert f"examples:\n  blazepose-edge {name.split()[0]}" in out or "examples:\n  " in out


@pytest.mark.parametrize(
    "argv",
    [
        ["infer", "--threads", "-1"],
        ["bench", "--frames", "0"],
        ["bench", "--source", "/nonexistent.mp4"],
        ["run", "--variant", "fastest"],
        ["models", "download"],
        ["models"],
        ["frobnicate"],
        [],
    ],
)
def test_a_bad_command_line_exits_2(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as done:
        code = done.code
    assert code == 2
    assert capsys.readouterr().err  # and says why


def test_infer_refuses_a_video_above_the_pixel_limit(tmp_path, monkeypatch, capsys):
    clip = tmp_path / "huge.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    writer.write(np.zeros((480, 640, 3), np.uint8))
    writer.release()
    monkeypatch.setenv("BLAZEPOSE_EDGE_MAX_IMAGE_PIXELS", "100000")
    assert main(["infer", "--json", str(clip)]) == 1
    captured = capsys.readouterr()
    assert (
        "huge.avi: frames of 640 x 480 pixels (0 Mpx) refused without decoding: more than the limit of 0.1 Mpx"
        in captured.err
    )
    assert captured.out == ""


def test_run_refuses_at_start_what_would_break_it(tmp_path, capsys):
    """Exit 2 (a config error: systemd does not restart it) naming the key, before the model
    is loaded; not a traceback (exit 1, a restart loop) nor a run that delivers nothing."""
    (tmp_path / "file").write_text("")
    cases = {
        f'[mqtt]\nqos_pose = 1\n[spool]\ndir = "{tmp_path / "file" / "spool"}"\n': "spool.dir",
        '[mqtt]\nhost = "broker\\u0000"\n': "mqtt.host",
        f'[mqtt]\ndevice_id = "{"d" * 70_000}"\n': "mqtt.device_id",
        f'[mqtt]\nclient_id = "{"c" * 70_000}"\n': "mqtt.client_id",
        '[mqtt]\nusername = "u"\npassword_file = "/dev/zero"\n': "mqtt.password_file",
    }
    for n, (text, key) in enumerate(cases.items()):
        path = tmp_path / f"c{n}.toml"
        path.write_text(text)
        args = ["run", "--config", str(path), "--source", "demo", "--max-frames", "5"]
        assert main(args) == 2, key
        err = capsys.readouterr().err
        assert f"config: {key}" in err and "Traceback" not in err, err[:300]
    assert main(["run", "--config", str(tmp_path), "--source", "demo", "--max-frames", "5"]) == 2
    assert f"config: {tmp_path} is a directory" in capsys.readouterr().err
