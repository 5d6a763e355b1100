"""What became of a run's pose messages: the exit summary and ``publish.pose`` in stats.

"Delivered" depends on the sink: written to stdout (``--mqtt-host none``); with MQTT QoS 0,
handed to a client connected to the broker (QoS 0 has no acknowledgement: a message in the
socket when the connection breaks is lost unseen); with QoS 1 or 2, acknowledged by the broker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# why pose messages were dropped (the keys appear in stats, the texts in the exit summary)
REASONS = {
    "offline": "broker unreachable",
    "queue_full": "queue full (mqtt.queue_limit)",
    "unacknowledged": "not acknowledged before exit",
    "spool_full": "spool full (spool.max_mb)",
    "spool_age": "older than spool.max_age_s",
    "spool_io": "spool write failed",
    "stdout": "stdout closed",
}


@dataclass
class Delivery:
    produced: int = 0  # pose messages this run handed to the sink
    delivered: int = 0  # of these, delivered (see the module docstring)
    dropped: dict[str, int] = field(default_factory=dict)  # REASONS key -> count
    pending: int = 0  # not delivered yet, not dropped (in flight; in the spool)
    earlier: int = 0  # delivered from the spool an earlier run left
    spool: bool = False  # pending messages are in the spool (kept for the next start)
    verb: str = "delivered"

    @property
    def lost(self) -> int:
        return sum(self.dropped.values())

    @property
    def complete(self) -> bool:
        """Every pose message of this run was delivered."""
        return self.delivered >= self.produced and not self.lost and not self.pending

    def to_dict(self) -> dict:
        return {
            "messages": self.produced,
            "delivered": self.delivered,
            "pending": self.pending,
            "dropped": {key: n for key, n in self.dropped.items() if n},
        }

    def summary(self) -> str:
        """``N of M pose messages delivered, K dropped: <why>; P kept in the spool ...``."""
        noun = "pose message" if self.produced == 1 else "pose messages"
        text = f"{self.delivered} of {self.produced} {noun} {self.verb}"
        reasons = {key: n for key, n in self.dropped.items() if n}
        if reasons:
            if len(reasons) == 1:
                why = REASONS[next(iter(reasons))]
            else:
                why = ", ".join(f"{n} {REASONS[key]}" for key, n in reasons.items())
            text += f", {self.lost} dropped: {why}"
        if self.pending:
            where = "kept in the spool for the next start" if self.spool else "still in flight"
            text += f"; {self.pending} {where}"
        if self.earlier:
            text += f"; also delivered: {self.earlier} left in the spool by an earlier run"
        return text
