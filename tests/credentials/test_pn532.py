"""The PN532 link (gateway/checkpoints/pn532.py): its frames against the PN532 User Manual's
examples and every chunking, hostile bytes, and provisioning through it on a real
pseudo-terminal, to a simulated PN532 (hil_tests/sims/pn532.py) holding the APDU-level
simulated band (hil_tests/sims/ntag424.py)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.checkpoints.bandwriter import (
    BadBandInput,
    BandWriteError,
    BandWriter,
    ndef_url,
    open_transport,
)
from gateway.checkpoints.cli import add_cli
from gateway.checkpoints.ev2link import Ev2Transport, LinkError
from gateway.checkpoints.pn532 import (
    ACK,
    Frame,
    FrameReader,
    Pn532Error,
    Pn532Link,
    encode_frame,
    parse_list_passive,
)
from gateway.config import write_secret_file
from gateway.credentials.bands import BandVerifier
from hil_tests.sims.ntag424 import ApduChip, SimApduReader
from hil_tests.sims.pn532 import SimPn532

H = bytes.fromhex
MASTER = H("00112233445566778899aabbccddeeff")
UID = H("04de5f1eacc040")


# PN532 User Manual (UM0701-02) §6.2 and the command examples in §7, as quoted by many
# drivers (Adafruit-PN532, libnfc): GetFirmwareVersion, SAMConfiguration,
# InListPassiveTarget for one 106 kbps type A target.
@pytest.mark.parametrize(
    ("data", "frame"),
    [
        (H("02"), "0000FF02FED4022A00"),
        (H("14011401"), "0000FF05FBD41401140102" + "00"),
        (H("4A0100"), "0000FF04FCD44A0100E100"),
    ],
)
def test_frames_match_the_user_manual(data: bytes, frame: str) -> None:
    assert encode_frame(data) == H(frame)


def _reply_stream() -> tuple[bytes, list[Frame]]:
    target = H("4B01010044200704DE5F1EACC040") + H("067577810280")
    stream = (
        b"\x55\x00"  # noise before the first start code
        + ACK
        + encode_frame(target, tfi=0xD5)
        + H("0000FFFF0000")  # NACK
        + H("0000FF01FF7F8100")  # error frame
        + encode_frame(H("4100") + H("9100"), tfi=0xD5)
    )
    expected = [
        Frame("ack"),
        Frame("data", 0xD5, target),
        Frame("nack"),
        Frame("error"),
        Frame("data", 0xD5, H("41009100")),
    ]
    return stream, expected


def _drain(reader: FrameReader) -> Iterator[Frame]:
    while (f := reader.next_frame()) is not None:
        yield f


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 12), max_size=60))
def test_the_frame_reader_gives_the_same_frames_in_every_chunking(cuts: list[int]) -> None:
    stream, expected = _reply_stream()
    reader, got, at = FrameReader(), [], 0
    for n in [*cuts, len(stream)]:
        reader.feed(stream[at : at + n])
        at += n
        got.extend(_drain(reader))
    assert got == expected


def test_the_frame_reader_byte_by_byte_and_garbled_frames() -> None:
    stream, expected = _reply_stream()
    reader, got = FrameReader(), []
    for b in stream:
        reader.feed(bytes((b,)))
        got.extend(_drain(reader))
    assert got == expected
    bad = bytearray(encode_frame(H("4100"), tfi=0xD5))
    bad[-2] ^= 1  # data checksum
    reader.feed(bytes(bad))
    with pytest.raises(Pn532Error) as err:
        reader.next_frame()
    assert err.value.fields["check"] == "dcs"
    assert isinstance(err.value, LinkError)
    with pytest.raises(Pn532Error):
        parse_list_passive(H("0101004420"))
    assert parse_list_passive(H("00")) is None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_hostile_bytes_raise_only_pn532_error(data: bytes) -> None:
    reader = FrameReader()
    reader.feed(data)
    frames = []
    for _ in range(len(data) + 1):
        try:
            frame = reader.next_frame()
        except Pn532Error:
            continue
        if frame is None:
            break
        frames.append(frame)
    else:
        raise AssertionError("the reader kept finding frames in finite bytes")
    # Every frame starts with a start code (00 FF) of its own and takes at least 4 bytes.
    assert len(frames) <= data.count(b"\x00\xff")
    assert 4 * len(frames) <= len(data)


class _Port:
    """A serial port answering from a script of byte strings (one per read)."""

    def __init__(self, replies: list[bytes]) -> None:
        self.replies = replies

    def write(self, data: bytes) -> int:
        return len(data)

    def read(self, size: int = 1) -> bytes:
        return self.replies.pop(0) if self.replies else b""


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=60), max_size=8))
def test_a_link_fed_arbitrary_bytes_raises_only_link_errors(replies: list[bytes]) -> None:
    link = Pn532Link(_Port(replies), reply_timeout_s=0.0)
    for call in (lambda: link.activate(0), lambda: link.exchange(H("00A4040C07D2760000850101"))):
        try:
            call()
        except LinkError:
            pass


# ---- on a real pseudo-terminal ---------------------------------------------------------


@pytest.fixture
def pn532() -> Iterator[tuple[SimPn532, SimApduReader]]:
    reader = SimApduReader()
    sim = SimPn532(reader).start()
    try:
        yield sim, reader
    finally:
        sim.stop()


def test_a_band_is_provisioned_through_a_pn532_on_a_pty(
    pn532: tuple[SimPn532, SimApduReader],
) -> None:
    sim, reader = pn532
    chip = ApduChip(UID)
    reader.present(chip)
    transport = open_transport(f"pn532:{sim.port}")
    assert isinstance(transport, Ev2Transport) and isinstance(transport.link, Pn532Link)
    try:
        result = BandWriter(MASTER).provision(transport, timeout_s=5)
        assert (result.uid_hex, result.verified, result.counter) == (UID.hex(), True, 1)
        assert sim.commands[:3] == [0x14, 0x32, 0x4A] and set(sim.commands[3:]) == {0x40}
        bands = BandVerifier(MASTER)
        reads = [ndef_url(transport.read_ndef()) for _ in range(2)]
        assert [(c.verified, c.counter) for c in map(bands.check, reads)] == [(True, 2), (True, 3)]
        # The band leaves the field: the PN532 reports a timeout, a typed link error.
        chip.removed = True
        with pytest.raises(Pn532Error) as err:
            transport.read_ndef()
        assert err.value.fields["status"] == 0x01
        # No band comes: the wait ends in a typed failure of the "select" step.
        with pytest.raises(BandWriteError) as failed:
            BandWriter(MASTER).provision(transport, timeout_s=0.2)
        assert failed.value.fields["step"] == "select"
    finally:
        transport.close()


def test_a_garbled_line_is_a_link_error(pn532: tuple[SimPn532, SimApduReader]) -> None:
    sim, reader = pn532
    reader.present(ApduChip(UID))
    link = Pn532Link.open(sim.port)
    try:
        assert link.activate(2) == UID
        sim.fault = lambda frame: frame[:-2] + bytes(((frame[-2] + 1) & 0xFF, 0))
        with pytest.raises(Pn532Error) as err:
            link.exchange(H("00A4040C07D276000085010100"))
        assert err.value.fields["check"] == "dcs"
        sim.fault = lambda frame: H("0000FF01FF7F8100")
        with pytest.raises(Pn532Error) as err:
            link.exchange(H("00A4040C07D276000085010100"))
        assert err.value.fields["check"] == "error"
    finally:
        link.close()


def test_cli_provisions_through_a_pn532(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pn532: tuple[SimPn532, SimApduReader]
) -> None:
    sim, reader = pn532
    reader.present(ApduChip(UID))
    write_secret_file(tmp_path / "bands.key", MASTER)
    cfg = tmp_path / "cp.toml"
    cfg.write_text(
        '[checkpoints]\nband_key_file = "bands.key"\n[[checkpoints.buses]]\nname = "a"\n'
        'port = "/dev/null"\n[[checkpoints.points]]\nid = "north-gate"\nbus = "a"\naddress = 3\n'
    )
    parser = argparse.ArgumentParser(prog="compound-gw")
    add_cli(parser.add_subparsers(dest="command", required=True))
    base = ["bands", "provision", "--checkpoints-file", str(cfg), "--timeout", "5"]
    args = parser.parse_args([*base, "--reader", f"pn532:{sim.port}"])
    assert args.handler(args) == 0
    assert (
        f"band {UID.hex()} provisioned; first read verified (counter 1" in capsys.readouterr().out
    )
    missing = str(tmp_path / "no-such-port")
    args = parser.parse_args([*base, "--reader", f"pn532:{missing}"])
    assert args.handler(args) == 2
    assert "no serial port" in capsys.readouterr().out
    # A port that exists but has no PN532 behind it (nobody answers the pty): exit 1.
    master, slave = os.openpty()
    try:
        args = parser.parse_args([*base, "--reader", f"pn532:{os.ttyname(slave)}"])
        assert args.handler(args) == 1
        assert "the PN532 did not answer" in capsys.readouterr().out
    finally:
        os.close(master)
        os.close(slave)
    with pytest.raises(BadBandInput):
        open_transport("pn532:")
