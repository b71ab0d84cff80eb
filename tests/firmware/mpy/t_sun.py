# NTAG 424 DNA SUN on the node under real MicroPython: the published vectors (RFC 4493 CMAC,
# AN12196 session keys and SDMMAC, AN10922 diversification) shared with the gateway's tests
# (tests/vectors/ntag424_sun.json, handed in as the generated module sun_vectors), refusals,
# and reading a simulated band's NDEF file over ISO 7816-4 APDUs.
from binascii import hexlify
from binascii import unhexlify as h

import machine
import pn532
import sun
import sun_vectors

import mpytest
from fake_pn532 import FakePN532

V = sun_vectors.VECTORS
ENCRYPTED = [v for v in V["sun"] if "enc_picc_data" in v]
PLAIN = [v for v in V["sun"] if "enc_picc_data" not in v]


def kind_of(fn, *a):
    try:
        fn(*a)
    except sun.SunError as e:
        return e.kind
    raise AssertionError("no SunError")


def test_cmac_rfc4493():
    assert len(V["rfc4493_cmac"]) == 4
    for v in V["rfc4493_cmac"]:
        assert sun.cmac(h(v["key"]), h(v["message"])) == h(v["mac"]), v["name"]


def test_an12196_encrypted_with_every_intermediate():
    assert len(ENCRYPTED) == 2
    for v in ENCRYPTED:
        meta, fk = h(v["sdm_meta_read_key"]), h(v["sdm_file_read_key"])
        uid, ctr = sun.decrypt_picc(meta, v["enc_picc_data"])
        assert (uid, ctr) == (h(v["uid"]), v["read_ctr"]), v["name"]
        assert sun.sv2(uid, ctr) == h(v["sv2"])
        assert sun.session_mac_key(fk, uid, ctr) == h(v["ses_mac_key"])
        full = sun.cmac(h(v["ses_mac_key"]), h(v["mac_input"]))
        assert full == h(v["full_cmac"])
        assert sun.truncate_mac(full) == h(v["sdmmac"])
        got = sun.verify(meta, fk, v["enc_picc_data"], v["sdmmac"], h(v["mac_input"]))
        assert got == (h(v["uid"]), v["read_ctr"])
        if "enc_file_data" in v:
            assert sun.sv1(uid, ctr) == h(v["sv1"])
            assert sun.session_enc_key(fk, uid, ctr) == h(v["ses_enc_key"])
            plain = sun.decrypt_file_data(fk, uid, ctr, v["enc_file_data"])
            assert plain == h(v["file_data"])


def test_plain_mirror():
    for v in PLAIN:
        got = sun.verify_plain(h(v["sdm_file_read_key"]), v["uid"], v["read_ctr"], v["sdmmac"])
        assert got == (h(v["uid"]), v["read_ctr"])
        assert sun.sv2(h(v["uid"]), v["read_ctr"]) == h(v["sv2"])


def test_an10922_diversification():
    for v in V["an10922_aes128"]:
        k = sun.diversify(h(v["master_key"]), h(v["uid"]), h(v["aid"]),
                          h(v["system_identifier"]))
        assert k == h(v["diversified_key"]), v["name"]


def test_refusals_name_the_kind():
    v = ENCRYPTED[0]
    meta, fk = h(v["sdm_meta_read_key"]), h(v["sdm_file_read_key"])
    mac = bytearray(h(v["sdmmac"]))
    mac[3] ^= 1
    assert kind_of(sun.verify, meta, fk, v["enc_picc_data"], bytes(mac)) == "bad_mac"
    assert kind_of(sun.verify, b"\x01" * 16, fk, v["enc_picc_data"], v["sdmmac"]) \
        == "bad_picc_data"
    p = PLAIN[0]
    assert kind_of(sun.verify_plain, h(p["sdm_file_read_key"]), p["uid"], p["read_ctr"] + 1,
                   p["sdmmac"]) == "bad_mac"
    for bad in ("zz", "00" * 15, 7, None):
        assert kind_of(sun.verify, meta, fk, bad, v["sdmmac"]) == "malformed"
    assert kind_of(sun.verify, meta[:15], fk, v["enc_picc_data"], v["sdmmac"]) == "malformed"
    assert kind_of(sun.verify_plain, fk, p["uid"], 1 << 24, p["sdmmac"]) == "malformed"


class FakeNtag424:
    """A Type 4 tag answering SELECT and READ BINARY from its NDEF file."""

    def __init__(self, ndef):
        self.file = bytes(((len(ndef) >> 8) & 0xFF, len(ndef) & 0xFF)) + ndef
        self.app = self.selected = False
        self.apdus = []

    def exchange(self, apdu):
        self.apdus.append(bytes(apdu))
        if apdu == sun.select_app_apdu():
            self.app = True
            return b"\x90\x00"
        if apdu == sun.select_file_apdu() and self.app:
            self.selected = True
            return b"\x90\x00"
        if apdu[:2] == b"\x00\xb0" and self.selected:
            off = (apdu[2] << 8) | apdu[3]
            return self.file[off:off + apdu[4]] + b"\x90\x00"
        return b"\x6a\x82"


def uri_record(url):
    body = b"\x04" + url[len("https://"):].encode()  # URI prefix code 4: https://
    return bytes((0xD1, 1, len(body), 0x55)) + body


def up(hex_text):
    return hexlify(h(hex_text)).decode().upper()  # the band mirrors upper-case hex


def test_read_a_band_over_apdus_and_verify_its_sun_url():
    v = ENCRYPTED[1]
    url = "https://choose.url.com/ntag424?picc_data=%s&enc=%s&cmac=%s" % (
        up(v["enc_picc_data"]), up(v["enc_file_data"]), up(v["sdmmac"]))
    band = FakeNtag424(uri_record(url))
    got = sun.ndef_uri(sun.read_ndef(band.exchange))
    assert got == url
    assert len(band.apdus) == 3 + (len(url) - 8 + 5 + sun.READ_CHUNK - 1) // sun.READ_CHUNK
    picc, mac, mac_input = sun.sun_params(got)
    assert mac_input.decode() == v["mac_input_ascii"]
    meta, fk = h(v["sdm_meta_read_key"]), h(v["sdm_file_read_key"])
    assert sun.verify(meta, fk, picc, mac, mac_input) == (h(v["uid"]), v["read_ctr"])


def test_read_through_the_pn532_driver_and_a_simulated_chip():
    """The node's own PN532 driver carries the APDUs (InDataExchange) to an ISO-DEP band."""
    be = machine.BytesBackend()
    chip = FakePN532(be)
    nfc = pn532.PN532(machine.UART(1, 115200, backend=be))
    v = ENCRYPTED[0]
    url = "https://p.example/t?picc_data=%s&cmac=%s" % (up(v["enc_picc_data"]), up(v["sdmmac"]))
    band = FakeNtag424(uri_record(url))
    chip.uid, chip.sel_res, chip.apdu = h(v["uid"]), 0x20, band.exchange
    assert nfc.poll(0) is None
    target = nfc.poll(5)
    assert target is not None and target.iso_dep()
    clock = iter(range(10**6)).__next__
    got = sun.ndef_uri(sun.read_ndef(lambda apdu: nfc.data_exchange(target.tg, apdu, clock)))
    assert got == url
    assert band.apdus[0] == sun.select_app_apdu()
    picc, mac, mac_input = sun.sun_params(got)
    meta, fk = h(v["sdm_meta_read_key"]), h(v["sdm_file_read_key"])
    assert sun.verify(meta, fk, picc, mac, mac_input) == (h(v["uid"]), v["read_ctr"])
    chip.apdu = None  # the band left the field: the driver says so, nothing is read
    try:
        sun.read_ndef(lambda apdu: nfc.data_exchange(target.tg, apdu, clock))
        raise AssertionError("read a band that is gone")
    except OSError:
        pass


def test_patrol_url_without_file_data_macs_nothing():
    v = ENCRYPTED[0]
    url = "https://p.example/t?picc_data=%s&cmac=%s" % (v["enc_picc_data"], v["sdmmac"])
    picc, mac, mac_input = sun.sun_params(url)
    assert mac_input == b""
    meta, fk = h(v["sdm_meta_read_key"]), h(v["sdm_file_read_key"])
    assert sun.verify(meta, fk, picc, mac, mac_input)[1] == v["read_ctr"]


def test_a_band_that_is_not_a_sun_band_is_refused_cleanly():
    assert kind_of(sun.read_ndef, lambda apdu: b"\x6a\x82") == "malformed"
    assert kind_of(sun.read_ndef, lambda apdu: b"") == "malformed"
    huge = FakeNtag424(b"\x00" * 600)
    assert kind_of(sun.read_ndef, huge.exchange) == "malformed"
    for msg in (b"", b"\xd1\x01\x05\x54\x02enxx", b"\xd1\x01\x40\x55\x04ab", b"\x91\x01"):
        assert kind_of(sun.ndef_uri, msg) == "malformed"
    for url in ("https://x/no-query", "https://x/?cmac=00", "https://x/?picc_data=00"):
        assert kind_of(sun.sun_params, url) == "malformed"


mpytest.run(globals())
