"""An on-disk, append-only spool for messages that must survive broker outages and restarts.

Layout: a folder of segment files ``<first-seq>.seg`` (at most ``segment_bytes`` each) and a file
``acked`` holding the sequence number up to which every message has been delivered. Other files
in the folder are left alone, with a warning. A record is

    uint32 length of the payload | uint32 CRC-32 of (seq, ts, payload) | uint64 seq | float64 ts
    | payload

little-endian, written with one ``write()``. Reading stops at the first record that is short or
fails its CRC, and recovery truncates it: a write torn by ``kill -9`` or a power cut loses at
most that message.

The ``acked`` file is created once, at its full size, and then overwritten in place, so that
recording a delivery needs no new disk space (a full disk must not make delivered messages be
sent again after a restart). It holds two slots, written alternately, each a line
``<seq, 20 digits> <CRC-32 of those digits, 8 hex digits>``: a write torn by a power cut spoils
one slot and the other still holds the value before it. Reading takes the highest valid slot. A
value that cannot be right (beyond the last stored message while messages are stored) is not
trusted: it is reported and every stored message is sent again, rather than dropped unseen.

Limits: when the spool holds more than ``max_bytes``, whole segments are dropped, oldest first;
messages older than ``max_age_s`` are dropped too. Both are counted. Delivery is in order; after
a crash, messages sent but not yet acknowledged are sent again (at least once). A segment is
synced before the next one is started; a corrupt record in an older segment (a disk error) loses
the rest of that segment, and the numbers it held are skipped, not waited for.

A write that fails (a full disk, an I/O error) drops that message, counts it (``dropped_io``) and
logs at most every ``ERROR_LOG_INTERVAL_S``; the spool goes on with the next one.

Delivered data leave the disk promptly: older segments as soon as they are delivered, the segment
being written once everything in it is delivered and it holds ``ROLL_BYTES`` or more, or at once
after a write failed (a full disk), so that the space is there again for new messages.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
HEADER = struct.Struct("<IIQd")
SUFFIX = ".seg"
SEGMENT_NAME = re.compile(r"[0-9]{1,19}\.seg")
ERROR_LOG_INTERVAL_S = 10.0
ROLL_BYTES = 256 * 2**10  # a delivered segment being written is replaced once this big
ACKED_SLOT = 30  # bytes: 20 digits, a space, 8 hex digits, a newline


@dataclass
class Record:
    seq: int
    ts: float
    payload: bytes


def _crc(seq: int, ts: float, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(struct.pack("<Qd", seq, ts)))


def _acked_slot(seq: int) -> bytes:
    digits = f"{seq:020d}".encode()
    return digits + f" {zlib.crc32(digits):08x}\n".encode()


def _parse_acked(data: bytes) -> int | None:
    """The value of an ``acked`` file: the highest valid slot; a bare number (as written before
    slots); None when there is no valid value."""
    if len(data) == 2 * ACKED_SLOT:
        values = []
        for slot in (data[:ACKED_SLOT], data[ACKED_SLOT:]):
            digits, _, crc = slot.rstrip(b"\n").partition(b" ")
            if len(digits) == 20 and digits.isdigit() and crc == b"%08x" % zlib.crc32(digits):
                values.append(int(digits))
        return max(values) if values else None
    text = data.strip()
    return int(text) if text.isdigit() and len(text) <= 19 else None


class Segment:
    def __init__(self, path: Path):
        self.path = path
        self.first = int(path.stem)
        self.last = self.first - 1  # last seq stored
        self.size = 0
        self.oldest_ts: float | None = None
        self.index: list[tuple[int, int]] = []  # (seq, offset), in order
        self.sealed = False  # a failed write left bytes that could not be cut: append no more

    def scan(self) -> None:
        """Index the records; truncate a torn or corrupt tail."""
        data = self.path.read_bytes()
        offset = 0
        while offset + HEADER.size <= len(data):
            length, crc, seq, ts = HEADER.unpack_from(data, offset)
            end = offset + HEADER.size + length
            if end > len(data):
                break
            payload = data[offset + HEADER.size : end]
            if _crc(seq, ts, payload) != crc or (self.index and seq != self.last + 1):
                break
            self.index.append((seq, offset))
            self.last = seq
            if self.oldest_ts is None:
                self.oldest_ts = ts
            offset = end
        if offset < len(data):
            log.warning(
                "spool: %s has %d torn bytes at the end; dropped",
                self.path.name,
                len(data) - offset,
            )
            with open(self.path, "r+b") as fh:
                fh.truncate(offset)
        self.size = offset


class Spool:
    def __init__(
        self,
        folder: Path,
        max_bytes: int = 256 * 2**20,
        max_age_s: float = 86400.0,
        segment_bytes: int = 4 * 2**20,
        fsync_interval_s: float = 1.0,
    ):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.segment_bytes = segment_bytes
        self.fsync_interval_s = fsync_interval_s
        self.lock = threading.Lock()
        self.dropped_full = 0
        self.dropped_age = 0
        self.dropped_io = 0
        self._last_error_log = -ERROR_LOG_INTERVAL_S
        self._last_sync = time.monotonic()
        self._last_ack_write = 0.0
        self._last_ack_sync = 0.0
        self.ack_interval_s = 0.05
        self._under_pressure = False  # a write failed since the current segment was started
        self._acked_fd: int | None = None
        self._acked_slot = 0
        self.segments: list[Segment] = []
        for path in self._segment_files():
            seg = Segment(path)
            seg.scan()
            if seg.index:
                self.segments.append(seg)
            else:
                path.unlink()
        self.acked = self._read_acked()
        self.next_seq = (self.segments[-1].last + 1) if self.segments else self.acked + 1
        self.next_seq = max(self.next_seq, self.acked + 1)
        self._writer = None
        try:
            self._open_acked()
        except OSError as exc:  # a full disk: kept in memory, tried again at the next write
            self._io_error("creating the acked file", exc)
        self._drop_delivered_segments()
        if self.pending:
            log.info("spool: resuming %d undelivered messages from %s", self.pending, self.folder)

    # --- bookkeeping ------------------------------------------------------------------------------

    def _segment_files(self) -> list[Path]:
        """The segment files, oldest first; anything else named ``*.seg`` is reported and left
        alone (a copy made by hand, say: never read, never deleted)."""
        found = []
        for path in self.folder.glob(f"*{SUFFIX}"):
            if SEGMENT_NAME.fullmatch(path.name) and path.is_file():
                found.append(path)
            else:
                log.warning(
                    "spool: ignoring %s: not a spool segment (those are files named "
                    "<number>%s); move it out of %s",
                    path.name, SUFFIX, self.folder,
                )  # fmt: skip
        return sorted(found, key=lambda p: int(p.stem))

    def _read_acked(self) -> int:
        """The recorded acknowledgement point, checked against the stored messages."""
        stored_from = (self.segments[0].first - 1) if self.segments else 0
        path = self.folder / "acked"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return stored_from
        except OSError as exc:
            log.warning("spool: cannot read %s (%s); sending every stored message", path, exc)
            return stored_from
        acked = _parse_acked(data)
        if acked is None:
            log.warning(
                "spool: %s holds no valid sequence number; every stored message is sent again", path
            )
            return stored_from
        if self.segments and acked > self.segments[-1].last:
            log.warning(
                "spool: %s says messages up to number %d were delivered, but the last one stored "
                "is number %d; not trusted: the %d stored messages are sent again",
                path, acked, self.segments[-1].last, sum(len(seg.index) for seg in self.segments),
            )  # fmt: skip
            return stored_from
        return acked

    def _open_acked(self) -> None:
        """Open the ``acked`` file for writing in place, creating it at its full size first (write,
        fsync, rename) unless it already has that size; both slots are set to ``acked``."""
        path = self.folder / "acked"
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_size == 2 * ACKED_SLOT and path.is_file():
                fd = os.open(path, os.O_RDWR)
                try:
                    os.pwrite(fd, _acked_slot(self.acked) * 2, 0)  # in place: no new space
                    os.fsync(fd)
                except OSError:
                    os.close(fd)
                    raise
                self._acked_fd = fd
                return
        tmp = self.folder / "acked.tmp"
        try:
            with open(tmp, "wb") as fh:
                fh.write(_acked_slot(self.acked) * 2)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self._acked_fd = os.open(path, os.O_RDWR)

    def _write_acked(self, sync: bool = True) -> None:
        """Record ``acked`` in place (no new disk space needed). Without ``sync`` the new value
        survives a killed process (it is in the page cache) but not necessarily a power cut."""
        if self._acked_fd is None:
            self._open_acked()
        self._acked_slot ^= 1
        slot = _acked_slot(self.acked)
        if os.pwrite(self._acked_fd, slot, self._acked_slot * ACKED_SLOT) != len(slot):
            raise OSError(28, "short write (disk full?)")
        if sync:
            os.fsync(self._acked_fd)

    @property
    def size(self) -> int:
        return sum(seg.size for seg in self.segments)

    @property
    def pending(self) -> int:
        """Stored messages not yet delivered (numbers lost between segments do not count)."""
        return sum(max(0, seg.last - max(self.acked, seg.first - 1)) for seg in self.segments)

    def _io_error(self, what: str, exc: OSError) -> None:
        now = time.monotonic()
        if now - self._last_error_log >= ERROR_LOG_INTERVAL_S:
            self._last_error_log = now
            log.error(
                "spool: %s failed in %s: %s (%d messages dropped so far)",
                what, self.folder, exc.strerror or exc, self.dropped_io,
            )  # fmt: skip

    def _drop_delivered_segments(self) -> None:
        while (
            self.segments
            and self.segments[0].last <= self.acked
            and (
                len(self.segments) > 1
                or self._writer is None
                or self._under_pressure
                or self.segments[0].size >= ROLL_BYTES
            )
        ):
            self._remove(self.segments.pop(0))
        if not self.segments:  # the next message starts a new segment
            self._under_pressure = False

    def _remove(self, seg: Segment) -> None:
        if self._writer is not None and self._writer.name == str(seg.path):
            self._close_writer(sync=False)
        with contextlib.suppress(FileNotFoundError):
            seg.path.unlink()

    def _close_writer(self, sync: bool) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            if sync:
                os.fsync(writer.fileno())
        except OSError as exc:
            self._io_error("syncing a segment", exc)
        finally:
            writer.close()

    def _drop_oldest_segment(self) -> int:
        """Remove the oldest segment; return how many undelivered messages went with it."""
        seg = self.segments.pop(0)
        lost = max(0, seg.last - max(self.acked, seg.first - 1))
        self.acked = max(self.acked, seg.last)
        self._remove(seg)
        return lost

    def _enforce_limits(self) -> None:
        while self.segments and self.size > self.max_bytes and len(self.segments) > 1:
            lost = self._drop_oldest_segment()
            if lost:
                self.dropped_full += lost
                log.warning("spool full: dropped %d oldest undelivered messages", lost)
        cutoff = time.time() - self.max_age_s
        while (
            len(self.segments) > 1
            and self.segments[1].oldest_ts is not None
            and self.segments[1].oldest_ts < cutoff
        ):
            lost = self._drop_oldest_segment()
            if lost:
                self.dropped_age += lost
                log.warning(
                    "spool: dropped %d undelivered messages older than %.0f s", lost, self.max_age_s
                )

    # --- writing ----------------------------------------------------------------------------------

    def append(self, payload: bytes, ts: float | None = None) -> int | None:
        """Store a message; return its sequence number, or None when the disk refused it (the
        message is dropped and counted)."""
        ts = time.time() if ts is None else ts
        with self.lock:
            seq = self.next_seq
            record = HEADER.pack(len(payload), _crc(seq, ts, payload), seq, ts) + payload
            seg = self.segments[-1] if self.segments else None
            try:
                if seg is None or seg.sealed or seg.size + len(record) > self.segment_bytes:
                    self._close_writer(sync=True)  # durable before any later record is
                    seg = Segment(self.folder / f"{seq}{SUFFIX}")
                    self.segments.append(seg)
                if self._writer is None:
                    # unbuffered: one write() per record, and a failed one leaves nothing queued
                    self._writer = open(seg.path, "ab", buffering=0)  # noqa: SIM115 - kept open
                written = self._writer.write(record)
                if written != len(record):
                    raise OSError(28, "short write (disk full?)")
            except OSError as exc:
                self._failed_append(seg, exc)
                return None
            offset = seg.size
            seg.index.append((seq, offset))
            seg.size += len(record)
            seg.last = seq
            if seg.oldest_ts is None:
                seg.oldest_ts = ts
            self.next_seq = seq + 1
            now = time.monotonic()
            if self.fsync_interval_s >= 0 and now - self._last_sync >= self.fsync_interval_s:
                self._last_sync = now
                try:
                    os.fsync(self._writer.fileno())
                except OSError as exc:
                    self._io_error("syncing a segment", exc)
            self._enforce_limits()
            return seq

    def _sync_writer(self) -> None:
        if self._writer is not None:
            self._last_sync = time.monotonic()
            try:
                os.fsync(self._writer.fileno())
            except OSError as exc:
                self._io_error("syncing a segment", exc)

    def _failed_append(self, seg: Segment | None, exc: OSError) -> None:
        """Undo a record the disk took only part of, so the segment ends on a whole record."""
        self.dropped_io += 1
        self._under_pressure = True
        self._io_error("writing a message", exc)
        if seg is not None and self._writer is not None:
            try:
                os.ftruncate(self._writer.fileno(), seg.size)
            except OSError:  # cannot even cut it: close it, the next message starts a segment
                self._close_writer(sync=False)
                seg.sealed = True
        if seg is not None and not seg.index:  # a new segment that never held a record
            self.segments.remove(seg)
            self._remove(seg)

    # --- reading ----------------------------------------------------------------------------------

    def read_from(self, seq: int, limit: int = 100) -> list[Record]:
        """Up to ``limit`` stored records with sequence number >= ``seq``, in order."""
        out: list[Record] = []
        with self.lock:
            for seg in self.segments:
                if seg.last < seq:
                    continue
                with open(seg.path, "rb") as fh:
                    for rseq, offset in seg.index:
                        if rseq < seq:
                            continue
                        fh.seek(offset)
                        length, _crc_value, _, ts = HEADER.unpack(fh.read(HEADER.size))
                        out.append(Record(rseq, ts, fh.read(length)))
                        if len(out) >= limit:
                            return out
        return out

    def first_pending(self) -> int:
        with self.lock:
            if not self.segments:
                return self.next_seq
            return max(self.acked + 1, self.segments[0].first)

    def ack_through(self, seq: int) -> None:
        """Every message up to ``seq`` has been delivered. The ``acked`` file is rewritten at most
        every ``ack_interval_s`` and synced to disk every ``fsync_interval_s``: after a crash,
        messages acknowledged in that last moment are sent again (at least once)."""
        with self.lock:
            if seq <= self.acked:
                return
            self.acked = seq
            now = time.monotonic()
            if now - self._last_ack_write >= self.ack_interval_s:
                self._last_ack_write = now
                sync = now - self._last_ack_sync >= self.fsync_interval_s
                if sync:
                    self._last_ack_sync = now
                    self._sync_writer()  # on disk before an acknowledgement of it is
                try:
                    self._write_acked(sync)
                except OSError as exc:  # kept in memory; written with a later acknowledgement
                    self._io_error("recording acknowledgements", exc)
            self._drop_delivered_segments()

    def close(self) -> None:
        with self.lock:
            self._close_writer(sync=True)
            try:
                self._write_acked()
            except OSError as exc:  # the next start sends those messages again
                self._io_error("recording acknowledgements", exc)
            if self._acked_fd is not None:
                os.close(self._acked_fd)
                self._acked_fd = None

    def stats(self) -> dict:
        with self.lock:
            return {
                "pending": self.pending,
                "bytes": self.size,
                "dropped_full": self.dropped_full,
                "dropped_age": self.dropped_age,
                "dropped_io": self.dropped_io,
            }
