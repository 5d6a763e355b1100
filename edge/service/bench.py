"""``blazepose-edge bench``: how fast the pipeline runs on this board, stage by stage.

Decodes a video in a capture thread (as the daemon does), runs video mode (tracking + smoothing)
on every frame after a warm-up, and reports per-stage latency (p50/p95/p99; ``frame`` is the
pipeline's time per frame, from taking it to its encoded message; ``decode`` runs alongside in
the capture thread; ``wait`` is time spent waiting for a decoded frame), end-to-end FPS, the share
of frames that ran the detector, CPU use, peak RSS and, on a Raspberry Pi, the SoC temperature
and throttling flags.
Writes a JSON report and a PNG of the latency distribution per stage if asked.

CPU time per frame is split between decoding and the pipeline, thread by thread (Linux): decoding
is the capture thread and the threads the video decoder starts (FFmpeg's); the pipeline is the
rest of the process (the thread calling ``process`` and the interpreter's worker threads). On a
core shared with decoding, the pipeline's wall-clock stages also hold the time the decoder ran
while the pipeline had released the GIL (in the crop kernel, ``estimator_pre``); CPU time does not.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from .. import __version__
from ..pose import PoseEstimator, models
from ..pose.board import board_model, cpu_isa, cpu_model, soc_temperature, throttled_flags
from .logs import native_stderr_to_log
from .sinks import pose_json
from .sources import FrameGrabber
from .sources.opencv import VideoCaptureSource

SCHEMA_VERSION = 1
STAGES = (
    "decode", "wait", "detector_pre", "detector_invoke", "detector_post",
    "estimator_pre", "estimator_invoke", "estimator_post", "smoothing", "publish", "frame",
)  # fmt: skip


def machine() -> dict:
    try:
        affinity = sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        affinity = None
    return {
        "board": board_model(),
        "cpu": cpu_model(),
        "isa": cpu_isa(),
        "cores": os.cpu_count(),
        "affinity": affinity,
        "machine": platform.machine(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


PER_THREAD_CPU = sys.platform.startswith("linux")  # threads listed in /proc, per-thread clocks


def thread_ids() -> set[int]:
    """The kernel's ids of this process's threads (Linux)."""
    return {int(tid) for tid in os.listdir("/proc/self/task")}


def thread_cpu_s(tid: int) -> float:
    """CPU seconds thread ``tid`` of this process has used; 0.0 once it has ended.

    Linux's per-thread CPU clock, with the id glibc's ``pthread_getcpuclockid`` builds
    (``MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)``): it also works for threads Python did not
    start (FFmpeg's, the interpreter's), to the nanosecond."""
    try:
        return time.clock_gettime(~tid << 3 | 6)
    except OSError:  # the thread has ended
        return 0.0


class ThreadGroupCpu:
    """The CPU time of a set of threads, counting those that have ended: ``end`` is told about
    threads just before they end and keeps what they used."""

    def __init__(self):
        self._lock = threading.Lock()
        self._live: set[int] = set()
        self._ended_s = 0.0

    def add(self, tids) -> None:
        with self._lock:
            self._live |= set(tids)

    def end(self, tids) -> None:
        with self._lock:
            for tid in self._live & set(tids):
                self._ended_s += thread_cpu_s(tid)
                self._live.discard(tid)

    def seconds(self) -> float:
        with self._lock:
            return self._ended_s + sum(thread_cpu_s(tid) for tid in self._live)


class _TimedVideo(VideoCaptureSource):
    """A looping video file whose decode times are recorded (in the capture thread), with the CPU
    time of the threads that decode it: the capture thread, and the threads the decoder starts
    when the file is opened and on its first read, which end when it is closed (each loop).
    ``realtime``: frames come at the file's own frame rate, as from a camera (the wait for a
    frame's due time is not decoding time)."""

    def __init__(self, path: str, realtime: bool = False):
        if not Path(path).is_file():
            raise OSError(f"cannot open video {path}")
        super().__init__(path, "file", loop=True, realtime=realtime)
        self.decode_ms: dict[int, float] = {}  # by frame index (it decodes ahead of the pipeline)
        self.decode_cpu = ThreadGroupCpu()
        self._decoder_threads: set[int] = set()
        self._threads_before: set[int] | None = None  # before open(), until the first read
        self._decoded: float | None = None  # when the frame being read was decoded (paced)

    def open(self) -> None:
        before = thread_ids() if PER_THREAD_CPU else None
        super().open()
        self._threads_before = before

    def close(self) -> None:
        self.decode_cpu.end(self._decoder_threads)  # they end with the capture
        self._decoder_threads = set()
        super().close()

    def _pace(self) -> None:
        self._decoded = time.perf_counter()
        super()._pace()

    def read(self):
        t0, self._decoded = time.perf_counter(), None
        frame = super().read()  # opens (again, to loop) if need be
        if frame is not None:
            self.decode_ms[frame.index] = ((self._decoded or time.perf_counter()) - t0) * 1000
        if self._threads_before is not None:  # the first read after opening
            reader = threading.get_native_id()  # lives on: not one of the decoder's threads
            self._decoder_threads = thread_ids() - self._threads_before - {reader}
            self._threads_before = None
            self.decode_cpu.add(self._decoder_threads | {reader})
        return frame


def percentiles(values) -> dict:
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return {"n": 0}
    return {
        "n": int(a.size),
        "mean": round(float(a.mean()), 3),
        "p50": round(float(np.percentile(a, 50)), 3),
        "p95": round(float(np.percentile(a, 95)), 3),
        "p99": round(float(np.percentile(a, 99)), 3),
        "max": round(float(a.max()), 3),
    }


def progress(done: int, total: int, fps: float) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    sys.stderr.write(
        f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} frames {fps:5.1f} FPS"
    )
    sys.stderr.flush()


def run(
    source: str,
    variant: str = "auto",
    threads: int | None = None,
    frames: int = 300,
    warmup: int = 30,
    show_progress: bool = True,
    model: str = models.DEFAULT_MODEL,
    num_poses: int = 1,
    realtime: bool = False,
) -> dict:
    """``realtime``: the video plays at its own frame rate, as a camera delivers frames; frames
    that arrive while the pipeline is busy are dropped (and counted), as in the daemon."""
    with native_stderr_to_log():
        est = PoseEstimator(
            variant=variant, num_threads=threads, tracking=True, model=model, num_poses=num_poses
        )
    video = _TimedVideo(source, realtime=realtime)
    video.open()
    grabber = FrameGrabber(video)  # decoding runs in its own thread, as in the daemon
    samples: dict[str, list[float]] = {stage: [] for stage in STAGES}
    temps = [t for t in [soc_temperature()] if t is not None]
    throttled = [f for f in [throttled_flags()] if f is not None]
    total = warmup + frames
    index = 0
    measured_frames: list[int] = []  # source frame numbers, in order
    t_start = None
    grabber.start()
    try:
        while len(measured_frames) < frames:
            t0 = time.perf_counter()
            frame = grabber.get(timeout=10.0)
            if frame is None:
                raise OSError(f"no frame from {source} in 10 s")
            t1 = time.perf_counter()
            if index == warmup:  # the first measured frame: everything counts from here
                t_start = t0
                cpu0, decode0 = time.process_time(), video.decode_cpu.seconds()
                pipeline0, dropped0 = time.thread_time(), grabber.dropped
                est.reset_counters()
            poses = est.process(frame.image, timestamp_ms=frame.pts_ms)
            t2 = time.perf_counter()
            h, w = frame.image.shape[:2]
            pose_json("bench", frame.index, frame.ts, w, h, poses)
            t3 = time.perf_counter()
            if index >= warmup:
                measured_frames.append(frame.index)
                samples["wait"].append((t1 - t0) * 1000)
                for stage, ms in est.timings.items():
                    samples[stage].append(ms)
                samples["publish"].append((t3 - t2) * 1000)
                samples["frame"].append((t3 - t1) * 1000)
            index += 1
            measured = len(measured_frames)
            if show_progress and (index % 10 == 0 or measured == frames):
                elapsed = time.perf_counter() - (t_start or t0)
                progress(index, total, measured / elapsed if t_start and elapsed > 0 else 0.0)
            if index % 30 == 0:
                for value, store in ((soc_temperature(), temps), (throttled_flags(), throttled)):
                    if value is not None:
                        store.append(value)
        wall = time.perf_counter() - t_start
        cpu_s, decode_s = time.process_time() - cpu0, video.decode_cpu.seconds() - decode0
        pipeline_thread_s = time.thread_time() - pipeline0
        dropped = grabber.dropped - dropped0
    finally:
        grabber.stop()
    samples["decode"] = [video.decode_ms[i] for i in measured_frames if i in video.decode_ms]
    if show_progress:
        sys.stderr.write("\n")
    per_frame = lambda s: round(1000 * s / frames, 3)  # noqa: E731
    invoke = sum(np.sum(samples[s]) for s in ("detector_invoke", "estimator_invoke"))
    frame_total = float(np.sum(samples["frame"]))
    models_used = {path.stem: models.sha256_of(path) for path in est.model_files.values()}
    return {
        "schema_version": SCHEMA_VERSION,
        "blazepose_edge": __version__,
        "env": {
            **machine(),
            "runtime": est.backend,
            "threads": est.num_threads,
            "model": est.model,
            "variant": est.variant,
            "variant_requested": variant,
            "variant_reason": est.variant_reason,
            "models": models_used,
        },
        "config": {
            "source": source,
            "frames": frames,
            "warmup": warmup,
            "num_poses": num_poses,
            "realtime": realtime,
        },
        "stages_ms": {stage: percentiles(v) for stage, v in samples.items() if v},
        "throughput": {
            "fps": round(frames / wall, 2),
            "frames": frames,
            "wall_s": round(wall, 3),
            "wall_ms_per_frame": per_frame(wall),
            "detector_share": round(est.detector_share, 4),
            "source_fps": round(video.file_fps, 2),
            # frames the video delivered while the pipeline was busy (``realtime`` only)
            "dropped": dropped,
            "outside_invoke_share": round(1 - invoke / frame_total, 4) if frame_total else None,
        },
        "resources": {
            "cpu_percent": round(100 * cpu_s / wall, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            # CPU time per measured frame: the process, split into decoding (the capture thread
            # and the decoder's threads) and the pipeline (the rest: the thread calling
            # process(), in pipeline_thread, and the interpreter's worker threads); None where
            # threads cannot be told apart (not Linux)
            "cpu_ms_per_frame": {
                "process": per_frame(cpu_s),
                "pipeline": per_frame(cpu_s - decode_s) if PER_THREAD_CPU else None,
                "decode": per_frame(decode_s) if PER_THREAD_CPU else None,
                "pipeline_thread": per_frame(pipeline_thread_s),
            },
        },
        "thermal": {
            "temperature_c": {"start": temps[0], "end": temps[-1], "max": max(temps)}
            if temps
            else None,
            "throttled": {
                "start": hex(throttled[0]),
                "end": hex(throttled[-1]),
                "any": hex(int(np.bitwise_or.reduce(throttled))),
            }
            if throttled
            else None,
            # under-voltage / capped / throttled / soft limit now (bits 0-3) invalidate a run
            "valid": not throttled or not any(f & 0xF for f in throttled),
        },
    }


def plot(report: dict, path: str) -> None:
    """A PNG of the latency distribution per stage (p50 box to p95, whisker to p99)."""
    stages = [(k, v) for k, v in report["stages_ms"].items() if v.get("n")]
    row, left, width = 34, 190, 900
    height = 70 + row * len(stages) + 40
    img = np.full((height, left + width + 40, 3), 255, np.uint8)
    top = max(v["p99"] for _, v in stages) * 1.05 or 1.0
    x = lambda ms: int(left + width * ms / top)  # noqa: E731
    env = report["env"]
    title = (f"blazepose-edge bench: {report['throughput']['fps']} FPS, {env['threads']} thread(s), "
             f"{env['cpu']} ({env['isa'].split()[0]})")  # fmt: skip
    cv2.putText(
        img, title[:110], (10, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA
    )
    cv2.putText(img, "ms: box p50..p95, whisker to p99, tick = mean", (10, 48),
                cv2.FONT_HERSHEY_SIMPLEX, 0.45, (90, 90, 90), 1, cv2.LINE_AA)  # fmt: skip
    for i, (name, v) in enumerate(stages):
        y = 70 + i * row
        cv2.putText(
            img, name, (10, y + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA
        )
        cv2.line(img, (x(v["p95"]), y + 13), (x(v["p99"]), y + 13), (120, 120, 120), 1)
        cv2.rectangle(img, (x(v["p50"]), y + 4), (max(x(v["p95"]), x(v["p50"]) + 2), y + 22),
                      (200, 140, 40), -1)  # fmt: skip
        cv2.line(img, (x(v["mean"]), y + 2), (x(v["mean"]), y + 24), (0, 0, 200), 2)
        cv2.putText(img, f"{v['p50']:.2f}", (x(v["p99"]) + 6, y + 18), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4, (60, 60, 60), 1, cv2.LINE_AA)  # fmt: skip
    y_axis = 70 + row * len(stages) + 5
    for k in range(6):
        ms = top * k / 5
        cv2.line(img, (x(ms), 62), (x(ms), y_axis), (225, 225, 225), 1)
        cv2.putText(img, f"{ms:.1f}", (x(ms) - 10, y_axis + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (60, 60, 60), 1, cv2.LINE_AA)  # fmt: skip
    if not cv2.imwrite(path, img):
        raise OSError(f"cannot write {path}")


def summary(report: dict) -> str:
    lines = [f"{'stage':18s} {'p50':>8s} {'p95':>8s} {'p99':>8s}  ms"]
    for stage, v in report["stages_ms"].items():
        lines.append(f"{stage:18s} {v['p50']:8.3f} {v['p95']:8.3f} {v['p99']:8.3f}")
    t, r, e = report["throughput"], report["resources"], report["env"]
    lines.append(
        f"FPS {t['fps']} ({e.get('model', 'full')} {e['variant']}, {e['threads']} thread(s), {e['runtime']}, {e['cpu']}, {e['isa'].split()[0]}); "
        f"detector on "
        f"{100 * t['detector_share']:.1f}% of frames; outside model invocation "
        f"{100 * t['outside_invoke_share']:.1f}% of frame time; CPU {r['cpu_percent']}%, "
        f"peak RSS {r['peak_rss_mb']} MB"
    )
    cpu = r["cpu_ms_per_frame"]
    split = (
        f"pipeline {cpu['pipeline']:.2f} ms, decoding {cpu['decode']:.2f} ms, "
        if cpu["decode"] is not None
        else ""
    )
    lines.append(
        f"CPU per frame: {split}whole process {cpu['process']:.2f} ms; "
        f"wall time per frame {t['wall_ms_per_frame']:.2f} ms"
    )
    if report["config"].get("realtime"):
        lines.append(
            f"paced at the video's {t['source_fps']:g} FPS: {t['dropped']} frame(s) dropped while "
            f"the pipeline was busy"
        )
    if report["thermal"]["temperature_c"]:
        th = report["thermal"]
        lines.append(f"SoC {th['temperature_c']}, throttled {th['throttled']}, valid {th['valid']}")
    return "\n".join(lines)


def write_json(report: dict, path: str) -> None:
    Path(path).write_text(json.dumps(report, indent=2) + "\n")
