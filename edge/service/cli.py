"""Command line: ``blazepose-edge infer|run|check-config|bench|ha|models ...``."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import cv2

from .. import __version__
from ..pose import DEFAULT_MODEL, INT8_MODELS, LANDMARK_MODELS, VARIANT_CHOICES, ModelError
from . import images
from .exits import EXIT_BROKER, EXIT_CONFIG, EXIT_MODEL, EXIT_OK, EXIT_SOURCE, EXIT_USAGE
from .logs import native_stderr_to_log, setup_logging
from .media import demo_clip

VARIANT_HELP = (
    "model variant: auto (the fastest verified variant on this board, measured once and cached), "
    f"float, int8 (the int8 estimator ./install.sh --int8 installs; {' and '.join(INT8_MODELS)} "
    "only) or fp16 (the "
    "landmark model marked for fp16 inference: fp16 on cores with fp16 arithmetic such as the "
    "Pi 5's, fp32 elsewhere)"
)
MODEL_HELP = (
    "landmark model: lite (fastest), full or heavy (most accurate): MediaPipe's "
    "model_complexity 0, 1, 2; lite and heavy need `blazepose-edge models fetch --model lite` "
    "(or heavy) first"
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
                    variant=self.args.variant,
                    num_threads=self.args.threads,
                    tracking=tracking,
                    model=self.args.model,
                    num_poses=self.args.num_poses,
                )
        return self._estimators[tracking]

    def emit(self, record: dict) -> None:
        if self.args.json:
            print(json.dumps(record, separators=(",", ":")), flush=True)

    def summary(self, path: Path, counts: list[int], image: bool = False) -> None:
        """One line per file, from the number of poses found in each frame (one for an image):
        ``clip.mp4: 118/120 frames with a pose``; with ``--num-poses`` above 1, how many poses
        too (``clip.mp4: 118/120 frames with a pose; 236 poses in all, up to 2 in one frame``)."""
        if self.args.json:
            return
        with_pose = sum(1 for n in counts if n)
        line = f"{path}: {with_pose}/{len(counts)} {'image' if image else 'frames'} with a pose"
        if self.args.num_poses > 1:
            if image:
                line += f"; {counts[0]} pose{'' if counts[0] == 1 else 's'}"
            else:
                line += f"; {sum(counts)} poses in all, up to {max(counts)} in one frame"
        print(line)

    def image(self, path: Path, frame, warning: str | None = None) -> None:
        from ..pose import draw_poses

        if warning:
            _err(f"{path}: warning: {warning}")
        poses = self.estimator(False).process(frame)
        h, w = frame.shape[:2]
        self.emit({"source": str(path), "width": w, "height": h,
                   "poses": [p.to_dict() for p in poses]})  # fmt: skip
        self.summary(path, [len(poses)], image=True)
        if self.args.annotate:
            cv2.imwrite(str(self.annotated_path(path, ".png")), draw_poses(frame, poses))

    def video(self, path: Path, cap: cv2.VideoCapture) -> None:
        from ..pose import draw_poses
        from .sources.opencv import ended_early

        est = self.estimator(True)
        est.reset()
        fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        promised = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        writer = None
        index = 0
        counts = []  # poses per frame
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            poses = est.process(frame, timestamp_ms=index * 1000.0 / fps)
            h, w = frame.shape[:2]
            self.emit({"source": str(path), "frame": index, "width": w, "height": h,
                       "poses": [p.to_dict() for p in poses]})  # fmt: skip
            counts.append(len(poses))
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
        if ended_early(index, promised):
            _err(f"{path}: warning: {index} of the {promised:.0f} frames its header promised "
                 "were read: the rest is damaged or missing")  # fmt: skip
        self.summary(path, counts)

    def run(self, path: Path) -> None:
        if not path.is_file():
            raise OSError("no such file")
        # an image in a format read here (its size checked before decoding), or one named as an
        # image; anything else is tried as a video
        if path.suffix.lower() not in VIDEO_SUFFIXES and (
            path.suffix.lower() in IMAGE_SUFFIXES or images.header_size(path) is not None
        ):
            self.image(path, *images.read_image(path))
            return
        from .sources.opencv import oversized

        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise OSError("not a readable image or video")
        problem = oversized(cap)
        if problem:
            cap.release()
            raise OSError(problem)
        self.video(path, cap)


def _variant_problem(args: argparse.Namespace) -> str | None:
    if args.variant == "int8" and args.model not in INT8_MODELS:
        return (
            f"--variant int8 exists for --model {' and '.join(INT8_MODELS)} only, not "
            f"{args.model} (use auto or float)"
        )
    return None


def cmd_infer(args: argparse.Namespace) -> int:
    problem = _variant_problem(args)
    if problem:
        _err(problem)
        return EXIT_USAGE
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
        return EXIT_USAGE
    source = args.source or str(demo_clip())
    report = bench.run(source, args.variant, args.threads, args.frames, args.warmup,
                       show_progress=sys.stderr.isatty() or args.progress,
                       model=args.model, num_poses=args.num_poses,
                       realtime=args.realtime)  # fmt: skip
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
        kind = "fp16" if name in models.FP16 else "int8"
        if not models.derived_present(name, directory):
            hint = (
                "derived from the float model on first use"
                if kind == "fp16"
                else models.derived_hint(name, directory)
            )
            print(f"absent {path} (optional {kind} variant; {hint})")
            continue
        try:
            record = models.verify_derived(name, directory)
        except ModelError as exc:
            _err(str(exc))
            failed += 1
            continue
        gate = record["gate"]
        print(
            f"ok {path} sha256 {record['sha256']} ({kind} variant, accuracy gate passed: mean "
            f"{models.share_of_torso(gate.get('mean_vs_float'))}, worst "
            f"{models.share_of_torso(gate.get('worst_vs_float'))} of torso vs float)"
        )
    return 3 if failed else 0


def _load_config(args: argparse.Namespace):
    from . import config

    def option(name: str):  # ``ha`` has only some of ``run``'s options
        return getattr(args, name, None)

    overrides = {
        "source.uri": option("source"),
        "source.loop": True if option("loop") else None,
        "source.realtime": True if option("realtime") else None,
        "mqtt.host": option("mqtt_host"),
        "mqtt.port": option("mqtt_port"),
        "mqtt.device_id": option("device_id"),
        "mqtt.topic_prefix": option("topic_prefix"),
        "daemon.max_frames": option("max_frames"),
        "pipeline.model": option("model"),
        "pipeline.variant": option("variant"),
        "pipeline.threads": option("threads"),
        "pipeline.num_poses": option("num_poses"),
        "http.enabled": True if option("http_port") is not None else None,
        "http.port": option("http_port"),
    }
    return config.load(Path(args.config) if args.config else None, overrides)


def cmd_run(args: argparse.Namespace) -> int:
    import signal

    from .config import ConfigError
    from .daemon import Daemon
    from .sinks import PublishError
    from .sources import SourceError

    cfg = _config_or_report(args)
    if cfg is None:
        return EXIT_CONFIG
    setup_logging(args.log_level or cfg.daemon.log_level)
    exit_codes = (
        (ConfigError, EXIT_CONFIG),  # found while starting: an unreadable password file
        (ModelError, EXIT_MODEL),
        (SourceError, EXIT_SOURCE),
        (PublishError, EXIT_BROKER),
    )
    # Signal handlers go in before the estimator is built (seconds on a Pi): a stop or a reload
    # asked for meanwhile must neither kill the process (SIGHUP's default) nor be lost.
    import logging

    log = logging.getLogger("edge.service.daemon")
    started: list[Daemon] = []
    asked = {"stop": False, "reload": False}

    def on_stop(signum, frame) -> None:
        log.info("%s: stopping", signal.Signals(signum).name)
        asked["stop"] = True
        if started:
            started[0].stop()

    def on_reload(signum, frame) -> None:
        if started:
            started[0].request_reload()
        else:
            asked["reload"] = True

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_reload)
    try:
        daemon = Daemon(cfg, reload_config=lambda: _load_config(args))
        started.append(daemon)
        if asked["stop"]:
            return EXIT_OK
        if asked["reload"]:  # the file may have changed since it was read
            daemon.request_reload()
        return daemon.run()
    except tuple(cls for cls, _ in exit_codes) as exc:
        _err(str(exc))
        return next(code for cls, code in exit_codes if isinstance(exc, cls))


def _config_or_report(args: argparse.Namespace):
    """The configuration, or None once what is wrong with it is said (the caller exits 2)."""
    from .config import ConfigError

    try:
        return _load_config(args)
    except ConfigError as exc:
        _err(str(exc))
        return None


def cmd_check_config(args: argparse.Namespace) -> int:
    from .config import to_toml

    cfg = _config_or_report(args)
    if cfg is None:
        return EXIT_CONFIG
    if args.print:
        sys.stdout.write(to_toml(cfg))
    else:
        print("configuration ok")
    return 0


def cmd_ha(args: argparse.Namespace) -> int:
    import secrets

    from .config import ConfigError
    from .sinks.homeassistant import discovery_document, removal_messages, topics
    from .sinks.mqtt import PublishError, send_once

    cfg = _config_or_report(args)
    if cfg is None:
        return EXIT_CONFIG
    config_topic = topics(cfg)["config"]
    if args.action == "show":
        print(config_topic)
        print(json.dumps(discovery_document(cfg), indent=2, ensure_ascii=False))
        return 0
    if cfg.mqtt.host.lower() == "none":  # no broker, so no device was announced
        print("nothing to remove: mqtt.host is none (no broker, no Home Assistant device)")
        return 0
    # not the daemon's id (the broker would disconnect a running daemon), nor a guessable one
    client_id = (
        f"{cfg.mqtt.client_id}-remove"
        if cfg.mqtt.client_id
        else f"blazepose-edge-{cfg.device_id}-remove-{secrets.token_hex(8)}"
    )
    try:
        send_once(cfg.mqtt, removal_messages(cfg), client_id, timeout=args.timeout)
    except (PublishError, ConfigError) as exc:
        _err(f"cannot remove the Home Assistant device: {exc}")
        return EXIT_BROKER
    print(f"removed the Home Assistant device {cfg.device_id} ({config_topic} cleared)")
    return 0


def _about(key: str) -> str:
    """The help of a flag that overrides config ``key``: the key's description and default, as
    declared in config.py."""
    from . import config

    default = config.toml_value(config.default(key))
    return f"{config.KEYS[key].spec.doc} ({key}, default {default})".replace("%", "%%")


def _add_broker_options(p: argparse.ArgumentParser) -> None:
    """The options that say which configuration, broker and device (``ha``, and ``run``)."""
    from . import config

    p.add_argument(
        "--config",
        metavar="FILE",
        help=f"TOML config (default {config.DEFAULT_CONFIG} if present)",
    )
    p.add_argument("--mqtt-host", help=_about("mqtt.host"))
    p.add_argument("--mqtt-port", type=int, help=_about("mqtt.port"))
    p.add_argument("--device-id", help=_about("mqtt.device_id"))
    p.add_argument("--topic-prefix", help=_about("mqtt.topic_prefix"))


def _add_run_options(p: argparse.ArgumentParser) -> None:
    from . import config

    _add_broker_options(p)
    about = _about
    p.add_argument("--source", help=about("source.uri"))
    p.add_argument("--loop", action="store_true", default=None, help=about("source.loop"))
    p.add_argument("--realtime", action="store_true", default=None, help=about("source.realtime"))
    p.add_argument("--max-frames", type=int, help=about("daemon.max_frames"))
    p.add_argument(
        "--model", choices=config.KEYS["pipeline.model"].spec.choices, help=about("pipeline.model")
    )
    p.add_argument(
        "--variant",
        choices=config.KEYS["pipeline.variant"].spec.choices,
        help=about("pipeline.variant"),
    )
    p.add_argument("--threads", type=int, help=about("pipeline.threads"))
    p.add_argument("--num-poses", type=int, metavar="N", help=about("pipeline.num_poses"))
    p.add_argument(
        "--http-port",
        type=int,
        metavar="PORT",
        help="serve the live view and the metrics on this port (http.enabled = true, http.port; "
        f"on {config.default('http.host')} unless http.host says otherwise)",
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


def _add_estimator_options(p: argparse.ArgumentParser) -> None:
    """How ``infer`` and ``bench`` build their estimator (``run`` takes these from its config)."""
    p.add_argument(
        "--model",
        choices=LANDMARK_MODELS,
        default=DEFAULT_MODEL,
        help=MODEL_HELP + f" (default: {DEFAULT_MODEL})",
    )
    p.add_argument(
        "--variant", choices=VARIANT_CHOICES, default="auto", help=VARIANT_HELP + " (default: auto)"
    )
    p.add_argument(
        "--threads", type=_at_least(0), default=None, help="interpreter threads (0: auto)"
    )
    p.add_argument(
        "--num-poses",
        type=_at_least(1),
        default=1,
        metavar="N",
        help=NUM_POSES_HELP + " (default 1)",
    )


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
    _add_estimator_options(infer)
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
        "  blazepose-edge run --source demo --mqtt-host none | head   # JSON lines on stdout\n"
        "  blazepose-edge run --source demo --http-port 8080   # watch it: http://127.0.0.1:8080/",
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
        "  blazepose-edge bench --threads 1 --min-fps 30   # exit 1 below 30 FPS\n"
        "  blazepose-edge bench --source my_camera.mp4 --realtime   # CPU at the camera's pace",
    )  # fmt: skip
    bench.add_argument(
        "--source", help="video file (default: the demo clip that ships with blazepose-edge)"
    )
    _add_estimator_options(bench)
    bench.add_argument(
        "--frames", type=_at_least(1), default=300, help="frames to measure (default 300)"
    )
    bench.add_argument(
        "--warmup", type=_at_least(0), default=30, help="frames before measuring (default 30)"
    )
    bench.add_argument(
        "--realtime", action="store_true",
        help="play the video at its own frame rate, as a camera delivers frames: CPU and latency "
             "at that pace, frames that arrive while the pipeline is busy dropped and counted "
             "(default: as fast as the pipeline goes)",
    )  # fmt: skip
    bench.add_argument("--json", metavar="OUT", help="write the full report as JSON")
    bench.add_argument("--plot", metavar="OUT.png", help="write the latency distribution as PNG")
    bench.add_argument("--min-fps", type=float, help="exit 1 if the FPS is below this")
    bench.add_argument("--progress", action="store_true", help="progress bar even when not a tty")
    bench.set_defaults(func=cmd_bench)

    ha = _command(
        sub, "ha", "the Home Assistant device: show or remove it",
        "The daemon announces itself to Home Assistant by MQTT discovery (homeassistant."
        "discovery, on by default): one device with its entities. 'show' prints the discovery "
        "topic and document; 'remove' clears them on the broker, so Home Assistant removes the "
        "device (stop the daemon first, or it announces itself again when it restarts).",
        "  blazepose-edge ha show\n"
        "  blazepose-edge ha remove --config /etc/blazepose-edge/config.toml\n"
        "  blazepose-edge ha remove --mqtt-host broker.lan --device-id porch",
    )  # fmt: skip
    ha_actions = ha.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = _command(
        ha_actions, "show", "print the discovery topic and document",
        "Print the topic and the JSON document the daemon announces itself with (Home "
        "Assistant's device-based MQTT discovery).",
        "  blazepose-edge ha show --device-id porch",
    )  # fmt: skip
    remove = _command(
        ha_actions, "remove", "remove the device from Home Assistant",
        "Publish an empty retained message on the device's discovery topic (Home Assistant "
        "then removes the device and its entities) and on its state topic. Exit 5 if the "
        "broker cannot be reached or refuses the connection.",
        "  blazepose-edge ha remove --config /etc/blazepose-edge/config.toml",
    )  # fmt: skip
    for action in (show, remove):
        _add_broker_options(action)
    remove.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for the broker (default 10)"
    )
    ha.set_defaults(func=cmd_ha)

    mod = _command(
        sub, "models", "fetch or verify the model files",
        "The model files live in $BLAZEPOSE_EDGE_MODELS, else the service's state folder, else "
        "~/.local/share/blazepose-edge/models. 'fetch' downloads what is missing (the detector "
        "and full from the MediaPipe wheel on PyPI, lite and heavy from the @mediapipe/pose npm "
        "package) and checks every file's SHA-256; 'verify' only checks.",
        "  blazepose-edge models fetch\n  blazepose-edge models verify",
    )  # fmt: skip
    actions = mod.add_subparsers(dest="action", required=True, metavar="ACTION")
    fetch = _command(
        actions, "fetch", "download what is missing and verify every file",
        "Download the pinned archives (the MediaPipe wheel from PyPI, the @mediapipe/pose "
        "tarball from npm) into a temporary folder, only when a file is missing or fails its "
        "checksum; extract the models asked for, verify their SHA-256 and delete the archives. "
        "By default the detector, full and lite; heavy (28 MB) only when named.",
        "  blazepose-edge models fetch\n"
        "  blazepose-edge models fetch --model heavy\n"
        "  BLAZEPOSE_EDGE_MODELS=/srv/models blazepose-edge models fetch",
    )  # fmt: skip
    fetch.add_argument(
        "--model",
        action="append",
        choices=LANDMARK_MODELS,
        help="a landmark model to fetch, repeatable (default: lite and full; heavy, 28 MB, "
        "only when named); the detector is always fetched",
    )
    _command(
        actions, "verify", "check the files on disk (exit 3 if one is missing or broken)",
        "Check each model file's size and SHA-256 against the manifest (absent optional models "
        "are listed as absent), and the int8 variant's record where it was built.",
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
        return EXIT_MODEL
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
