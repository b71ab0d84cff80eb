# Offline taps, part 1 of 3: the panel polls, goes away; three cards are tapped while
# nobody polls; the node shows "stored, not delivered"; then the interpreter ends --
# the next part starts a fresh MicroPython with only /flash kept (a reset).
import indicator
import osdp_pd as P

import mpytest
import nodebench


def test_taps_while_unpolled_are_stored():
    nodebench.provision()
    b = nodebench.Bench()
    b.cp.cmd(P.CMD_ID, b"\x00")
    assert b.cp.handshake().code == P.REPLY_RMAC_I
    assert b.cp.cmd(P.CMD_POLL).code == P.REPLY_ACK
    assert b.node.delivering(b.up.t)
    # the panel stops polling
    b.run(P.OFFLINE_AFTER_MS + 100, step=50)
    assert not b.node.delivering(b.up.t)
    for uid in (b"\x04\x11\x22\x33", b"\x07\x11\x22\x33\x44\x55\x66", bytes(range(10))):
        b.tap(uid)
        b.tap(uid, hold_ms=100)  # the same card again at once: still one tap
        b.run(4000, step=100)
    assert b.store.pending_count() == 3, b.store.pending_count()
    # the "stored, not delivered" pattern: two amber blinks per 2 s period
    seen = []
    for _ in range(40):
        b.run(50, step=50)
        seen.append(b.led())
    lit = [c for c in seen if c != indicator.BLACK]
    assert lit and all(c == indicator.AMBER for c in lit), seen
    assert b.wdt.feeds > 100


mpytest.run(globals())
