# PD engine against a minimal CP: every command, NAK reason, retries, Secure Channel.
import osdp_frame
import osdp_pd as P
import osdp_sc

import mpytest
from minicp import MiniCP

KEY = bytes(range(0x40, 0x50))


class App:
    def __init__(self):
        self.leds = []
        self.buz = []
        self.keys = []
        self.comset = []
        self.reports = []
        self.delivered = []

    def on_led(self, recs):
        self.leds.extend(recs)

    def on_buzzer(self, *a):
        self.buz.append(a)

    def on_keyset(self, k):
        self.keys.append(k)
        return True

    def on_comset(self, a, b):
        self.comset.append((a, b))
        return True

    def next_report(self, now):
        if self.reports:
            return self.reports[0]
        return None

    def report_delivered(self, token):
        self.delivered.append(token)
        self.reports.pop(0)

    def on_mfg(self, v, d):
        return None


def rng(n):
    return bytes(range(0xA0, 0xA0 + n))


def setup(scbk=KEY, install=False, require_sc=None):
    app = App()
    pd = P.PeripheralDevice(5, app, scbk=scbk, install_mode=install, require_sc=require_sc,
                            identity=P.PDIdentity(vendor=0x0BC0DE, serial=0x01020304), rng=rng)
    return app, pd, MiniCP(pd, 5, scbk)


def test_id_cap_in_clear():
    _app, _pd, cp = setup()
    r = cp.cmd(P.CMD_ID, b"\x00")
    assert r.code == P.REPLY_PDID and r.data[:3] == b"\xde\xc0\x0b"
    assert r.data[5:9] == b"\x04\x03\x02\x01"
    r = cp.cmd(P.CMD_CAP, b"\x00")
    caps = [tuple(r.data[i:i + 3]) for i in range(0, len(r.data), 3)]
    assert (9, 1, 0) in caps and (8, 1, 0) in caps and (4, 2, 1) in caps


def test_mark_byte_echoed():
    _app, _pd, cp = setup()
    raw = cp.encode(P.CMD_ID, b"\x00")
    assert raw[0] == 0xFF
    assert cp.send_raw(raw)[0] == 0xFF
    cp.mark = False
    assert cp.send_raw(cp.encode(P.CMD_ID, b"\x00"))[0] == 0x53


def test_sc_required_before_handshake():
    app, _pd, cp = setup()
    cp.cmd(P.CMD_ID, b"\x00")
    r = cp.cmd(P.CMD_LED, bytes(14))
    assert r.code == P.REPLY_NAK and r.data == b"\x06"
    r = cp.cmd(P.CMD_POLL)  # plaintext poll: ACK, but never a card read
    app.reports.append((P.REPLY_RAW, b"\x00\x00\x20\x00\x01\x02\x03\x04", 1))
    r = cp.cmd(P.CMD_POLL)
    assert r.code == P.REPLY_ACK and not app.delivered


def test_secure_session_poll_led_buz():
    app, pd, cp = setup()
    cp.cmd(P.CMD_ID, b"\x00")
    r = cp.handshake()
    assert r.code == P.REPLY_RMAC_I and r.frame.scb == b"\x03\x14\x01", r.frame.scb
    assert pd.sc.active
    r = cp.cmd(P.CMD_POLL)
    assert r.code == P.REPLY_ACK and r.frame.scb[1] == osdp_sc.SCS_16
    led = bytes((0, 0, 2, 3, 3, 1, 0, 20, 0, 1, 5, 0, 2, 0))
    r = cp.cmd(P.CMD_LED, led)
    assert r.code == P.REPLY_ACK and app.leds == [tuple(led)]
    r = cp.cmd(P.CMD_BUZ, bytes((0, 2, 1, 1, 3)))
    assert r.code == P.REPLY_ACK and app.buz == [(0, 2, 1, 1, 3)]
    # encrypted reply data (SCS_18)
    app.reports.append((P.REPLY_RAW, b"\x00\x00\x20\x00\xde\xad\xbe\xef", 7))
    r = cp.cmd(P.CMD_POLL)
    assert r.code == P.REPLY_RAW and r.frame.scb[1] == osdp_sc.SCS_18
    assert r.data == b"\x00\x00\x20\x00\xde\xad\xbe\xef"
    assert bytes(r.frame.data) != r.data  # on the wire it is ciphertext
    assert app.delivered == []  # not yet: the CP has not moved on
    r = cp.cmd(P.CMD_POLL)
    assert app.delivered == [7] and r.code == P.REPLY_ACK


def test_retry_gets_identical_reply_and_no_double_delivery():
    app, pd, cp = setup()
    cp.handshake()
    app.reports.append((P.REPLY_RAW, b"\x00\x00\x20\x00\x01\x02\x03\x04", 9))
    raw = cp.encode(P.CMD_POLL)
    first = cp.send_raw(raw)
    again = cp.send_raw(raw)  # CP lost our reply and repeats the same sequence number
    assert first == again and pd.stats["retry"] == 1
    cp.decode(first)
    cp.cmd(P.CMD_POLL)
    assert app.delivered == [9]


def test_sequence_zero_resets_and_in_flight_is_offered_again():
    app, _pd, cp = setup(scbk=None)
    app.reports.append((P.REPLY_RAW, b"\x00\x00\x20\x00\x01\x02\x03\x04", 3))
    assert cp.cmd(P.CMD_POLL).code == P.REPLY_RAW
    cp.seq = 0  # CP restarted before it could confirm
    r = cp.cmd(P.CMD_POLL)
    assert r.code == P.REPLY_RAW and app.delivered == []
    cp.cmd(P.CMD_POLL)
    assert app.delivered == [3]


def test_unexpected_sequence_nak():
    _app, _pd, cp = setup(scbk=None)
    cp.cmd(P.CMD_POLL)  # seq 0
    cp.cmd(P.CMD_POLL)  # seq 1
    r = cp.cmd(P.CMD_POLL, seq=3)
    assert r.code == P.REPLY_NAK and r.data == b"\x04"


def test_nak_reasons():
    _app, _pd, cp = setup(scbk=None)
    assert cp.cmd(0x5F).data == b"\x03"  # unknown command
    assert cp.cmd(P.CMD_LED, bytes(13)).data == b"\x02"  # length
    assert cp.cmd(P.CMD_POLL, b"\x00").data == b"\x02"
    r = cp.cmd(P.CMD_CHLNG, bytes(8), scb=b"\x03\x11\x01", secure=False)
    assert r.code == P.REPLY_NAK and r.data == b"\x05"  # no key: SC not supported
    seq = cp.seq
    bad = bytearray(cp.encode(P.CMD_POLL))
    bad[-1] ^= 0xFF
    r = cp.decode(cp.send_raw(bytes(bad)))
    assert r.code == P.REPLY_NAK and r.data == b"\x01"  # CRC
    cp.seq = seq  # a CP repeats the damaged command with the same sequence number
    assert cp.cmd(P.CMD_LED, bytes((0, 3)) + bytes(12)).data == b"\x09"  # LED 3: no such


def test_other_addresses_ignored():
    _app, _pd, cp = setup(scbk=None)
    assert cp.send_raw(osdp_frame.build(6, 0, P.CMD_POLL)) is None
    assert cp.send_raw(osdp_frame.build(0x85, 0, P.REPLY_ACK)) is None  # our own echo
    r = cp.decode(cp.send_raw(osdp_frame.build(0x7F, 0, P.CMD_ID, b"\x00")))
    assert r.code == P.REPLY_PDID


def test_bad_mac_drops_session():
    _app, pd, cp = setup()
    cp.handshake()
    raw = bytearray(cp.encode(P.CMD_POLL))
    raw[-3] ^= 0x01  # inside the MAC
    c = osdp_frame.crc16(raw[1:-2])
    raw[-2] = c & 0xFF
    raw[-1] = c >> 8
    r = cp.send_raw(bytes(raw))
    assert not pd.sc.active and pd.stats["mac_fail"] == 1
    cp.active = False
    r = cp.decode(r)
    assert r.code == P.REPLY_NAK and r.data == b"\x06"


def test_wrong_key_handshake_fails():
    _app, pd, cp = setup()
    cp.scbk = bytes(16)
    r = cp.handshake()
    assert r.code == P.REPLY_NAK and not pd.sc.active


def test_default_key_only_in_install_mode():
    _app, _pd, cp = setup(scbk=None)
    assert cp.handshake(key_type=0).code == P.REPLY_NAK
    _app, _pd, cp = setup(scbk=None, install=True)
    assert cp.handshake(key_type=0).code == P.REPLY_RMAC_I


def test_keyset_then_new_key():
    app, pd, cp = setup(scbk=None, install=True)
    assert cp.cmd(P.CMD_KEYSET, bytes((1, 16)) + KEY, secure=False).data == b"\x06"
    cp.handshake(key_type=0)
    r = cp.cmd(P.CMD_KEYSET, bytes((1, 16)) + KEY)
    assert r.code == P.REPLY_ACK and app.keys == [KEY] and pd.scbk == KEY
    cp.scbk = KEY
    cp.active = False
    assert cp.handshake().code == P.REPLY_RMAC_I


def test_comset():
    _app, pd, cp = setup()
    cp.handshake()
    r = cp.cmd(P.CMD_COMSET, bytes((9, 0x00, 0x96, 0, 0)))
    assert r.code == P.REPLY_COM and r.data == bytes((9, 0x00, 0x96, 0, 0))
    assert pd.pending_comset == (9, 38400)
    assert cp.cmd(P.CMD_COMSET, bytes((9, 1, 2, 3, 4))).data == b"\x09"


def test_session_expires_when_unpolled():
    _app, pd, cp = setup()
    cp.handshake()
    assert pd.is_online(cp.now)
    pd.tick(cp.now + P.OFFLINE_AFTER_MS + 1)
    assert not pd.sc.active and not pd.is_online(cp.now + P.OFFLINE_AFTER_MS + 1)


def test_checksum_mode_reply():
    _app, _pd, cp = setup(scbk=None)
    raw = osdp_frame.build(5, 0, P.CMD_ID, b"\x00", use_crc=False)
    out = cp.send_raw(raw)
    assert out[4] & 0x04 == 0 and osdp_frame.checksum(out[:-1]) == out[-1]


mpytest.run(globals())
