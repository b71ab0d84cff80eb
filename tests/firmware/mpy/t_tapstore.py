# Flash ring buffer: durability across re-open, order, bounds, torn writes, wear spread.
import os

import tapstore as T

import mpytest

ROOT = "/flash/ts"
n_case = [0]


def fresh(slots=8, ack_slots=4):
    n_case[0] += 1
    return T.TapStore(ROOT + str(n_case[0]), slots, ack_slots), ROOT + str(n_case[0])


def test_append_reopen_order():
    s, root = fresh()
    for i in range(5):
        s.append(bytes((i, 1, 2, 3)), 1000 + i, offline=True)
    s2 = T.TapStore(root, 8, 4)
    assert s2.boot == s.boot + 1
    assert [r.number for r in s2._pending] == [1, 2, 3, 4, 5]
    assert s2.first_pending().uid == b"\x00\x01\x02\x03"
    assert s2.first_pending().flags & T.FLAG_OFFLINE


def test_delivered_survives_reopen():
    s, root = fresh()
    for i in range(3):
        s.append(bytes((i,)) * 7, i, offline=False)
    s.mark_delivered(1)
    s.mark_delivered(1)  # idempotent
    s2 = T.TapStore(root, 8, 4)
    assert [r.number for r in s2._pending] == [2, 3]
    s2.mark_delivered(3)
    s3 = T.TapStore(root, 8, 4)
    assert s3.first_pending() is None and s3.next_number == 4


def test_numbers_continue_after_everything_delivered():
    s, root = fresh()
    s.append(b"\x01" * 4, 0, False)
    s.mark_delivered(1)
    s2 = T.TapStore(root, 8, 4)
    assert s2.append(b"\x02" * 4, 0, False) == 2


def test_bounded_overwrites_oldest_and_gap_shows_loss():
    s, root = fresh(slots=8)
    for i in range(11):
        s.append(bytes((i,)) * 4, i, True)
    assert s.pending_count() == 8
    s2 = T.TapStore(root, 8, 4)
    nums = [r.number for r in s2._pending]
    assert nums == list(range(4, 12)), nums  # 1..3 overwritten: the gap says so
    assert os.stat(root + "/taps.bin")[6] == 8 * T.TAP_SIZE  # never grows


def test_torn_write_ignored():
    s, root = fresh()
    s.append(b"\x01" * 4, 0, True)
    s.append(b"\x02" * 4, 0, True)
    with open(root + "/taps.bin", "r+b") as f:
        f.seek(2 * T.TAP_SIZE + 20)
        f.write(b"\x00\x00")  # corrupt record 2 as a reset mid-write would
    s2 = T.TapStore(root, 8, 4)
    assert [r.number for r in s2._pending] == [1]


def test_torn_ack_falls_back_to_previous():
    s, root = fresh()
    for i in range(3):
        s.append(bytes((i,)) * 4, 0, True)
    s.mark_delivered(1)
    s.mark_delivered(2)
    last = (s._gen - 1) % 4
    with open(root + "/taps.ack", "r+b") as f:
        f.seek(last * T.ACK_SIZE + 5)
        f.write(b"\x5a")
    s2 = T.TapStore(root, 8, 4)
    assert s2.delivered == 1  # tap 2 is offered again (the gateway dedups by number)


def test_writes_spread_over_slots():
    s, _root = fresh(slots=8, ack_slots=4)
    counts = [0] * 8
    for i in range(64):
        n = s.append(b"\x05" * 4, i, False)
        counts[n % 8] += 1
        s.mark_delivered(n)
    assert max(counts) - min(counts) <= 1, counts
    assert s.writes == 128 + 1  # one per tap, one per delivery, one at open


def test_age_exact_and_lower_bound():
    s, root = fresh()
    s.append(b"\x01" * 4, 5000, True)
    s.append(b"\x02" * 4, 9000, True)
    r = s.first_pending()
    assert s.age_ms(r, 7000) == (2000, True)
    s2 = T.TapStore(root, 8, 4)  # reboot: uptime restarts
    r = s2.first_pending()
    age, exact = s2.age_ms(r, 100)
    assert not exact and age == 100 + (9000 - 5000)


def test_rejects_bad_uid():
    s, _root = fresh()
    mpytest.raises(ValueError, s.append, b"", 0, True)
    mpytest.raises(ValueError, s.append, bytes(11), 0, True)


def test_record_codec_roundtrip():
    r = T.TapRecord(0x12345678, 7, (1 << 33) + 5, bytes(range(10)), 1)
    b = T.encode_tap(r)
    assert len(b) == T.TAP_SIZE
    r2 = T.decode_tap(b)
    assert (r2.number, r2.boot, r2.uptime_ms, r2.uid, r2.flags) == (
        r.number, 7, (1 << 33) + 5, bytes(range(10)), 1)
    assert T.decode_tap(b"\xff" * 32) is None


mpytest.run(globals())
