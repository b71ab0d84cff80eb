# Link layer: frames fed whole, byte by byte and in odd chunks; noise, mark byte,
# damaged frames, gaps.
import osdp_frame as F

import mpytest

POLL = F.build(0x05, 1, 0x60)
LED = F.build(0x05, 2, 0x69, bytes(14))


def frames(reader):
    out = []
    while True:
        f = reader.next_frame()
        if f is None:
            return out
        out.append(f)


def test_build_layout():
    assert POLL[0] == 0x53 and POLL[1] == 0x05
    assert POLL[2] | (POLL[3] << 8) == len(POLL) == 8
    assert POLL[4] == 0x05  # seq 1 | CRC flag
    assert F.crc16(POLL[:-2]) == POLL[-2] | (POLL[-1] << 8)
    ck = F.build(0x05, 1, 0x60, use_crc=False)
    assert len(ck) == 7 and F.checksum(ck[:-1]) == ck[-1]


def test_every_chunking():
    stream = b"\x00\x12" + POLL + b"\xff" + LED + POLL
    for size in (1, 2, 3, 5, 7, 11, len(stream)):
        r = F.FrameReader()
        got = []
        for i in range(0, len(stream), size):
            r.feed(stream[i:i + size], 0)
            got.extend(frames(r))
        assert [f.code for f in got] == [0x60, 0x69, 0x60], (size, got)
        assert [f.mark for f in got] == [False, True, False]
        assert got[1].data == bytes(14) and got[1].seq == 2


def test_damaged_frame_reports_and_resyncs():
    bad = bytearray(LED)
    bad[8] ^= 0x01
    r = F.FrameReader()
    r.feed(bytes(bad) + POLL, 0)
    got = frames(r)
    assert isinstance(got[0], F.BadFrame) and got[0].reason == "check"
    assert got[0].addr == 0x05 and got[0].seq == 2
    assert isinstance(got[-1], F.Frame) and got[-1].code == 0x60


def test_absurd_length_is_noise():
    r = F.FrameReader()
    r.feed(b"\x53\x05\xff\x7f\x04" + POLL, 0)
    got = frames(r)
    assert len(got) == 1 and got[0].code == 0x60


def test_gap_abandons_partial_frame():
    r = F.FrameReader()
    r.feed(LED[:6], 0)
    assert r.next_frame() is None
    r.feed(POLL, 1000)  # the rest of LED never came; a new frame starts after a pause
    got = frames(r)
    assert len(got) == 1 and got[0].code == 0x60
    assert r.dropped >= 6


def test_security_block_and_mac_fields():
    raw = F.build(0x05, 1, 0x60, scb=b"\x02\x15", mac_fn=lambda m: b"\xaa\xbb\xcc\xdd")
    r = F.FrameReader()
    r.feed(raw, 0)
    f = r.next_frame()
    assert f.scb == b"\x02\x15" and f.mac == b"\xaa\xbb\xcc\xdd" and f.code == 0x60
    assert f.data == b"" and f.mac_input() == raw[:-6]


mpytest.run(globals())
