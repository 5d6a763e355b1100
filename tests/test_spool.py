import time

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
