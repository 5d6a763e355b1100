"""Command line: ``blazepose-edge infer|models ...``."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import cv2

from .. import __version__
from ..pose import ModelError
from .logs import native_stderr_to_log, setup_logging
from .media import demo_clip

VARIANT_CHOICES = ("auto", "float", "int8")
VARIANT_HELP = (
    "model variant: auto (the fastest verified variant on this board, measured once and cached), "
    "float, or int8 (the int8 estimator built by models/quantize.py)"
)
LOG_LEVELS = ("debug", "info", "warning", "error")
NUM_POSES_HELP = "at most N people per frame, each with an id"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg"}


def _err(message: str) -> None:
    print(f"blazepose-edge: {message}", file=sys.stderr)


def expand(paths: list[str]) -> Iterator[Path]:
    """Files given directly, and the images and videos inside given folders (sorted)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(path.iterdir()):
                if child.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
                    yield child
        else:
            yield path


class Infer:
    """Runs ``infer`` over paths; one estimator per mode, built on first use."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self._estimators: dict[bool, object] = {}
        self._written: set[Path] = set()
        if args.annotate:
            Path(args.annotate).mkdir(parents=True, exist_ok=True)

    def annotated_path(self, source: Path, suffix: str) -> Path:
        """Where the annotated copy of ``source`` goes: ``<stem><suffix>`` in the annotate folder,
        numbered (``-2``...) rather than overwriting the input itself or an earlier output of this
        run (two ``photo.jpg`` from different folders)."""
        folder = Path(self.args.annotate)
        n = 1
        while True:
            out = folder / f"{source.stem}{'' if n == 1 else f'-{n}'}{suffix}"
            if out.resolve() != source.resolve() and out.resolve() not in self._written:
                self._written.add(out.resolve())
                return out
            n += 1

    def estimator(self, tracking: bool):
        from ..pose import PoseEstimator

        if tracking not in self._estimators:
            with native_stderr_to_log():
                self._estimators[tracking] = PoseEstimator(
                    variant=self.args.variant, num_threads=self.args.threads, tracking=tracking,
                    num_poses=self.args.num_poses,
                )  # fmt: skip
        return self._estimators[tracking]

    def emit(self, record: dict) -> None:
        if self.args.json:
            print(json.dumps(record, separators=(",", ":")), flush=True)

    def summary(self, path: Path, frames: int, with_pose: int) -> None:
        if not self.args.json:
            what = "frames" if frames != 1 else "image"
            print(f"{path}: {with_pose}/{frames} {what} with a pose")

    def image(self, path: Path, frame) -> None:
        from ..pose import draw_poses

        poses = self.estimator(False).process(frame)
        h, w = frame.shape[:2]
        self.emit({"source": str(path), "width": w, "height": h,
                   "poses": [p.to_dict() for p in poses]})  # fmt: skip
        self.summary(path, 1, int(bool(poses)))
        if self.args.annotate:
            cv2.imwrite(str(self.annotated_path(path, ".png")), draw_poses(frame, poses))

    def video(self, path: Path, cap: cv2.VideoCapture) -> None:
        from ..pose import draw_poses

        est = self.estimator(True)
        est.reset()
        fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        writer = None
        index = with_pose = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            poses = est.process(frame, timestamp_ms=index * 1000.0 / fps)
            h, w = frame.shape[:2]
            self.emit({"source": str(path), "frame": index, "width": w, "height": h,
                       "poses": [p.to_dict() for p in poses]})  # fmt: skip
            with_pose += bool(poses)
            if self.args.annotate:
                if writer is None:
                    out = self.annotated_path(path, ".mp4")
                    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                writer.write(draw_poses(frame, poses))
            index += 1
        cap.release()
        if writer is not None:
            writer.release()
        if index == 0:
            raise OSError("no frame could be decoded")
        self.summary(path, index, with_pose)

    def run(self, path: Path) -> None:
        if not path.is_file():
            raise OSError("no such file")
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is not None:
                self.image(path, frame)
                return
            if path.suffix.lower() in IMAGE_SUFFIXES:
                raise OSError("not a readable image")
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise OSError("not a readable image or video")
        self.video(path, cap)


def cmd_infer(args: argparse.Namespace) -> int:
    args.paths = args.paths or [str(demo_clip())]
    runner = Infer(args)
    failed = 0
    for path in expand(args.paths):
        try:
            runner.run(path)
        except ModelError:
            raise
        except (OSError, ValueError) as exc:
            _err(f"{path}: {exc}")
            failed += 1
    return 1 if failed else 0


PLOT_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def _bench_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with ``bench``'s arguments, found before minutes of measuring."""
    if args.source and not Path(args.source).is_file():
        return f"--source {args.source}: no such video file"
    for option, out in (("--json", args.json), ("--plot", args.plot)):
        folder = Path(out).resolve().parent if out else None
        if folder and not folder.is_dir():
            return f"{option} {out}: the folder {folder} does not exist"
    if args.plot and Path(args.plot).suffix.lower() not in PLOT_SUFFIXES:
        return f"--plot {args.plot}: give an image file name ({', '.join(PLOT_SUFFIXES)})"
    return None


def cmd_bench(args: argparse.Namespace) -> int:
    from . import bench

    problem = _bench_problem(args)
    if problem:
        _err(problem)
        return 2
    source = args.source or str(demo_clip())
    report = bench.run(source, args.variant, args.threads, args.frames, args.warmup,
                       show_progress=sys.stderr.isatty() or args.progress,
                       num_poses=args.num_poses)  # fmt: skip
    print(bench.summary(report))
    try:
        if args.json:
            bench.write_json(report, args.json)
        if args.plot:
            bench.plot(report, args.plot)
    except OSError as exc:  # the figures are printed above; say what could not be written
        _err(f"cannot write the report: {exc}")
        return 1
    if args.min_fps and report["throughput"]["fps"] < args.min_fps:
        _err(f"{report['throughput']['fps']} FPS is below --min-fps {args.min_fps}")
        return 1
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from ..pose import models

    if args.action == "fetch":
        models.fetch()
        return 0
    directory = models.models_dir()
    for spec in models.specs().values():
        path = directory / spec.file
        models.verify(spec, path)
        print(f"ok {path} sha256 {spec.sha256}")
    for name in models.DERIVED:  # optional: absent is fine, present must verify
        path = directory / f"{name}.tflite"
        if not models.derived_present(name, directory):
            print(f"absent {path} (optional int8 variant; {models.derived_hint(name, directory)})")
            continue
        record = models.verify_derived(name, directory)
        gate = record["gate"]
        print(
            f"ok {path} sha256 {record['sha256']} (int8 variant, accuracy gate passed: mean "
            f"{models.share_of_torso(gate.get('mean_vs_float'))}, worst "
            f"{models.share_of_torso(gate.get('worst_vs_float'))} of torso vs float)"
        )
    return 0


def _load_config(args: argparse.Namespace):
    from . import config

    overrides = {
        "source.uri": args.source,
        "source.loop": True if args.loop else None,
        "source.realtime": True if args.realtime else None,
        "mqtt.host": args.mqtt_host,
        "mqtt.port": args.mqtt_port,
        "mqtt.device_id": args.device_id,
        "mqtt.topic_prefix": args.topic_prefix,
        "daemon.max_frames": args.max_frames,
        "pipeline.variant": args.variant,
        "pipeline.threads": args.threads,
        "pipeline.num_poses": args.num_poses,
    }
    return config.load(Path(args.config) if args.config else None, overrides)


def cmd_run(args: argparse.Namespace) -> int:
    import signal

    from .config import ConfigError
    from .daemon import EXIT_BROKER, EXIT_CONFIG, EXIT_MODEL, EXIT_SOURCE, Daemon
    from .sinks import PublishError
    from .sources import SourceError

    try:
        cfg = _load_config(args)
    except ConfigError as exc:
        _err(str(exc))
        return EXIT_CONFIG
    setup_logging(args.log_level or cfg.daemon.log_level)
    exit_codes = (
        (ConfigError, EXIT_CONFIG),  # found while starting: an unreadable password file
        (ModelError, EXIT_MODEL),
        (SourceError, EXIT_SOURCE),
        (PublishError, EXIT_BROKER),
    )
    try:
        daemon = Daemon(cfg, reload_config=lambda: _load_config(args))

        def on_signal(signum, frame) -> None:
            import logging

            logging.getLogger("edge.service.daemon").info(
                "%s: stopping", signal.Signals(signum).name
            )
            daemon.stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGHUP, lambda signum, frame: daemon.request_reload())
        return daemon.run()
    except tuple(cls for cls, _ in exit_codes) as exc:
        _err(str(exc))
        return next(code for cls, code in exit_codes if isinstance(exc, cls))


def cmd_check_config(args: argparse.Namespace) -> int:
    from .config import ConfigError, to_toml

    try:
        cfg = _load_config(args)
    except ConfigError as exc:
        _err(str(exc))
        return 2
    if args.print:
        sys.stdout.write(to_toml(cfg))
    else:
        print("configuration ok")
    return 0


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        metavar="FILE",
        help="TOML config (default /etc/blazepose-edge/config.toml if present)",
    )
    p.add_argument(
        "--source",
        help="picam, picam:N, /dev/videoN, N, rtsp://..., a video file, an image folder, or demo "
        "(a clip that ships with blazepose-edge, looping) (default: source.uri, else the Pi "
        "camera where picamera2 is installed, else /dev/video0)",
    )
    p.add_argument(
        "--loop", action="store_true", default=None, help="video files: start again at the end"
    )
    p.add_argument(
        "--realtime",
        action="store_true",
        default=None,
        help="video files: pace at the file's frame rate",
    )
    p.add_argument(
        "--mqtt-host", help="broker host (default localhost); 'none' prints pose messages on stdout"
    )
    p.add_argument("--mqtt-port", type=int, help="broker port (default 1883)")
    p.add_argument("--device-id", help="topic level for this device (default: host name)")
    p.add_argument("--topic-prefix", help="first topic level (default blazepose)")
    p.add_argument("--max-frames", type=int, help="stop after N processed frames")
    p.add_argument(
        "--variant",
        choices=VARIANT_CHOICES,
        help=VARIANT_HELP + " (default: pipeline.variant, auto)",
    )
    p.add_argument("--threads", type=int, help="interpreter threads (default: CPUs, at most 4)")
    p.add_argument(
        "--num-poses", type=int, metavar="N", help=NUM_POSES_HELP + " (default: pipeline.num_poses)"
    )


def _at_least(minimum: int):
    """An argparse type: an integer >= ``minimum`` (else exit 2 with the reason)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def _command(sub, name: str, summary: str, description: str, examples: str):
    """A subcommand whose ``--help`` has a description and examples."""
    return sub.add_parser(
        name,
        help=summary,
        description=textwrap.fill(description, 79),
        epilog="examples:\n" + examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blazepose-edge",
        description=textwrap.fill(
            "BlazePose body landmarks on edge CPUs: 33 keypoints per frame, on-device, to MQTT, "
            "stdout or files.",
            79,
        ),
        epilog="examples:\n"
        "  blazepose-edge run --source demo --max-frames 200   # the shipped clip -> MQTT\n"
        "  blazepose-edge infer photo.jpg --annotate out/\n"
        "  blazepose-edge bench\n"
        "Run 'blazepose-edge COMMAND --help' for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        help="log detail (default: warning; for run, daemon.log_level); debug also shows the "
        "native libraries' own lines (TFLite, OpenCV)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    infer = _command(
        sub, "infer", "landmarks for images and videos",
        "Find the poses in images and videos: a summary line per file, or one JSON line per "
        "image or frame (--json), and copies with the skeleton drawn (--annotate). Images are "
        "processed one by one (static mode); videos with tracking and smoothing (video mode).",
        "  blazepose-edge infer                         # the demo clip that ships with it\n"
        "  blazepose-edge infer photo.jpg clips/ --json > poses.jsonl\n"
        "  blazepose-edge infer video.mp4 --annotate out/",
    )  # fmt: skip
    infer.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="images, videos or folders (default: the demo clip that ships with blazepose-edge)",
    )
    infer.add_argument(
        "--variant", choices=VARIANT_CHOICES, default="auto", help=VARIANT_HELP + " (default: auto)"
    )
    infer.add_argument(
        "--threads", type=_at_least(0), default=None, help="interpreter threads (0: auto)"
    )
    infer.add_argument(
        "--num-poses",
        type=_at_least(1),
        default=1,
        metavar="N",
        help=NUM_POSES_HELP + " (default 1)",
    )
    infer.add_argument("--json", action="store_true", help="print one JSON line per image/frame")
    infer.add_argument("--annotate", metavar="DIR", help="write inputs with the skeleton drawn")
    infer.set_defaults(func=cmd_infer)

    run = _command(
        sub, "run", "the daemon: camera -> poses -> MQTT",
        "Read frames from a camera, stream or file, find the pose in each and publish one "
        "message per frame to MQTT (or stdout with --mqtt-host none), with a retained status "
        "and periodic stats. Settings come from the config file; options override it. Runs "
        "until stopped (SIGTERM/Ctrl-C) or --max-frames; SIGHUP reloads the config.",
        "  blazepose-edge run --source demo --max-frames 200      # try it without a camera\n"
        "  blazepose-edge run --source picam --mqtt-host broker.lan\n"
        "  blazepose-edge run --source rtsp://cam/stream --device-id porch\n"
        "  blazepose-edge run --source demo --mqtt-host none | head   # JSON lines on stdout",
    )  # fmt: skip
    _add_run_options(run)
    run.set_defaults(func=cmd_run)

    check = _command(
        sub, "check-config", "validate the configuration and exit",
        "Load the config file with the options applied, check every key, and say 'configuration "
        "ok' or what is wrong (exit 2). --print shows the effective configuration as TOML.",
        "  blazepose-edge check-config --config /etc/blazepose-edge/config.toml\n"
        "  blazepose-edge check-config --print > config.toml   # a file to start from",
    )  # fmt: skip
    _add_run_options(check)
    check.add_argument("--print", action="store_true", help="print the effective configuration")
    check.set_defaults(func=cmd_check_config)

    bench = _command(
        sub, "bench", "per-stage latency and FPS on this machine",
        "Measure the pipeline on this board: decoding in its own thread as in the daemon, video "
        "mode on every frame after a warm-up; per-stage latency (p50/p95/p99), FPS, the share of "
        "frames that ran the detector, CPU, peak memory, and SoC temperature and throttling on a "
        "Raspberry Pi.",
        "  blazepose-edge bench                           # the demo clip, 300 frames\n"
        "  blazepose-edge bench --source my_camera.mp4 --json report.json --plot latency.png\n"
        "  blazepose-edge bench --threads 1 --min-fps 30   # exit 1 below 30 FPS",
    )  # fmt: skip
    bench.add_argument(
        "--source", help="video file (default: the demo clip that ships with blazepose-edge)"
    )
    bench.add_argument(
        "--variant", choices=VARIANT_CHOICES, default="auto", help=VARIANT_HELP + " (default: auto)"
    )
    bench.add_argument(
        "--threads", type=_at_least(0), default=None, help="interpreter threads (0: auto)"
    )
    bench.add_argument(
        "--frames", type=_at_least(1), default=300, help="frames to measure (default 300)"
    )
    bench.add_argument(
        "--warmup", type=_at_least(0), default=30, help="frames before measuring (default 30)"
    )
    bench.add_argument(
        "--num-poses",
        type=_at_least(1),
        default=1,
        metavar="N",
        help=NUM_POSES_HELP + " (default 1)",
    )
    bench.add_argument("--json", metavar="OUT", help="write the full report as JSON")
    bench.add_argument("--plot", metavar="OUT.png", help="write the latency distribution as PNG")
    bench.add_argument("--min-fps", type=float, help="exit 1 if the FPS is below this")
    bench.add_argument("--progress", action="store_true", help="progress bar even when not a tty")
    bench.set_defaults(func=cmd_bench)

    mod = _command(
        sub, "models", "fetch or verify the model files",
        "The model files live in $BLAZEPOSE_EDGE_MODELS, else the service's state folder, else "
        "~/.local/share/blazepose-edge/models. 'fetch' downloads what is missing from PyPI and "
        "checks every file's SHA-256; 'verify' only checks.",
        "  blazepose-edge models fetch\n  blazepose-edge models verify",
    )  # fmt: skip
    actions = mod.add_subparsers(dest="action", required=True, metavar="ACTION")
    _command(
        actions, "fetch", "download what is missing and verify every file",
        "Download the pinned MediaPipe wheel from PyPI into a temporary folder (only when a "
        "file is missing or fails its checksum), extract the models, verify their SHA-256 and "
        "delete the wheel.",
        "  blazepose-edge models fetch\n"
        "  BLAZEPOSE_EDGE_MODELS=/srv/models blazepose-edge models fetch",
    )  # fmt: skip
    _command(
        actions, "verify", "check the files on disk (exit 3 if one is missing or broken)",
        "Check each model file's size and SHA-256 against the manifest, and the int8 variant's "
        "record where it was built.",
        "  blazepose-edge models verify",
    )  # fmt: skip
    mod.set_defaults(func=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command != "run":  # run sets up logging once its config says the level
        setup_logging(args.log_level or "warning")
    try:
        return args.func(args)
    except ModelError as exc:
        _err(str(exc))
        return 3
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
