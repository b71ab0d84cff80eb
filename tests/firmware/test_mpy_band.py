"""A checkpoint node reading NTAG 424 DNA bands (firmware_mpy/sunread.py), under real
MicroPython (WebAssembly port): the APDU exchange goes through the node's PN532 driver to a
simulated PN532 and band (tests/firmware/mpy/t_band.py); the card data the node sends in
its osdp_RAW card read is then handed to the gateway's own verifier
(gateway/credentials/bands.py), which must accept every band read as genuine and in counter
order, and see the cards without a SUN message as the UID reads they were before."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.credentials.bands import BandVerifier
from hil_tests.sims.ntag424 import SimBand
from tests.firmware._mpy import FIRMWARE, HOST_SHIM, MPY_TESTS, run_mpy

MASTER = bytes.fromhex("5f1e2d3c4b5a69788796a5b4c3d2e1f0")
UID = bytes.fromhex("04de5f1eacc040")
PLAIN_UID = bytes.fromhex("04a1b2c3d4e5f6")


def _reads(tmp_path: Path) -> None:
    band = SimBand(MASTER, UID)
    plain = SimBand(MASTER, PLAIN_UID, plain=True)
    urls = [band.read(full_url=True).decode() for _ in range(3)]
    plain_query = plain.read().decode()
    enc = urls[0].split("picc_data=")[1][:32]
    values = {
        "UID": UID.hex(),
        "PLAIN_UID": PLAIN_UID.hex(),
        "META_KEY": band.meta_key.hex(),
        "FILE_KEY": band.file_key.hex(),
        "URLS": urls,
        # extra parameters around the SUN part, which the node leaves out
        "PLAIN_URL": f"https://band.example/t?site=north&{plain_query}&v=2",
        "PLAIN_MAC": plain_query.rsplit("cmac=", 1)[1],
        # encrypted file data too: 97 bytes, more than one OSDP card read carries
        "LONG_URL": f"https://band.example/t?picc_data={enc}&enc={'AB' * 16}&cmac={'CD' * 8}",
    }
    (tmp_path / "band_reads.py").write_text(
        "".join(f"{k} = {v!r}\n" for k, v in values.items()), "utf-8")


def test_node_sends_sun_messages_the_gateway_verifies(tmp_path: Path) -> None:
    _reads(tmp_path)
    proc = run_mpy(MPY_TESTS / "t_band.py", libs=[FIRMWARE, HOST_SHIM, MPY_TESTS, tmp_path])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    summary = re.search(r"SUMMARY (\d+) passed (\d+) failed", proc.stdout)
    assert summary and (int(summary.group(1)), int(summary.group(2))) == (5, 0), out
    cards = {m[0]: bytes.fromhex(m[1]) for m in re.findall(r"^CARD (\S+) ([0-9a-f]*)$",
                                                              proc.stdout, re.M)}
    assert list(cards) == ["enc0", "enc1", "enc2", "plain", "uid4", "no_ndef", "no_sun",
                           "too_long", "gone"], out

    gateway = BandVerifier(MASTER, require_verified=True)
    for i in range(3):
        check = gateway.check(cards[f"enc{i}"])
        assert (check.sun, check.verified, check.uid, check.counter, check.refusal) == (
            True, True, UID.hex(), i + 1, None), check
    check = gateway.check(cards["plain"])
    assert (check.verified, check.uid, check.counter) == (True, PLAIN_UID.hex(), 1), check
    # a replay of the first read is refused: the node sent the band's message verbatim
    assert gateway.check(cards["enc0"]).refusal == "replay"
    # cards without a SUN message: the UID read as before (refused here, as UID-only)
    for name, uid in (("uid4", "04112233"), ("no_ndef", "08998877"),
                      ("no_sun", PLAIN_UID.hex()), ("too_long", UID.hex()),
                      ("gone", UID.hex())):
        check = gateway.check(cards[name])
        assert (check.sun, check.uid, check.refusal) == (False, uid, "unverified_band"), name
