# Two nodes on one RS-485 pair: every byte reaches both; each answers only its own
# address, ignores the other's replies (and its own echo), and taps stay with the node
# that read them.
import osdp_frame
import osdp_pd as P

import mpytest
import nodebench
from minicp import MiniCP


class App:
    def __init__(self, uid):
        self.queue = [uid]
        self.delivered = []

    def on_led(self, r):
        pass

    def on_buzzer(self, *a):
        pass

    def on_keyset(self, k):
        return True

    def on_comset(self, a, b):
        return True

    def next_report(self, now):
        if self.queue:
            return P.REPLY_RAW, b"\x00\x00\x20\x00" + self.queue[0], 1
        return None

    def report_delivered(self, t):
        self.delivered.append(self.queue.pop(0))

    def on_mfg(self, v, d):
        return None


def test_two_pds_share_the_bus():
    apps = {7: App(b"\x07\x07\x07\x07"), 8: App(b"\x08\x08\x08\x08")}
    pds = {a: P.PeripheralDevice(a, apps[a], scbk=nodebench.KEY, rng=nodebench.rng)
           for a in apps}
    now = [0]

    def bus(raw):
        # the CP's frame reaches every PD; every reply goes back onto the same pair,
        # so each PD also hears the other's reply (and its own echo)
        now[0] += 10
        replies = []
        for pd in pds.values():
            replies.extend(pd.receive(raw, now[0]))
        for r in replies:
            for pd in pds.values():
                assert pd.receive(r, now[0]) == []
        assert len(replies) <= 1, replies
        return replies[0] if replies else None

    cps = {a: MiniCP(pds[a], a, nodebench.KEY, transport=bus) for a in pds}
    for cp in cps.values():
        assert cp.cmd(P.CMD_ID, b"\x00").code == P.REPLY_PDID
        assert cp.handshake().code == P.REPLY_RMAC_I
    got = {}
    for _ in range(3):
        for a, cp in cps.items():
            r = cp.cmd(P.CMD_POLL)
            if r.code == P.REPLY_RAW:
                got[a] = r.data[4:]
    assert got == {7: b"\x07\x07\x07\x07", 8: b"\x08\x08\x08\x08"}
    assert apps[7].delivered == [b"\x07\x07\x07\x07"] and apps[8].delivered == [b"\x08" * 4]
    assert all(pd.sc.active for pd in pds.values())
    # a frame for a third address: nobody answers
    assert bus(osdp_frame.build(9, 0, P.CMD_POLL)) is None


mpytest.run(globals())
