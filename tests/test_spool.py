import time

from edge.publish.spool import HEADER, Spool


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
