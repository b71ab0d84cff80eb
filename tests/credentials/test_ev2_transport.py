"""Provisioning at the level of the chip's APDUs: ``Ev2Transport`` (gateway/checkpoints/ev2link.py)
driving the APDU-level simulated NTAG 424 DNA (hil_tests/sims/ntag424.py ``ApduChip``, its own
EV2 code), which is itself held to the AN12196 worked examples; then the band taps through
the gateway's verifier. Hostile replies raise only the transport's error types."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.checkpoints import ev2
from gateway.checkpoints.bandwriter import (
    BandCheckFailed,
    BandLocked,
    BandWriteError,
    BandWriter,
    app_master_key,
    ndef_layout,
    ndef_url,
    open_transport,
)
from gateway.checkpoints.ev2 import ChipStatusError, Ev2Auth, Ev2Error, SecureMessagingError
from gateway.checkpoints.ev2link import Ev2Transport, LinkError
from gateway.credentials.bands import BandVerifier, band_file_read_key, meta_read_key
from hil_tests.sims.ntag424 import FACTORY_KEY, ApduChip, SimApduReader

H = bytes.fromhex
MASTER = H("00112233445566778899aabbccddeeff")
UID = H("04de5f1eacc040")


def feed(*chunks: bytes) -> Callable[[int], bytes]:
    queue = list(chunks)

    def take(n: int) -> bytes:
        out = queue.pop(0)
        assert len(out) == n
        return out

    return take


# ---- the simulated chip is genuine: AN12196 as the chip's side of the exchange -----------


def test_the_apdu_chip_answers_the_an12196_examples() -> None:
    # AN12196 §6.6 (AuthenticateEV2First, key 0), §5.4 (WriteData, Full) and §6.9
    # (ChangeFileSettings with SDM, CmdCtr 1): the chip's RndB and TI are the note's, the
    # APDUs are the note's, and the chip's replies must be byte for byte the note's.
    chip = ApduChip(UID, random=feed(H("B9E2FC789B64BF237CCCAA20EC7E6E48"), H("9D00C4DF")))
    chip.files[2].comm, chip.files[2].write = 3, 0  # the note's file 02: Full mode, key 0
    ex = chip.exchange
    assert ex(ev2.iso_select_aid()) == H("9000")
    assert ex(H("9071000002000000")) == H("A04C124213C186F22399D33AC2A3021591AF")
    reply = ex(H("90AF00002035C3E05A752E0144BAC0DE51C1F22C56B34408A23D8AEA266CAB947EA8E0118D00"))
    assert reply == H("3FA64DB5446D1F34CD6EA311167F5E4985B89690C04A05F17FA7AB2F081206639100")
    write = H(
        "908D00009F02000000800000421C73A27D827658AF481FDFF20A5025B559D0E3"
        "AA21E58D347F343CFFC768BFE596C706BC00F2176781D4B0242642A0FF5A42C4"
        "61AAF894D9A1284B8C76BCFA658ACD40555D362E08DB15CF421B51283F9064BC"
        "BE20E96CAE545B407C9D651A3315B27373772E5DA2367D2064AE054AF996C6F1"
        "F669170FA88CE8C4E3A4A7BBBEF0FD971FF532C3A802AF745660F2B4D1D9A849"
        "9661EBF300"
    )
    assert ex(write) == H("FC222E5F7A5424529100")
    assert chip.ndef[:8] == H("0051D1014D550463")
    cfs = H("905F0000190261B6D97903566E84C3AE5274467E89EAD799B7C1A0EF7A0400")
    assert ex(cfs) == H("57BFF87B1241E93D9100")
    assert chip.files[2].sdm == {
        "meta_key": 2, "file_key": 1, "picc_offset": 0x20, "mac_input_offset": 0x43,
        "mac_offset": 0x43,
    }  # fmt: skip
    # The same ChangeFileSettings again: CmdCtr has moved on, so its MAC is wrong now.
    assert ex(cfs) == H("911E") and chip.session is None


def test_the_apdu_chip_checks_change_key_like_an12196() -> None:
    # AN12196 §6.16 ChangeKey, case 1 (key 2, CmdCtr 2) and case 2 (key 0, CmdCtr 3): a
    # session with key 0 is opened, then the note's TI, session keys and CmdCtr are put in
    # place, and the chip must accept the note's APDUs and answer with the note's reply.
    chip = ApduChip(UID)
    chip.exchange(ev2.iso_select_aid())
    rnd_b = H("B9E2FC789B64BF237CCCAA20EC7E6E48")
    chip.random = feed(rnd_b, H("7614281A"))
    auth = Ev2Auth(0, bytes(16))
    auth.finish(chip.exchange(auth.second(chip.exchange(auth.first()))))
    s = chip.session
    assert s is not None
    s.enc, s.mac, s.ctr = (
        H("4CF3CB41A22583A61E89B158D252FC53"),
        H("5529860B2FC5FB6154B7F28361D30BF9"),
        2,
    )
    case1 = H(
        "90C4000029022CF362B7BF4311FF3BE1DAA295E8C68DE09050560D19B9E16C2393AE9CD1FAC75D0CE20BCD1D06E600"
    )
    assert chip.exchange(case1) == H("203BB55D1089D5879100")
    assert chip.keys[2] == H("F3847D627727ED3BC9C4CC050489B966") and chip.key_versions[2] == 1
    case2 = H(
        "90C400002900C0EB4DEEFEDDF0B513A03A95A75491818580503190D4D05053FF75668A01D6FDA6610234BDED643200"
    )
    assert chip.exchange(case2) == H("9100") and chip.session is None
    assert chip.keys[0] == H("5004BF991F408672B1EF00F08F9E8647")


def test_the_apdu_chip_refuses_with_status_words() -> None:
    chip = ApduChip(UID)
    ex = chip.exchange
    assert ex(H("9071000002000000")) == H("919D")  # nothing selected: PICC level
    assert ex(H("00A4040C07D276000085010200")) == H("6A82")
    assert ex(ev2.iso_select_aid()) == H("9000")
    assert ex(H("9071000002050000")) == H("9140")  # no key 5
    assert ex(H("90C4000000")) == H("91AE")  # ChangeKey without authentication
    assert ex(H("90EE000000")) == H("911C")
    assert ex(H("9071000003000000")) == H("917E")
    auth = Ev2Auth(0, os.urandom(16))  # not the chip's key
    assert ex(auth.second(ex(auth.first()))) == H("91AE")
    assert ex(ev2.iso_read_binary(0, 16)) == H("6A82")  # no file selected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=60), max_size=6), st.booleans())
def test_the_apdu_chip_answers_any_apdu_with_a_status_word(apdus: list[bytes], auth: bool) -> None:
    chip = ApduChip(UID)
    chip.exchange(ev2.iso_select_aid())
    if auth:
        a = Ev2Auth(0, bytes(16))
        a.finish(chip.exchange(a.second(chip.exchange(a.first()))))
    for apdu in apdus:
        reply = chip.exchange(apdu)
        assert len(reply) >= 2 and reply[-2] in (0x90, 0x91, 0x67, 0x69, 0x6A, 0x6B, 0x6D, 0x6E)


# ---- provisioning through Ev2Transport -------------------------------------------------


def test_a_blank_apdu_band_is_provisioned_and_then_verifies() -> None:
    chip = ApduChip(UID)
    transport = Ev2Transport(SimApduReader(chip))
    result = BandWriter(MASTER).provision(transport)
    assert (result.uid_hex, result.verified, result.counter, result.reprovisioned) == (
        UID.hex(), True, 1, False,
    )  # fmt: skip
    assert transport.log == [
        "select", "auth 0", "write_ndef", "change_file_settings", "change_key 2",
        "change_key 1", "change_key 0", "read_ndef",
    ]  # fmt: skip
    assert chip.keys[:3] == [
        app_master_key(MASTER, UID), meta_read_key(MASTER), band_file_read_key(MASTER, UID),
    ]  # fmt: skip
    assert chip.keys[3:] == [FACTORY_KEY, FACTORY_KEY] and chip.key_versions == [1, 1, 1, 0, 0]
    layout = ndef_layout("https://band.example/t")
    assert chip.ndef[: len(layout.data)] == layout.data  # the template; SUN mirrored at reads
    f = chip.files[2]
    assert (f.comm, f.rw, f.change, f.read, f.write) == (0, 0, 0, 0xE, 0)
    # Every native command after authentication went out MAC'd or encrypted as required.
    native = [a for a in chip.apdus if a[0] == 0x90]
    assert [a[1] for a in native] == [0x71, 0xAF, 0x8D, 0x5F, 0xC4, 0xC4, 0xC4]
    assert all(layout.data[10:40] not in a for a in native if a[1] == 0x5F)
    # The band taps like any provisioned band: verified, counter rising, replay refused.
    bands = BandVerifier(MASTER)
    reads = [ndef_url(transport.read_ndef()) for _ in range(3)]
    assert [(c.verified, c.counter) for c in map(bands.check, reads)] == [
        (True, 2), (True, 3), (True, 4),
    ]  # fmt: skip
    assert bands.check(reads[1]).refusal == "replay"
    # Its write access is key 0 now: an unauthenticated writer is refused by the chip.
    with pytest.raises(ChipStatusError) as err:
        transport.write_ndef(0, b"\x00\x00")
    assert err.value.status == "AUTHENTICATION_ERROR"


def test_provisioning_again_and_a_foreign_band() -> None:
    chip = ApduChip(UID)
    reader = SimApduReader(chip)
    t = Ev2Transport(reader)
    BandWriter(MASTER).provision(t)
    reader.present(chip)
    again = BandWriter(MASTER).provision(t)
    assert again.reprovisioned and again.verified and again.counter == 1
    reader.present(chip)
    keys = list(chip.keys)
    with pytest.raises(BandLocked) as err:
        BandWriter(os.urandom(16)).provision(t)
    assert err.value.fields["uid"] == UID.hex() and chip.keys == keys
    assert "AUTHENTICATION_ERROR" in err.value.fields["detail"]


def test_reader_failures_are_typed() -> None:
    with pytest.raises(BandWriteError) as err:
        BandWriter(MASTER).provision(Ev2Transport(SimApduReader()), timeout_s=0.1)
    assert err.value.fields["step"] == "select"
    assert isinstance(err.value.__cause__, LinkError)

    class PulledAway(Ev2Transport):
        def change_key(self, key_no: int, new_key: bytes, version: int, old_key: bytes) -> None:
            chip.removed = True
            super().change_key(key_no, new_key, version, old_key)

    chip = ApduChip(UID)
    with pytest.raises(BandWriteError) as err:
        BandWriter(MASTER).provision(PulledAway(SimApduReader(chip)))
    assert err.value.fields == {"step": "change_key 2", "uid": UID.hex()}
    assert isinstance(err.value.__cause__, LinkError)

    class WrongMirror(Ev2Transport):
        def change_file_settings(self, file_no: int, sdm: dict[str, int]) -> None:  # type: ignore[override]
            super().change_file_settings(file_no, sdm | {"file_key": 3})

    with pytest.raises(BandCheckFailed) as failed:
        BandWriter(MASTER).provision(WrongMirror(SimApduReader(ApduChip(UID))))
    assert failed.value.fields["refusal"] == "bad_mac"


def test_open_transport_sim_apdu() -> None:
    t = open_transport(f"sim-apdu:{UID.hex()}")
    assert isinstance(t, Ev2Transport)
    assert BandWriter(MASTER).provision(t).verified


# ---- hostile replies -------------------------------------------------------------------


class Scripted:
    """A link that answers from the real chip for the first ``honest`` exchanges, then
    replaces one reply with ``hostile`` (and answers the rest from the chip again)."""

    def __init__(self, honest: int, hostile: Callable[[bytes], bytes]) -> None:
        self.chip = ApduChip(UID)
        self.n = 0
        self.honest = honest
        self.hostile = hostile
        self.changed = False  # the hostile reply differs from the chip's

    def activate(self, timeout_s: float) -> bytes:
        self.chip.reset()
        return UID

    def exchange(self, apdu: bytes) -> bytes:
        reply = self.chip.exchange(apdu)
        self.n += 1
        if self.n != self.honest + 1:
            return reply
        forged = self.hostile(reply)
        self.changed = forged != reply
        return forged


def _steps(t: Ev2Transport) -> Iterator[Callable[[], object]]:
    layout = ndef_layout("https://band.example/t")
    yield lambda: t.wait_for_band(1)
    yield lambda: t.authenticate(0, FACTORY_KEY)
    yield lambda: t.write_ndef(0, layout.data)
    yield lambda: t.change_file_settings(2, layout.sdm_settings())
    yield lambda: t.change_key(2, os.urandom(16), 1, FACTORY_KEY)
    yield lambda: t.change_key(0, os.urandom(16), 1, FACTORY_KEY)
    yield t.read_ndef


def _run_all(t: Ev2Transport) -> list[str]:
    failures = []
    for step in _steps(t):
        try:
            step()
        except Ev2Error as exc:  # the documented family; anything else fails the test
            failures.append(type(exc).__name__)
    return failures


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=30))
def test_arbitrary_replies_raise_only_the_transport_errors(replies: list[bytes]) -> None:
    class Noise:
        def activate(self, timeout_s: float) -> bytes:
            return UID

        def exchange(self, apdu: bytes) -> bytes:
            return replies.pop(0) if replies else b""

    # Noise never passes for a band: without the key nobody answers the authentication.
    failures = _run_all(Ev2Transport(Noise()))
    assert failures, "arbitrary replies were taken for a band's answers"


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 16),
    st.one_of(
        st.binary(max_size=40).map(lambda b: lambda _r: b),  # a reply replaced
        st.integers(0, 400).map(lambda i: lambda r: r[: i % (len(r) + 1)]),  # cut short
        st.integers(0, 400).map(  # one bit flipped
            lambda i: (
                lambda r: (
                    r
                    if not r
                    else r[: i % len(r)]
                    + bytes((r[i % len(r)] ^ (1 << (i % 8)),))
                    + r[i % len(r) + 1 :]
                )
            )
        ),
        st.sampled_from([H("911E"), H("91AE"), H("917E"), H("6A82"), H("91AF"), H("9000")]).map(
            lambda sw: lambda r: r[:-2] + sw
        ),
    ),
)
def test_a_tampered_reply_mid_session_raises_only_the_transport_errors(
    honest: int, hostile: Callable[[bytes], bytes]
) -> None:
    link = Scripted(honest, hostile)
    t = Ev2Transport(link)
    failures = _run_all(t)
    # Replies outside secure messaging (ISO select and read, Plain WriteData) can be changed
    # unnoticed by the transport; a changed reply to the authentication (exchanges 2 and 3)
    # or to a MAC'd command (ChangeFileSettings 5, ChangeKey 2 6) must always be caught.
    if link.changed and honest + 1 in (2, 3, 5, 6):
        assert failures


def test_a_forged_mac_and_bad_status_words_are_named() -> None:
    def flip_last_mac_byte(r: bytes) -> bytes:
        return r[:-3] + bytes((r[-3] ^ 1,)) + r[-2:]

    t = Ev2Transport(Scripted(4, flip_last_mac_byte))  # the ChangeFileSettings reply
    t.wait_for_band(1)
    t.authenticate(0, FACTORY_KEY)
    layout = ndef_layout("https://band.example/t")
    t.write_ndef(0, layout.data)
    with pytest.raises(SecureMessagingError) as err:
        t.change_file_settings(2, layout.sdm_settings())
    assert err.value.check == "mac" and t.session is None
    t2 = Ev2Transport(Scripted(2, lambda r: H("91AE")))
    t2.wait_for_band(1)
    with pytest.raises(ChipStatusError) as refused:
        t2.authenticate(0, FACTORY_KEY)
    assert refused.value.sw == 0x91AE and t2.session is None
    t3 = Ev2Transport(Scripted(1, lambda r: H("00") * 10 + H("91AF")))
    t3.wait_for_band(1)
    with pytest.raises(SecureMessagingError) as short:
        t3.authenticate(0, FACTORY_KEY)
    assert short.value.check == "length"
    # ChangeKey of key 0 has a reply of 91 00 alone: anything before the status is refused.
    t4 = Ev2Transport(Scripted(6, lambda r: H("00") + r))
    t4.wait_for_band(1)
    t4.authenticate(0, FACTORY_KEY)
    t4.write_ndef(0, layout.data)
    t4.change_file_settings(2, layout.sdm_settings())
    t4.change_key(2, os.urandom(16), 1, FACTORY_KEY)
    with pytest.raises(SecureMessagingError) as extra:
        t4.change_key(0, os.urandom(16), 1, FACTORY_KEY)
    assert extra.value.check == "length" and t4.session is None
