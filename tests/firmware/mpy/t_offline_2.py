# Offline taps, part 2 of 3: after the reset, polling resumes; the stored taps arrive
# in order, each exactly once (a retried poll gets the identical reply, not a second
# tap), as osdp_MFGREP with tap number and age.
import struct

import osdp_pd as P
import reports

import mpytest
import nodebench


def test_1_stored_taps_delivered_in_order_once():
    b = nodebench.Bench(t0=0)
    assert b.store.pending_count() == 3 and b.store.boot >= 2
    b.run(2000, step=100)  # the node has been up 2 s when the panel comes back
    b.cp.cmd(P.CMD_ID, b"\x00")
    assert b.cp.handshake().code == P.REPLY_RMAC_I
    got = []
    retried = False
    for _ in range(12):
        raw = b.cp.encode(P.CMD_POLL)
        reply = b.cp.send_raw(raw)
        if not retried and got:
            # the panel missed this reply and asks again with the same sequence number
            again = b.cp.send_raw(raw)
            assert again == reply
            retried = True
        r = b.cp.decode(reply)
        if r.code == P.REPLY_MFGREP:
            d = r.data
            assert d[:3] == reports.vendor_bytes(b.settings.values["vendor_code"])
            typ, ver, number, age_s, flags, waiting, n = struct.unpack("<BBIIBBB", d[3:16])
            assert typ == reports.MSG_OFFLINE_TAP and ver == 1
            assert flags == reports.FLAG_AGE_LOWER_BOUND | reports.FLAG_TAPPED_OFFLINE
            got.append((number, bytes(d[16:16 + n]), waiting, age_s))
        else:
            assert r.code == P.REPLY_ACK
    assert [g[0] for g in got] == [1, 2, 3], got
    assert [g[1] for g in got] == [b"\x04\x11\x22\x33", b"\x07\x11\x22\x33\x44\x55\x66",
                                   bytes(range(10))]
    assert [g[2] for g in got] == [2, 1, 0]
    # ages are lower bounds: at least the gaps between the taps (4 s apart) + 2 s uptime
    assert got[0][3] >= got[1][3] + 4 - 1 and got[2][3] >= 2
    assert b.store.pending_count() == 0 and b.store.delivered == 3


def test_2_live_tap_goes_out_as_raw():
    b = nodebench.Bench(t0=0)
    b.cp.cmd(P.CMD_ID, b"\x00")
    b.cp.handshake()
    b.cp.cmd(P.CMD_POLL)
    b.tap(b"\xaa\xbb\xcc\xdd", hold_ms=20)
    r = b.cp.cmd(P.CMD_POLL)
    assert r.code == P.REPLY_RAW and r.data == b"\x00\x00\x20\x00\xaa\xbb\xcc\xdd"
    b.cp.cmd(P.CMD_POLL)
    assert b.store.pending_count() == 0 and b.store.delivered == 4


def test_3_unconfirmed_raw_goes_again_marked_never_as_second_raw():
    b = nodebench.Bench(t0=0)
    b.cp.cmd(P.CMD_ID, b"\x00")
    b.cp.handshake()
    b.cp.cmd(P.CMD_POLL)
    b.tap(b"\x0a\x0b\x0c\x0d", hold_ms=20)
    assert b.cp.cmd(P.CMD_POLL).code == P.REPLY_RAW
    # the panel restarts before confirming (sequence 0): the tap is still owed
    b.cp.seq = 0
    b.cp.active = False
    b.cp.cmd(P.CMD_ID, b"\x00")
    b.cp.handshake()
    r = b.cp.cmd(P.CMD_POLL)
    assert r.code == P.REPLY_MFGREP, r.code
    typ, _, number, _, flags, _, _ = struct.unpack("<BBIIBBB", r.data[3:16])
    assert typ == reports.MSG_OFFLINE_TAP
    assert number == 5 and flags == reports.FLAG_MAY_REPEAT_RAW
    assert r.data[16:] == b"\x0a\x0b\x0c\x0d"
    b.cp.cmd(P.CMD_POLL)
    assert b.store.pending_count() == 0 and b.store.delivered == 5


def test_4_numbered_mode_sends_every_tap_with_its_number():
    b = nodebench.Bench(t0=0)
    b.settings.set("numbered_taps", True)
    b.cp.cmd(P.CMD_ID, b"\x00")
    b.cp.handshake()
    b.cp.cmd(P.CMD_POLL)
    b.tap(b"\x01\x02\x03\x04\x05\x06\x07", hold_ms=20)
    r = b.cp.cmd(P.CMD_POLL)
    assert r.code == P.REPLY_MFGREP
    typ, _, number, age_s, flags, waiting, n = struct.unpack("<BBIIBBB", r.data[3:16])
    assert (typ, number, age_s, flags, waiting, n) == (1, 6, 0, 0, 0, 7)
    b.cp.cmd(P.CMD_POLL)
    assert b.store.delivered == 6


mpytest.run(globals())
