import os
import shutil
import subprocess
import time

import pytest

from edge.service.sinks import spool as spool_module
from edge.service.sinks.spool import HEADER, Spool


def payload(i: int) -> bytes:
    return f'{{"frame":{i}}}'.encode() * 10


def test_append_read_ack_in_order(tmp_path):
    spool = Spool(tmp_path, segment_bytes=2000)
    t0 = time.time()
    seqs = [spool.append(payload(i), ts=t0 + i) for i in range(50)]
    assert seqs == list(range(1, 51))
    assert len(spool.segments) > 3  # rolled over
    records = spool.read_from(spool.first_pending(), limit=100)
    assert [r.seq for r in records] == seqs
    assert records[7].payload == payload(7) and records[7].ts == t0 + 7
    spool.ack_through(20)
    assert spool.pending == 30
    assert spool.read_from(spool.first_pending(), 5)[0].seq == 21
    spool.close()


def test_restart_resumes_unacked(tmp_path):
    spool = Spool(tmp_path, segment_bytes=2000)
    for i in range(30):
        spool.append(payload(i))
    spool.ack_through(12)
    spool.close()
    again = Spool(tmp_path, segment_bytes=2000)
    assert again.pending == 18
    assert [r.seq for r in again.read_from(again.first_pending(), 100)] == list(range(13, 31))
    assert again.append(b"new") == 31  # numbering continues
    again.close()


def test_torn_write_loses_only_the_last_message(tmp_path):
    spool = Spool(tmp_path)
    for i in range(10):
        spool.append(payload(i))
    spool.close()
    seg = next(tmp_path.glob("*.seg"))
    data = seg.read_bytes()
    seg.write_bytes(data[:-7])  # the last record cut short, as by kill -9 mid-write
    again = Spool(tmp_path)
    assert [r.seq for r in again.read_from(1, 100)] == list(range(1, 10))
    assert again.append(b"after") == 10
    assert [r.payload for r in again.read_from(10, 1)] == [b"after"]


def test_corrupt_record_stops_the_segment(tmp_path):
    spool = Spool(tmp_path)
    for i in range(5):
        spool.append(payload(i))
    spool.close()
    seg = next(tmp_path.glob("*.seg"))
    data = bytearray(seg.read_bytes())
    rec = HEADER.size + len(payload(0))
    data[3 * rec + HEADER.size + 2] ^= 0xFF  # flip a byte in the 4th payload
    seg.write_bytes(bytes(data))
    again = Spool(tmp_path)
    assert [r.seq for r in again.read_from(1, 100)] == [1, 2, 3]


def test_size_limit_drops_oldest_and_counts(tmp_path):
    spool = Spool(tmp_path, max_bytes=10_000, segment_bytes=2_000)
    for i in range(200):
        spool.append(payload(i))
    assert spool.size <= 10_000 + 2_000
    assert spool.dropped_full > 0
    assert spool.pending + spool.dropped_full == 200
    first = spool.read_from(spool.first_pending(), 1)[0]
    assert first.seq == spool.dropped_full + 1  # the oldest were dropped, order kept


def test_age_limit_drops_old_messages(tmp_path):
    spool = Spool(tmp_path, max_age_s=60, segment_bytes=1_000)
    old = time.time() - 3600
    for i in range(20):
        spool.append(payload(i), ts=old)
    for i in range(20):
        spool.append(payload(i))
    assert spool.dropped_age >= 10  # whole segments go, so up to one segment of old ones stays
    assert all(r.ts > old for r in spool.read_from(spool.first_pending(), 100)[-20:])


def test_fully_acked_segments_are_deleted(tmp_path):
    spool = Spool(tmp_path, segment_bytes=1_000)
    for i in range(40):
        spool.append(payload(i))
    spool.ack_through(40)
    spool.close()
    assert len(list(tmp_path.glob("*.seg"))) <= 1
    assert Spool(tmp_path).pending == 0


def test_a_lost_middle_leaves_no_phantom_pending(tmp_path):
    """A corrupt record in an older segment loses the rest of it; the count is of what is left."""
    spool = Spool(tmp_path, segment_bytes=2000)
    for i in range(30):
        spool.append(payload(i))
    spool.close()
    first = min(tmp_path.glob("*.seg"), key=lambda p: int(p.stem))
    data = bytearray(first.read_bytes())
    rec = HEADER.size + len(payload(0))
    data[2 * rec + HEADER.size] ^= 0xFF  # the 3rd record of the first segment
    first.write_bytes(bytes(data))
    again = Spool(tmp_path, segment_bytes=2000)
    stored = [r.seq for r in again.read_from(1, 100)]
    assert stored[:2] == [1, 2] and stored[2] > 3  # a gap
    assert again.pending == len(stored)
    again.ack_through(stored[-1])
    assert again.pending == 0


class FailingWriter:
    """Stands in for the segment file: takes part of the record, then the disk is full."""

    def __init__(self, real, fail):
        self.real, self.fail, self.name = real, fail, real.name

    def write(self, data):
        if self.fail():
            self.real.write(data[:5])  # a partial record reached the file
            raise OSError(28, "No space left on device")
        return self.real.write(data)

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_full_disk_drops_and_counts_without_corrupting(tmp_path, caplog):
    spool = Spool(tmp_path)
    assert spool.append(payload(0)) == 1
    full = [True]
    spool._writer = FailingWriter(spool._writer, lambda: full[0])
    for i in range(3):
        assert spool.append(payload(i)) is None  # dropped, not raised
    assert spool.stats()["dropped_io"] == 3
    assert sum("No space left" in r.getMessage() for r in caplog.records) == 1  # rate-limited
    full[0] = False
    assert spool.append(payload(9)) == 2  # numbering goes on where it stopped
    spool.close()
    again = Spool(tmp_path)  # the partial records were cut: both whole records read back
    assert [r.payload for r in again.read_from(1, 10)] == [payload(0), payload(9)]


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB tmpfs: a disk that really fills up. Mounting needs root (CI runs as root)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:  # a container without CAP_SYS_ADMIN, say
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_full_disk_recovers_while_running_and_after_a_restart(small_disk):
    """The disk fills during an outage; once the broker has taken the backlog, the delivered data
    leave the disk at once (the segment being written included), new messages are stored again,
    and the acknowledgement is on disk: a restart sends nothing twice."""
    folder = small_disk / "spool"
    spool = Spool(folder)  # segments of 4 MB: larger than the disk
    stored = 0
    while spool.append(payload(stored)) is not None:
        stored += 1
    assert stored > 500 and spool.dropped_io == 1
    spool.ack_through(stored)  # the broker is back and took everything
    assert shutil.disk_usage(small_disk).used < 64 * 1024  # delivered data are gone
    assert [spool.append(payload(i)) for i in range(100)] == list(range(stored + 1, stored + 101))
    assert spool.dropped_io == 1
    spool._close_writer(sync=False)  # killed (kill -9): no close()
    again = Spool(folder)
    assert again.pending == 100
    assert again.read_from(again.first_pending(), 1)[0].seq == stored + 1


def test_acknowledgements_need_no_new_disk_space(tmp_path, monkeypatch):
    """Creating or renaming a file fails on a full disk; the ``acked`` file is written in place."""
    spool = Spool(tmp_path)
    for i in range(20):
        spool.append(payload(i))

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(spool_module, "open", no_space, raising=False)
    monkeypatch.setattr(os, "replace", no_space)
    spool.ack_through(15)
    spool._close_writer(sync=False)  # killed
    monkeypatch.undo()
    assert Spool(tmp_path).pending == 5


def test_a_small_delivered_segment_is_kept_a_large_one_replaced(tmp_path):
    """No file churn while the broker keeps up; at ROLL_BYTES delivered, the file goes."""
    spool = Spool(tmp_path)
    for i in range(10):
        spool.append(payload(i))
    spool.ack_through(10)
    assert len(list(tmp_path.glob("*.seg"))) == 1
    big = b"x" * 1024
    while spool.size < spool_module.ROLL_BYTES:
        spool.append(big)
    spool.ack_through(spool.next_seq - 1)
    assert list(tmp_path.glob("*.seg")) == [] and spool.size == 0
    assert spool.append(b"next") == spool.acked + 1
    spool.close()


@pytest.mark.parametrize("content", [b"999\n", b"not a number\n", b"-3\n", b""])
def test_an_acked_value_that_cannot_be_right_is_not_trusted(tmp_path, caplog, content):
    spool = Spool(tmp_path)
    for i in range(5):
        spool.append(payload(i))
    spool.ack_through(2)
    spool.close()
    (tmp_path / "acked").write_bytes(content)
    again = Spool(tmp_path)
    assert again.pending == 5  # sent again rather than dropped unseen
    assert any("acked" in r.getMessage() and "sent again" in r.getMessage() for r in caplog.records)
    again.close()
    assert Spool(tmp_path).pending == 5  # the untrusted value does not come back


def test_acked_slots_survive_a_torn_write(tmp_path):
    spool = Spool(tmp_path)
    for i in range(10):
        spool.append(payload(i))
    spool.ack_through(4)
    spool.ack_through(7)
    spool.close()
    data = bytearray((tmp_path / "acked").read_bytes())
    assert len(data) == 2 * spool_module.ACKED_SLOT
    newest = max(range(2), key=lambda i: int(data[i * 30 : i * 30 + 20]))
    data[newest * 30 + 5] ^= 0x01  # the newest slot torn: the other holds the value before it
    (tmp_path / "acked").write_bytes(bytes(data))
    again = Spool(tmp_path)
    assert again.acked < 7 and again.pending == 10 - again.acked


def test_stray_files_in_the_folder_are_left_alone(tmp_path, caplog):
    spool = Spool(tmp_path)
    spool.append(payload(0))
    spool.close()
    (tmp_path / "foo.seg").write_bytes(b"not a segment")
    (tmp_path / "7.seg").mkdir()
    again = Spool(tmp_path)
    assert again.pending == 1 and again.append(b"x") == 2
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "ignoring foo.seg" in warned and "ignoring 7.seg" in warned
    assert (tmp_path / "foo.seg").read_bytes() == b"not a segment"  # not deleted


def test_an_acked_file_from_an_older_version_is_read_and_converted(tmp_path):
    spool = Spool(tmp_path)
    for i in range(5):
        spool.append(payload(i))
    spool.close()
    (tmp_path / "acked").write_text("2\n")  # a bare number, as before slots
    again = Spool(tmp_path)
    assert again.pending == 3
    assert len((tmp_path / "acked").read_bytes()) == 2 * spool_module.ACKED_SLOT
    again.close()
