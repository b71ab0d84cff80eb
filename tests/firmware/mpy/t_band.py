# A checkpoint node reading NTAG 424 DNA bands at a tap, under real MicroPython: the node's
# PN532 driver carries ISO 7816-4 APDUs (InDataExchange) to a simulated band behind a
# simulated PN532 on the shim UART; the band's SUN message goes out as the card data of
# the osdp_RAW card read.  Reads come from tests/firmware/test_mpy_band.py (generated
# module band_reads: URLs made by hil_tests/sims/ntag424.py, the keys to check them);
# each delivered card read is printed as "CARD <name> <hex>" for the gateway's parser.
from binascii import hexlify
from binascii import unhexlify as h

import band_reads as R
import osdp_pd as P
import sun
import sunread

import mpytest
import nodebench
from fake_ntag424 import SELECT_APP, SELECT_NDEF, FakeNtag424, uri_record

_bench = []


def bench():
    if not _bench:
        nodebench.provision()
        b = nodebench.Bench(t0=0)
        b.cp.cmd(P.CMD_ID, b"\x00")
        assert b.cp.handshake().code == P.REPLY_RMAC_I
        assert b.cp.cmd(P.CMD_POLL).code == P.REPLY_ACK
        _bench.append(b)
    return _bench[0]


def idle(b, ms):
    """The panel keeps polling while time passes (the next tap is not a repeat)."""
    end = b.up.t + ms
    while b.up.t < end:
        b.up.t += 100
        r = b.cp.cmd(P.CMD_POLL)
        assert r.code == P.REPLY_ACK, r.code


def tap(b, uid, band=None, hold_ms=300):
    card = b.card
    card.uid, card.sel_res = uid, (0x20 if band is not None else 0x00)
    card.apdu = band.exchange if band is not None else None
    b.run(hold_ms)
    card.uid = card.apdu = None
    b.run(50)


def card_read(b, name):
    """The next poll's card read (osdp_RAW): its data, printed for the CPython side."""
    r = b.cp.cmd(P.CMD_POLL)
    assert r.code == P.REPLY_RAW, r.code
    reader, fmt, bits = r.data[0], r.data[1], r.data[2] | (r.data[3] << 8)
    data = r.data[4:]
    assert (reader, fmt, bits) == (0, 0, len(data) * 8)
    print("CARD", name, hexlify(data).decode())
    assert b.cp.cmd(P.CMD_POLL).code == P.REPLY_ACK  # confirms it
    return data


def test_1_band_taps_go_out_as_their_sun_messages():
    b = bench()
    uid = h(R.UID)
    for i, url in enumerate(R.URLS):
        band = FakeNtag424(uri_record(url))
        tap(b, uid, band)
        # one read per tap, however long the band is held: each read raises its counter
        assert band.reads() == 1, band.apdus
        assert band.apdus[:3] == [SELECT_APP, SELECT_NDEF, b"\x00\xb0\x00\x00\x02"]
        data = card_read(b, "enc%d" % i)
        assert data == url[url.find("?") + 1:].encode() and len(data) == 64
        # the node's own SUN code agrees the message is genuine (AN12196 SDMMAC)
        picc, mac, mac_input = sun.sun_params("?" + data.decode())
        got = sun.verify(h(R.META_KEY), h(R.FILE_KEY), picc, mac, mac_input)
        assert got == (uid, i + 1), got
        assert b.store.pending_count() == 0
        idle(b, 3500)
    assert not b.node._sun  # nothing kept once delivered


def test_2_plain_mirror_keeps_only_the_sun_part():
    b = bench()
    tap(b, h(R.PLAIN_UID), FakeNtag424(uri_record(R.PLAIN_URL)))
    data = card_read(b, "plain")
    assert data.startswith(b"uid=") and data.endswith(b"&cmac=" + R.PLAIN_MAC.encode())
    assert b"site=" not in data and b"v=2" not in data
    idle(b, 3500)


def test_3_cards_without_a_sun_message_keep_the_uid():
    b = bench()
    tap(b, b"\x04\x11\x22\x33")  # a MIFARE Classic style card: not ISO-DEP, no APDU
    assert card_read(b, "uid4") == b"\x04\x11\x22\x33"
    idle(b, 3500)
    no_app = FakeNtag424(b"", has_app=False)  # ISO-DEP, no NDEF application (6A82)
    tap(b, b"\x08\x99\x88\x77", no_app)
    assert no_app.apdus == [SELECT_APP]
    assert card_read(b, "no_ndef") == b"\x08\x99\x88\x77"
    idle(b, 3500)
    text = FakeNtag424(uri_record("https://band.example/t?id=7"))  # a URL, no SUN
    tap(b, h(R.PLAIN_UID), text)
    assert card_read(b, "no_sun") == h(R.PLAIN_UID)
    idle(b, 3500)
    long_sun = FakeNtag424(uri_record(R.LONG_URL))  # more than one card read carries
    tap(b, h(R.UID), long_sun)
    assert long_sun.reads() == 1
    assert card_read(b, "too_long") == h(R.UID)
    idle(b, 3500)


def test_4_a_band_that_stops_answering_is_read_again_then_sent_as_uid():
    b = bench()
    n0 = b.store.next_number
    # ISO-DEP in the anticollision answer, but no answer to APDUs (PN532 status 01)
    b.card.uid, b.card.sel_res, b.card.apdu = h(R.UID), 0x20, None
    b.node.step()
    b.node.step()  # first failure: no tap, the next scan tries again
    assert b.store.next_number == n0 and b.node._band_failures == 1
    b.node.step()
    b.node.step()  # second failure: the tap goes out as the card's UID
    assert b.store.next_number == n0 + 1
    b.card.uid = None
    assert card_read(b, "gone") == h(R.UID)


def test_5_card_data_from_urls():
    f = sunread.card_data
    assert f("https://x/t?picc_data=AA&cmac=BB") == b"picc_data=AA&cmac=BB"
    assert f("https://x/t?a=1&PICC_DATA=AA&x=2&CMAC=BB&z=3") == b"PICC_DATA=AA&x=2&CMAC=BB"
    assert f("https://x/t?picc_data=AA&enc=0102&cmac=BB") == b"picc_data=AA&enc=0102&cmac=BB"
    for url in ("https://x/t", "https://x/t?id=1", "https://x/t?note=cmac=1&uid=04",
                "https://x/cmac=1"):
        assert f(url) is None, url
    for url in ("https://x/t?cmac=" + "A" * 60, "https://x/t?uid=\u00e9&cmac=BB",
                "https://x/t?uid= 1&cmac=BB"):
        mpytest.raises(sun.SunError, f, url)


mpytest.run(globals())
