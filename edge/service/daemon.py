"""The daemon: source -> pose pipeline -> publisher, plus stats, systemd notifications, shutdown.

It owns the threads (capture, stats, the MQTT network loop) and wires the stages; the work itself
lives in the stage modules.
"""

from __future__ import annotations

import json
import logging
import threading
import time

from ..pose import FrameError, PoseEstimator
from .config import RELOADABLE, Config, ConfigError, changed_keys
from .logs import native_stderr_to_log
from .sdnotify import Watchdog, notify
from .sinks import make_publisher, pose_binary, pose_json
from .sources import FrameGrabber, Source, SourceError, open_source
from .sources.grabber import EndOfStream
from .telemetry import Telemetry

log = logging.getLogger(__name__)

# Exit codes (the systemd unit lists the permanent ones in RestartPreventExitStatus=).
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_MODEL = 3
EXIT_SOURCE = 4
EXIT_BROKER = 5


class Daemon:
    def __init__(
        self,
        cfg: Config,
        estimator: PoseEstimator | None = None,
        source: Source | None = None,
        reload_config=None,
    ):
        self.cfg = cfg
        self.reload_config = reload_config  # () -> Config, for SIGHUP
        self._reload = threading.Event()
        self.device_id = cfg.device_id
        self._stop = threading.Event()
        if estimator is None:
            with native_stderr_to_log():
                estimator = PoseEstimator(
                    variant=cfg.pipeline.variant,
                    num_threads=cfg.pipeline.threads or None,
                    tracking=True,
                    smoothing=cfg.pipeline.smoothing,
                    min_detection_score=cfg.pipeline.min_detection_score,
                    num_poses=cfg.pipeline.num_poses,
                )
        self.estimator = estimator
        self.source = source or open_source(cfg.source)
        self.publisher = make_publisher(cfg)
        self.telemetry = Telemetry()
        self.grabber: FrameGrabber | None = None
        self.processed = 0
        self.watchdog = Watchdog()

    def stop(self) -> None:
        """Ask the loop to finish (signal handlers call this)."""
        self._stop.set()

    def request_reload(self) -> None:
        """Re-read the configuration at the next frame (SIGHUP calls this)."""
        self._reload.set()

    def _apply_reload(self) -> None:
        """Apply the settings that can change while running; report the others."""
        self._reload.clear()
        if self.reload_config is None:
            log.warning("SIGHUP: no configuration to reload")
            return
        try:
            new = self.reload_config()
        except ConfigError as exc:
            log.error("SIGHUP: %s; keeping the running configuration", exc)
            return
        except Exception:  # a reload must never take the daemon down
            log.exception("SIGHUP: reading the configuration failed; keeping the running one")
            return
        changed = changed_keys(self.cfg, new)
        applied = sorted(changed & RELOADABLE)
        pending = sorted(changed - RELOADABLE)
        self.cfg.daemon.log_level = new.daemon.log_level
        logging.getLogger().setLevel(new.daemon.log_level.upper())
        self.cfg.mqtt.stats_interval = new.mqtt.stats_interval
        self.cfg.pipeline.min_detection_score = new.pipeline.min_detection_score
        self.estimator.min_detection_score = new.pipeline.min_detection_score
        self.cfg.pipeline.smoothing = new.pipeline.smoothing
        self.estimator.smoothing = new.pipeline.smoothing
        log.info(
            "SIGHUP: configuration reloaded; applied: %s", ", ".join(applied) or "nothing changed"
        )
        if pending:
            log.warning("SIGHUP: these changes need a restart: %s", ", ".join(pending))

    def _camera_status(self, reason: str | None) -> None:
        self.publisher.set_status(f"degraded: {reason}" if reason else "online")
        notify(f"STATUS={'degraded: ' + reason if reason else 'running'}")

    def stats(self) -> dict:
        grabber = self.grabber
        return {
            "v": 1,
            "device": self.device_id,
            "ts": round(time.time(), 3),
            **self.telemetry.summary(),
            "captured": grabber.captured if grabber else 0,
            "dropped_frames": grabber.dropped if grabber else 0,
            "source_errors": grabber.errors if grabber else 0,
            "detector_share": round(self.estimator.detector_share, 4),
            "variant": self.estimator.variant,
            "publish": self.publisher.stats(),
        }

    def _stats_loop(self) -> None:
        while not self._stop.wait(self.cfg.mqtt.stats_interval):
            try:
                payload = json.dumps(self.stats(), separators=(",", ":")).encode()
                self.publisher.publish_stats(payload)
            except Exception:  # stats must never take the daemon down
                log.exception("stats failed")

    def run(self) -> int:
        cfg = self.cfg
        absent = None
        try:
            self.source.open()
        except SourceError as exc:
            # a camera or stream that is not there yet (it boots slower than this board, say):
            # run on and reopen it with backoff, as when it goes away later; other sources
            # (a file, a folder, a missing picamera2) cannot appear by waiting
            if getattr(self.source, "kind", None) not in ("device", "stream"):
                raise
            absent = f"camera lost: {exc}"
            log.warning("%s; running on and reopening it with backoff", exc)
        self.publisher.start()
        self.grabber = FrameGrabber(self.source, on_status=self._camera_status)
        self.grabber.start()
        stats_thread = threading.Thread(target=self._stats_loop, name="stats", daemon=True)
        stats_thread.start()
        log.info(
            "running: %s -> %s, device %s, variant %s",
            self.source.description,
            "stdout" if cfg.mqtt.host.lower() == "none" else f"{cfg.mqtt.host}:{cfg.mqtt.port}",
            self.device_id,
            self.estimator.variant,
        )
        ready = False
        if absent:  # started, but degraded: systemd must not count this as a failed start
            self._camera_status(absent)
            notify("READY=1")
            ready = True
        code = EXIT_OK
        encode = cfg.mqtt.encoding
        try:
            while not self._stop.is_set():
                self.watchdog.ping()  # the loop is alive: waiting on a slow camera is fine
                refusal = self.publisher.credentials_refused
                if refusal:  # as at start (exit 5): retrying the same credentials cannot help
                    log.error("%s; stopping", refusal)
                    code = EXIT_BROKER
                    break
                if self._reload.is_set():
                    self._apply_reload()
                try:
                    frame = self.grabber.get(timeout=0.5)
                except EndOfStream as end:
                    log.info("source finished: %s", end)
                    break
                if frame is None:
                    continue
                if not ready:
                    notify("READY=1", "STATUS=running")
                    ready = True
                try:
                    self._process(frame, encode)
                finally:
                    frame.done()
                if cfg.daemon.max_frames and self.processed >= cfg.daemon.max_frames:
                    log.info("processed %d frames (--max-frames); stopping", self.processed)
                    break
        finally:
            notify("STOPPING=1")
            self._stop.set()
            self.grabber.stop()
            stats_thread.join(timeout=1.0)
            self.publisher.stop()
        if code == EXIT_OK and self.grabber.error:  # failed for good: non-zero, systemd restarts
            return EXIT_SOURCE
        return code

    def _process(self, frame, encode: str) -> None:
        clock = time.perf_counter
        start_ns = time.monotonic_ns()
        try:
            poses = self.estimator.process(frame.image, timestamp_ms=frame.pts_ms)
        except FrameError as exc:
            self.telemetry.bad_frames += 1
            if self.telemetry.bad_frames <= 10 or self.telemetry.bad_frames % 1000 == 0:
                log.warning(
                    "skipped frame %d: %s (%d so far)", frame.index, exc, self.telemetry.bad_frames
                )
            return
        t0 = clock()
        h, w = frame.image.shape[:2]
        if encode == "binary":
            payload = pose_binary(frame.index, frame.ts, w, h, poses)
        else:
            payload = pose_json(self.device_id, frame.index, frame.ts, w, h, poses)
        t1 = clock()
        self.publisher.publish_pose(payload, frame.ts)
        t2 = clock()
        self.processed += 1
        timings = dict(self.estimator.timings)
        timings["wait"] = (start_ns - frame.mono_ns) / 1e6
        timings["encode"] = (t1 - t0) * 1000.0
        timings["publish"] = (t2 - t1) * 1000.0
        timings["total"] = (time.monotonic_ns() - frame.mono_ns) / 1e6
        self.telemetry.record(timings)
