# PN532 driver against a simulated chip on a shim UART: UID sizes, no card, noise,
# chunked arrival, timeouts.
import machine
import pn532

import mpytest
from fake_pn532 import FakePN532


class Clock:
    def __init__(self):
        self.t = 0

    def __call__(self):
        self.t += 1
        return self.t


def make():
    be = machine.BytesBackend()
    fake = FakePN532(be)
    nfc = pn532.PN532(machine.UART(1, 115200, backend=be))
    return nfc, fake, be


def scan(nfc, now=0):
    assert nfc.poll(now) is None  # sends the command
    return nfc.poll(now + 5)


def test_begin_configures_chip():
    nfc, fake, _be = make()
    ver = nfc.begin(Clock())
    assert ver[0] == 0x32
    assert fake.commands == [0x02, 0x14, 0x32]


def test_uid_sizes():
    for n in (4, 7, 10):
        nfc, fake, _be = make()
        fake.uid = bytes(range(1, n + 1))
        t = scan(nfc)
        assert t is not None and t.uid == fake.uid and not t.iso_dep()


def test_no_card():
    nfc, fake, _be = make()
    assert scan(nfc) is None
    fake.uid = b"\x01\x02\x03\x04"
    assert scan(nfc, 10).uid == b"\x01\x02\x03\x04"


def test_iso_dep_target_keeps_ats():
    nfc, fake, _be = make()
    fake.uid = bytes(7)
    fake.sel_res = 0x20
    fake.ats = b"\x06\x75\x77\x81\x02\x80"
    t = scan(nfc)
    assert t.iso_dep() and t.ats == fake.ats


def test_decode_chunked_and_noise():
    body = b"\xd5\x4b\x01\x01\x00\x44\x00\x04\xde\xad\xbe\xef"
    frame = (b"\x00\x00\xff" + bytes((len(body), (-len(body)) & 0xFF)) + body
             + bytes(((-sum(body)) & 0xFF, 0)))
    stream = b"\x13\x37" + pn532.ACK + frame
    buf = bytearray()
    kinds = []
    for b in stream:
        buf.append(b)
        while True:
            kind, payload, used = pn532.decode(buf)
            buf = buf[used:]
            if kind is None:
                break
            kinds.append((kind, payload))
    assert kinds[0][0] == "ack"
    assert kinds[-1] == ("frame", body[1:])


def test_bad_checksum_counted_and_timeout_resends():
    nfc, fake, be = make()
    nfc.poll(0)
    be.rx = bytearray(b"\x00\x00\xff\x03\xfd\xd5\x4b\x00\x00\x00")  # bad DCS
    assert nfc.poll(1) is None and nfc.errors == 1
    assert nfc.poll(pn532.RESPONSE_TIMEOUT_MS + 10) is None and nfc.errors == 2
    n_before = fake.commands.count(0x4A)
    nfc.poll(pn532.RESPONSE_TIMEOUT_MS + 20)
    assert fake.commands.count(0x4A) == n_before + 1


def test_bad_uid_length_rejected():
    five = b"\x01\x01\x00\x44\x00\x05\x01\x02\x03\x04\x05"
    mpytest.raises(ValueError, pn532.parse_list_passive, five)
    assert pn532.parse_list_passive(b"\x00") is None


mpytest.run(globals())
