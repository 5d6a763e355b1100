"""The daemon: source -> pose pipeline -> sinks, plus stats, systemd notifications, shutdown.

It owns the threads (capture, stats, the MQTT network loop) and wires the stages; the work itself
lives in the stage modules.
"""

from __future__ import annotations

import logging
import threading
import time

from ..pose import FrameError, PoseEstimator
from .config import RELOADABLE, Config, ConfigError, changed_keys
from .exits import (  # noqa: F401 - re-exported: the exit codes are the daemon's
    EXIT_BROKER,
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_MODEL,
    EXIT_OK,
    EXIT_SOURCE,
    EXIT_UNDELIVERED,
    PERMANENT,
)
from .logs import native_stderr_to_log
from .sdnotify import Watchdog, notify
from .sinks import FrameResult, Sink, make_sinks
from .sources import FrameGrabber, Source, SourceError, open_source
from .sources.grabber import EndOfStream
from .telemetry import Telemetry

log = logging.getLogger(__name__)


class Daemon:
    def __init__(
        self,
        cfg: Config,
        estimator: PoseEstimator | None = None,
        source: Source | None = None,
        reload_config=None,
        sinks: list[Sink] | None = None,
    ):
        self.cfg = cfg
        self.reload_config = reload_config  # () -> Config, for SIGHUP
        self._reload = threading.Event()
        self._camera_said: str | None = None  # the camera status the sinks were last given
        self.device_id = cfg.device_id
        self._stop = threading.Event()
        if estimator is None:
            with native_stderr_to_log():
                estimator = PoseEstimator(
                    model=cfg.pipeline.model,
                    variant=cfg.pipeline.variant,
                    num_threads=cfg.pipeline.threads or None,
                    tracking=True,
                    smoothing=cfg.pipeline.smoothing,
                    min_detection_score=cfg.pipeline.min_detection_score,
                    num_poses=cfg.pipeline.num_poses,
                    redetect_interval=cfg.pipeline.redetect_interval,
                    idle_detect_hz=cfg.pipeline.idle_detect_hz,
                )
        self.estimator = estimator
        self.source = source or open_source(cfg.source)
        self.sinks: list[Sink] = make_sinks(cfg) if sinks is None else sinks
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
        self.cfg.pipeline.idle_detect_hz = new.pipeline.idle_detect_hz
        self.estimator.idle_detect_hz = new.pipeline.idle_detect_hz
        log.info(
            "SIGHUP: configuration reloaded; applied: %s", ", ".join(applied) or "nothing changed"
        )
        if pending:
            log.warning("SIGHUP: these changes need a restart: %s", ", ".join(pending))

    def _camera_status(self, reason: str | None) -> None:
        status = f"degraded: {reason}" if reason else "online"
        if status == self._camera_said:  # the grabber repeats what the start already said
            return
        self._camera_said = status
        for sink in self.sinks:
            self._call(sink, "set_status", status)
        notify(f"STATUS={'degraded: ' + reason if reason else 'running'}")

    def stats(self) -> dict:
        grabber = self.grabber
        out = {
            "v": 1,
            "device": self.device_id,
            "ts": round(time.time(), 3),
            **self.telemetry.summary(),
            "captured": grabber.captured if grabber else 0,
            "dropped_frames": grabber.dropped if grabber else 0,
            "source_errors": grabber.errors if grabber else 0,
            "detector_share": round(self.estimator.detector_share, 4),
            "scanned_share": round(
                self.estimator.frames_scanned / max(self.estimator.frames_processed, 1), 4
            ),
            "fallback_share": round(self.estimator.fallback_share, 4),
            "model": self.estimator.model,
            "variant": self.estimator.variant,
            "runtime": self.estimator.backend,
        }
        for sink in self.sinks:
            report = sink.report()
            if report is not None:
                out[sink.name] = report
        return out

    def _stats_loop(self) -> None:
        while not self._stop.wait(self.cfg.mqtt.stats_interval):
            try:
                stats = self.stats()
            except Exception:  # stats must never take the daemon down
                log.exception("stats failed")
                continue
            for sink in self.sinks:
                self._call(sink, "stats", stats)

    def run(self) -> int:
        cfg = self.cfg
        absent = None
        try:
            self.source.open()
        except SourceError as exc:
            # a camera or stream that is not there yet (it boots slower than this board, say):
            # run on and reopen it with backoff, as when it goes away later; other sources
            # (a file, a folder) and permanent errors (no picamera2) cannot mend by waiting
            if not self.source.may_appear_later or exc.permanent:
                raise
            absent = f"camera lost: {exc}"
            log.warning("%s; running on and reopening it with backoff", exc)
        for sink in self.sinks:
            sink.start()
        self.grabber = FrameGrabber(self.source, on_status=self._camera_status)
        self.grabber.start()
        stats_thread = threading.Thread(target=self._stats_loop, name="stats", daemon=True)
        stats_thread.start()
        log.info(
            "running: %s -> %s, device %s, model %s, variant %s",
            self.source.description,
            "stdout" if cfg.mqtt.host.lower() == "none" else f"{cfg.mqtt.host}:{cfg.mqtt.port}",
            self.device_id,
            self.estimator.model,
            self.estimator.variant,
        )
        ready = False
        if absent:  # started, but degraded: systemd must not count this as a failed start
            self._camera_status(absent)
            notify("READY=1")
            ready = True
        code = EXIT_OK
        ended = False  # by itself (max_frames, end of stream), not by stop() or a failure
        try:
            while not self._stop.is_set():
                self.watchdog.ping()  # the loop is alive: waiting on a slow camera is fine
                refusal = next((s.fatal for s in self.sinks if s.fatal), None)
                if refusal:  # as at start (exit 5): retrying the same credentials cannot help
                    log.error("%s; stopping", refusal)
                    code = EXIT_BROKER
                    break
                broken = next((s.broken for s in self.sinks if s.broken), None)
                if broken:  # running on would deliver nothing; a restart may help
                    log.error("%s; stopping", broken)
                    code = EXIT_FAILED
                    break
                if self._reload.is_set():
                    self._apply_reload()
                try:
                    frame = self.grabber.get(timeout=0.5)
                except EndOfStream as end:
                    log.info("source finished: %s", end)
                    ended = True
                    break
                if frame is None:
                    continue
                if not ready:
                    notify("READY=1", "STATUS=running")
                    ready = True
                try:
                    self._process(frame)
                finally:
                    frame.done()
                if cfg.daemon.max_frames and self.processed >= cfg.daemon.max_frames:
                    log.info("processed %d frames (--max-frames); stopping", self.processed)
                    ended = True
                    break
        finally:
            notify("STOPPING=1")
            self._stop.set()
            self.grabber.stop()
            stats_thread.join(timeout=1.0)
            for sink in self.sinks:
                self._call(sink, "stop")
            deliveries = [d for d in (s.delivery(final=True) for s in self.sinks) if d]
            for delivery in deliveries:
                log.log(logging.INFO if delivery.complete else logging.WARNING, delivery.summary())
        if code == EXIT_OK and self.grabber.error:  # failed for good: non-zero, systemd restarts
            return EXIT_SOURCE
        if code == EXIT_OK and ended and any(d.produced and not d.delivered for d in deliveries):
            log.error("no pose message was delivered; exit code %d", EXIT_UNDELIVERED)
            return EXIT_UNDELIVERED
        return code

    def _call(self, sink: Sink, method: str, *args) -> None:
        """A sink's method; a fault in one sink never stops the daemon or the other sinks."""
        try:
            getattr(sink, method)(*args)
        except Exception:
            log.exception("sink %s: %s failed", sink.name, method)

    def _process(self, frame) -> None:
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
        timings = self.estimator.timings
        timings["wait"] = (start_ns - frame.mono_ns) / 1e6
        h, w = frame.image.shape[:2]
        result = FrameResult(
            frame.index, frame.ts, w, h, poses, frame.image, timings, scanned=poses.scanned
        )
        t0 = time.perf_counter()
        for sink in self.sinks:
            self._call(sink, "frame", result)
        timings["publish"] = (time.perf_counter() - t0) * 1000.0  # all sinks
        timings["total"] = (time.monotonic_ns() - frame.mono_ns) / 1e6
        self.processed += 1
        self.telemetry.record(timings)
