# Offline taps, part 3 of 3: another reset -- nothing is delivered twice.
import osdp_pd as P

import mpytest
import nodebench


def test_nothing_redelivered_after_second_reset():
    b = nodebench.Bench()
    assert b.store.pending_count() == 0 and b.store.delivered == 4
    b.cp.cmd(P.CMD_ID, b"\x00")
    b.cp.handshake()
    for _ in range(5):
        assert b.cp.cmd(P.CMD_POLL).code == P.REPLY_ACK
    assert b.store.append(b"\x01\x02\x03\x04", 0, True) == 5  # numbering continues


mpytest.run(globals())
