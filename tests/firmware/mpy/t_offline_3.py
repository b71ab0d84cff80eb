# Offline taps, part 3 of 3: another reset -- nothing is delivered twice.
import struct

import osdp_pd as P
import reports

import mpytest
import nodebench


def test_nothing_redelivered_after_second_reset():
    b = nodebench.Bench()
    assert b.store.pending_count() == 0 and b.store.delivered == 6
    b.cp.cmd(P.CMD_ID, b"\x00")
    b.cp.handshake()
    for _ in range(5):
        assert b.cp.cmd(P.CMD_POLL).code == P.REPLY_ACK
    assert b.store.append(b"\x01\x02\x03\x04", 0, True) == 7  # numbering continues
    # the status report answers an osdp_MFG query with our vendor code
    vendor = b.settings.values["vendor_code"]
    r = b.cp.cmd(P.CMD_MFG, reports.vendor_bytes(vendor) + b"\x01")
    assert r.code == P.REPLY_MFGREP and r.data[:3] == reports.vendor_bytes(vendor)
    typ, ver, waiting, through, nxt, boot, soft, writes = struct.unpack("<BBHIIHBI", r.data[3:])
    assert (typ, ver, waiting, through, nxt) == (2, 1, 1, 6, 8)
    assert boot == b.store.boot and soft == 1 and writes == b.store.writes
    assert b.cp.cmd(P.CMD_MFG, b"\x01\x02\x03\x01").data == b"\x09"  # not our vendor


mpytest.run(globals())
