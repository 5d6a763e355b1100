"""Prometheus metrics for ``/metrics``, through ``prometheus_client`` with a registry of our own
(never the process-wide default one).

Names follow Prometheus' conventions: the ``blazepose_edge_`` prefix, base units (seconds,
bytes, celsius), ``_total`` on counters, ``_ratio`` on shares. Most figures are the daemon's stats
document (the stats topic), read at scrape time: they are as fresh as its last document
(``mqtt.stats_interval``, 5 s). Frames processed and the stage latency histogram are the live
view's own and always current.

The histogram costs the pipeline nothing but a reference: ``keep`` (the pipeline's thread) holds
each frame's timings, and ``drain`` (the stats thread, or a scrape) sorts them into buckets later.
The daemon adds ``publish`` and ``total`` to a frame's timings after the sinks return, so the
newest frame is left for the next drain.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder

from ... import __version__
from ...pose import board

if TYPE_CHECKING:
    from .live import LiveView

PREFIX = "blazepose_edge_"
# seconds; a stage of a Pi 4 frame lies between 0.1 ms (smoothing) and 100 ms (heavy's invoke)
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5,
           1.0, 2.5)  # fmt: skip
KEEP = 4096  # frames' timings held between drains (beyond: the oldest are not counted)


class LatencyHistogram:
    """Per-stage latency buckets, filled from frames' timings (ms) in batches."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pending: deque[dict[str, float]] = deque(maxlen=KEEP)
        self.counts: dict[str, list[int]] = {}  # stage -> per-bucket counts (last: +Inf)
        self.sums: dict[str, float] = {}

    def keep(self, timings: dict[str, float]) -> None:
        self._pending.append(timings)  # deque.append is atomic: no lock in the pipeline

    def drain(self, final: bool = False) -> None:
        with self._lock:
            leave = 0 if final else 1  # the newest may still be getting publish and total
            while len(self._pending) > leave:
                timings = self._pending.popleft()
                for stage, ms in list(timings.items()):
                    seconds = ms / 1000.0
                    counts = self.counts.get(stage)
                    if counts is None:
                        counts = self.counts[stage] = [0] * (len(BUCKETS) + 1)
                        self.sums[stage] = 0.0
                    counts[bisect.bisect_left(BUCKETS, seconds)] += 1
                    self.sums[stage] += seconds

    def family(self) -> HistogramMetricFamily:
        self.drain()
        family = HistogramMetricFamily(
            PREFIX + "stage_latency_seconds",
            "Time per pipeline stage of each processed frame (wait: capture to pipeline; "
            "publish: the sinks; total: capture to sent).",
            labels=["stage"],
        )
        with self._lock:
            for stage in sorted(self.counts):
                running, buckets = 0, []
                for bound, n in zip((*BUCKETS, float("inf")), self.counts[stage], strict=True):
                    running += n
                    buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
                family.add_metric([stage], buckets, self.sums[stage])
        return family


def _get(doc: dict | None, *path: str):
    """``doc[path[0]][path[1]]...``, or None where a level is missing."""
    value = doc
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _number(doc: dict | None, *path: str) -> float | None:
    """``_get(doc, *path)`` if it is a number (not a bool), else None."""
    value = _get(doc, *path)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


class _Collector:
    """Builds the metric families at scrape time from the live view and its last stats."""

    def __init__(self, view: LiveView, latency: LatencyHistogram):
        self.view = view
        self.latency = latency
        self.board = board.board_model() or board.cpu_model()

    def describe(self) -> list:
        return []  # families depend on what the stats hold: not checked at registration

    def collect(self) -> Iterator[Metric]:
        view = self.view
        stats = view.latest_stats
        if stats is not None:
            yield InfoMetricFamily(
                PREFIX[:-1],
                "What runs here (value 1): version, landmark model, variant, runtime, board.",
                value={
                    "version": __version__,
                    "device": str(stats.get("device", view.device)),
                    "model": str(stats.get("model", "")),
                    "variant": str(stats.get("variant", "")),
                    "runtime": str(stats.get("runtime", "")),
                    "board": self.board,
                },
            )
        yield CounterMetricFamily(
            PREFIX + "frames_processed", "Frames the pipeline processed.", value=view.frames
        )
        counters = (
            ("frames_captured", "Frames read from the source.", ("captured",)),
            ("frames_dropped",
             "Frames the pipeline could not take in time (a live source keeps only the newest).",
             ("dropped_frames",)),
            ("frames_bad", "Frames skipped as unusable (wrong shape, type or size).",
             ("bad_frames",)),
            ("source_errors", "Source failures (the camera or stream is then reopened).",
             ("source_errors",)),
            ("pose_messages", "Pose messages produced for the pose sink (MQTT or stdout).",
             ("publish", "pose", "messages")),
            ("pose_messages_delivered",
             "Pose messages delivered (QoS 0: handed to a connected client; QoS 1, 2: "
             "acknowledged by the broker).",
             ("publish", "pose", "delivered")),
        )  # fmt: skip
        gauges = (
            ("frames_per_second", "Frames processed per second, over the last stats interval.",
             ("fps",)),
            ("detector_share_ratio",
             "Share of frames that ran the person detector (the rest were tracked).",
             ("detector_share",)),
            ("int8_fallback_ratio",
             "Share of the int8 estimator's landmark estimates handed to the float model (its "
             "pose flag near the threshold); 0 for the other variants.",
             ("fallback_share",)),
            ("cpu_temperature_celsius", "SoC temperature, where readable.", ("temperature_c",)),
            ("throttled_flags", "Raspberry Pi firmware throttling bits (get_throttled).",
             ("throttled",)),
            ("publish_queue_messages",
             "Messages published but not yet delivered (held in memory or in the spool).",
             ("publish", "pending"), ("publish", "pose", "pending")),
            ("spool_messages", "Pose messages waiting in the on-disk spool.",
             ("publish", "spool", "pending")),
            ("spool_bytes", "Size of the on-disk spool.", ("publish", "spool", "bytes")),
        )  # fmt: skip
        for name, doc, path in counters:
            value = _number(stats, *path)
            if value is not None:
                yield CounterMetricFamily(PREFIX + name, doc, value=value)
        dropped = _get(stats, "publish", "pose", "dropped")
        if isinstance(dropped, dict) and dropped:
            family = CounterMetricFamily(
                PREFIX + "pose_messages_dropped",
                "Pose messages dropped, by reason (offline, queue_full, spool_full, ...).",
                labels=["reason"],
            )
            for reason, n in sorted(dropped.items()):
                if isinstance(n, int):
                    family.add_metric([reason], n)
            yield family
        for name, doc, *paths in gauges:  # the first path the stats hold
            value = next((v for p in paths if (v := _number(stats, *p)) is not None), None)
            if value is not None:
                yield GaugeMetricFamily(PREFIX + name, doc, value=value)
        connected = _get(stats, "publish", "connected")
        if isinstance(connected, bool):
            yield GaugeMetricFamily(
                PREFIX + "broker_connected", "1 while connected to the MQTT broker.",
                value=int(connected),
            )  # fmt: skip
        yield GaugeMetricFamily(
            PREFIX + "people", "People (poses) in the last processed frame.", value=view.people
        )
        healthy, _ = view.health()
        yield GaugeMetricFamily(
            PREFIX + "healthy", "1 while the status is online and frames flow (/healthz).",
            value=int(healthy),
        )  # fmt: skip
        yield GaugeMetricFamily(
            PREFIX + "http_streams", "MJPEG viewers connected now.", value=view.streams
        )
        yield CounterMetricFamily(
            PREFIX + "http_frames_encoded", "JPEG frames encoded for viewers.", value=view.encoded
        )
        yield self.latency.family()


class Metrics:
    """The live view's registry: our collector and the standard ``process_*`` metrics."""

    def __init__(self, view: LiveView):
        self.latency = LatencyHistogram()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(view, self.latency))
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, memory, fds

    def keep(self, timings: dict[str, float]) -> None:
        self.latency.keep(timings)

    def drain(self, final: bool = False) -> None:
        self.latency.drain(final)

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition (Prometheus text, or OpenMetrics when asked for) and its type."""
        encoder, ctype = choose_encoder(accept or "")
        return encoder(self.registry), ctype
