"""Command line: ``blazepose-edge infer|models ...``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2

from .. import __version__
from ..pose import ModelError
from ..pose.models import DEFAULT_MODEL, LANDMARK_MODELS
from .media import demo_clip

VARIANT_CHOICES = ("auto", "float", "int8")
VARIANT_HELP = (
    "model variant: auto (the fastest verified variant on this board, measured once and cached), "
    "float, or int8 (the int8 estimator built by models/quantize.py; full only)"
)
MODEL_HELP = (
    "landmark model: lite (fastest), full or heavy (most accurate): MediaPipe's "
    "model_complexity 0, 1, 2; lite and heavy need `blazepose-edge models fetch --model lite` "
    "(or heavy) first"
)
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
            self._estimators[tracking] = PoseEstimator(
                variant=self.args.variant,
                num_threads=self.args.threads,
                tracking=tracking,
                model=self.args.model,
            )
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


def _variant_problem(args: argparse.Namespace) -> str | None:
    if args.variant == "int8" and args.model != "full":
        return f"--variant int8 exists for --model full only, not {args.model} (use auto or float)"
    return None


def cmd_infer(args: argparse.Namespace) -> int:
    problem = _variant_problem(args)
    if problem:
        _err(problem)
        return 2
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

    problem = _variant_problem(args) or _bench_problem(args)
    if problem:
        _err(problem)
        return 2
    source = args.source or str(demo_clip())
    report = bench.run(source, args.variant, args.threads, args.frames, args.warmup,
                       show_progress=sys.stderr.isatty() or args.progress,
                       model=args.model)  # fmt: skip
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
        models.fetch(models=args.model)
        return 0
    if args.model:
        _err("--model is for fetch; verify checks every model")
        return 2
    directory = models.models_dir()
    required = {models.DETECTOR, models.estimator_name(models.DEFAULT_MODEL)}
    failed = 0
    for spec in models.specs().values():
        path = directory / spec.file
        if spec.name not in required and not path.exists():  # optional: absent is fine
            print(f"absent {path} (optional; {models.fix_hint(spec.name)})")
            continue
        try:
            models.verify(spec, path)
        except ModelError as exc:
            _err(str(exc))
            failed += 1
            continue
        print(f"ok {path} sha256 {spec.sha256}")
    for name in models.DERIVED:  # optional: absent is fine, present must verify
        path = directory / f"{name}.tflite"
        if not models.derived_present(name, directory):
            print(f"absent {path} (optional int8 variant; {models.derived_hint(name, directory)})")
            continue
        try:
            record = models.verify_derived(name, directory)
        except ModelError as exc:
            _err(str(exc))
            failed += 1
            continue
        gate = record["gate"]
        print(
            f"ok {path} sha256 {record['sha256']} (int8 variant, accuracy gate passed: mean "
            f"{models.share_of_torso(gate.get('mean_vs_float'))}, worst "
            f"{models.share_of_torso(gate.get('worst_vs_float'))} of torso vs float)"
        )
    return 3 if failed else 0


def _setup_logging(level: str) -> None:
    import logging

    fmt = "%(levelname)s %(name)s: %(message)s"
    if not os.environ.get("JOURNAL_STREAM"):  # journald adds its own timestamps
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=level.upper(), format=fmt, stream=sys.stderr, force=True)


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
        "pipeline.model": args.model,
        "pipeline.variant": args.variant,
        "pipeline.threads": args.threads,
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
    _setup_logging(cfg.daemon.log_level)
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
        help="picam, picam:N, /dev/videoN, N, rtsp://..., a video file or an image folder",
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
        "--model",
        choices=LANDMARK_MODELS,
        help=MODEL_HELP + f" (default: pipeline.model, {DEFAULT_MODEL})",
    )
    p.add_argument(
        "--variant",
        choices=VARIANT_CHOICES,
        help=VARIANT_HELP + " (default: pipeline.variant, auto)",
    )
    p.add_argument("--threads", type=int, help="interpreter threads (default: CPUs, at most 4)")


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blazepose-edge", description="BlazePose body landmarks on edge CPUs."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    infer = sub.add_parser("infer", help="landmarks for images and videos")
    infer.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="images, videos or folders (default: the demo clip that ships with blazepose-edge)",
    )
    infer.add_argument(
        "--model",
        choices=LANDMARK_MODELS,
        default=DEFAULT_MODEL,
        help=MODEL_HELP + f" (default: {DEFAULT_MODEL})",
    )
    infer.add_argument(
        "--variant", choices=VARIANT_CHOICES, default="auto", help=VARIANT_HELP + " (default: auto)"
    )
    infer.add_argument(
        "--threads", type=_at_least(0), default=None, help="interpreter threads (0: auto)"
    )
    infer.add_argument("--json", action="store_true", help="print one JSON line per image/frame")
    infer.add_argument("--annotate", metavar="DIR", help="write inputs with the skeleton drawn")
    infer.set_defaults(func=cmd_infer)

    run = sub.add_parser("run", help="the daemon: camera -> poses -> MQTT")
    _add_run_options(run)
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check-config", help="validate the configuration and exit")
    _add_run_options(check)
    check.add_argument("--print", action="store_true", help="print the effective configuration")
    check.set_defaults(func=cmd_check_config)

    bench = sub.add_parser("bench", help="per-stage latency and FPS on this machine")
    bench.add_argument(
        "--source", help="video file (default: the demo clip that ships with blazepose-edge)"
    )
    bench.add_argument(
        "--model",
        choices=LANDMARK_MODELS,
        default=DEFAULT_MODEL,
        help=MODEL_HELP + f" (default: {DEFAULT_MODEL})",
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
    bench.add_argument("--json", metavar="OUT", help="write the full report as JSON")
    bench.add_argument("--plot", metavar="OUT.png", help="write the latency distribution as PNG")
    bench.add_argument("--min-fps", type=float, help="exit 1 if the FPS is below this")
    bench.add_argument("--progress", action="store_true", help="progress bar even when not a tty")
    bench.set_defaults(func=cmd_bench)

    mod = sub.add_parser("models", help="fetch or verify the model files")
    mod.add_argument("action", choices=("fetch", "verify"))
    mod.add_argument(
        "--model",
        action="append",
        choices=LANDMARK_MODELS,
        help="fetch: a landmark model to fetch, repeatable (default: lite and full; heavy, 28 MB, "
        "only when named); the detector is always fetched",
    )
    mod.set_defaults(func=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ModelError as exc:
        _err(str(exc))
        return 3
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
