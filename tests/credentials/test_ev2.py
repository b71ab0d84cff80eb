"""EV2 secure messaging (gateway/checkpoints/ev2.py) against NXP's worked examples.

Source of every vector: NXP AN12196 "NTAG 424 DNA and NTAG 424 DNA TagTamper features and
hints" (section numbers as in Rev 1.x; table numbers shift by one between revisions, so the
section and the step are named). The byte strings were cross-checked in public test suites
that quote the same examples (icedevml/nfc-ev2-crypto test_ev2.py, and several NTAG 424
provisioning tools in Python, Go, Rust and Kotlin); read to check the numbers, no code taken.
"""

from __future__ import annotations

import pytest

from gateway.checkpoints import ev2
from gateway.checkpoints.ev2 import (
    FULL,
    MAC,
    ChipStatusError,
    Ev2Auth,
    Ev2Session,
    Ev2UsageError,
    SdmSettings,
    SecureMessagingError,
)

H = bytes.fromhex


def session(ti: str, enc: str, mac: str, ctr: int = 0) -> Ev2Session:
    return Ev2Session(0, H(ti), H(enc), H(mac), ctr)


# AN12196 §6.6 "AuthenticateEV2First with key 0x00" (factory key, all zero).
def test_authenticate_ev2_first_an12196_key0() -> None:
    rnd_a = H("13C5DB8A5930439FC3DEF9A4C675360F")
    auth = Ev2Auth(0, bytes(16), random=lambda n: rnd_a)
    assert auth.first() == H("9071000002000000")
    second = auth.second(H("A04C124213C186F22399D33AC2A3021591AF"))
    assert auth.rnd_b == H("B9E2FC789B64BF237CCCAA20EC7E6E48")
    assert second == H(
        "90AF00002035C3E05A752E0144BAC0DE51C1F22C56B34408A23D8AEA266CAB947EA8E0118D00"
    )
    s = auth.finish(H("3FA64DB5446D1F34CD6EA311167F5E4985B89690C04A05F17FA7AB2F081206639100"))
    assert s.ti == H("9D00C4DF") and s.cmd_ctr == 0
    assert (s.pd_cap2, s.pcd_cap2) == (bytes(6), bytes(6))
    assert s.enc_key == H("1309C877509E5A215007FF0ED19CA564")
    assert s.mac_key == H("4C6626F5E72EA694202139295C7A7FC7")


# AN12196 §6.10 "AuthenticateEV2First with key 0x03" (the note's second session).
def test_authenticate_ev2_first_an12196_key3_session() -> None:
    auth = Ev2Auth(3, bytes(16), random=lambda n: H("B98F4C50CF1C2E084FD150E33992B048"))
    assert auth.first() == H("9071000002030000")
    assert auth.second(H("B875CEB0E66A6C5CD00898DC371F92D191AF")) == H(
        "90AF000020FF0306E47DFBC50087C4D8A78E88E62DE1E8BE457AA477C707E2F0874916A8B100"
    )
    s = auth.finish(H("0CC9A8094A8EEA683ECAAC5C7BF20584206D0608D477110FC6B3D5D3F65C3A6A9100"))
    assert s.ti == H("7614281A")
    assert s.enc_key == H("7A93D6571E4B180FCA6AC90C9A7488D4")
    assert s.mac_key == H("FC4AF159B62E549B5812394CAB1918CC")


def test_a_chip_without_the_key_fails_authentication() -> None:
    rnd_a = H("13C5DB8A5930439FC3DEF9A4C675360F")
    auth = Ev2Auth(0, bytes(16), random=lambda n: rnd_a)
    auth.second(H("A04C124213C186F22399D33AC2A3021591AF"))
    forged = bytearray(H("3FA64DB5446D1F34CD6EA311167F5E4985B89690C04A05F17FA7AB2F08120663"))
    forged[7] ^= 1
    with pytest.raises(SecureMessagingError) as err:
        auth.finish(bytes(forged) + H("9100"))
    assert err.value.check == "rnd_a"
    with pytest.raises(ChipStatusError) as refused:
        Ev2Auth(0, bytes(16)).second(H("91AE"))
    assert (refused.value.sw, refused.value.status) == (0x91AE, "AUTHENTICATION_ERROR")


# AN12196 §5.3 "CommMode.MAC": GetFileSettings of file 02 with its response.
def test_mac_mode_get_file_settings_an12196() -> None:
    s = session("7A21085E", "00" * 16, "8248134A386E86EB7FAF54A52E536CB6")
    assert s.command(ev2.CMD_GET_FILE_SETTINGS, b"\x02", b"", MAC) == H(
        "90F5000009026597A457C8CD442C00"
    )
    data = s.response(
        H("0040EEEE000100D1FE001F00004400004400002000006A00002A474282E7A479869100"), MAC
    )
    assert data == H("0040EEEE000100D1FE001F00004400004400002000006A0000")
    assert s.cmd_ctr == 1


# AN12196 §5.4 "CommMode.FULL": WriteData of 128 bytes (an NDEF record) to file 02.
def test_full_mode_write_data_an12196() -> None:
    s = session("9D00C4DF", "1309C877509E5A215007FF0ED19CA564", "4C6626F5E72EA694202139295C7A7FC7")
    assert s.iv_command() == H("D2CB7277A17841A06654A48188C1F8F5")
    plain = H(
        "0051D1014D550463686F6F73652E75726C2E636F6D2F6E7461673432343F653D"
        "3030303030303030303030303030303030303030303030303030303030303030"
        "26633D3030303030303030303030303030303000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
    )
    apdu = s.command(ev2.CMD_WRITE_DATA, ev2.write_data_header(2, 0, 0x80), plain, FULL)
    assert apdu == H(
        "908D00009F02000000800000421C73A27D827658AF481FDFF20A5025B559D0E3"
        "AA21E58D347F343CFFC768BFE596C706BC00F2176781D4B0242642A0FF5A42C4"
        "61AAF894D9A1284B8C76BCFA658ACD40555D362E08DB15CF421B51283F9064BC"
        "BE20E96CAE545B407C9D651A3315B27373772E5DA2367D2064AE054AF996C6F1"
        "F669170FA88CE8C4E3A4A7BBBEF0FD971FF532C3A802AF745660F2B4D1D9A849"
        "9661EBF300"
    )
    assert s.response(H("FC222E5F7A5424529100"), FULL) == b""
    assert s.cmd_ctr == 1


# AN12196 §6.9 ChangeFileSettings of file 02 with SDM (CmdCtr 1 in the same session):
# FileOption 40, AccessRights 00E0, SDMOptions C1, SDMAccessRights F121, offsets 20/43/43.
def test_change_file_settings_an12196() -> None:
    s = session(
        "9D00C4DF", "1309C877509E5A215007FF0ED19CA564", "4C6626F5E72EA694202139295C7A7FC7", 1
    )
    data = SdmSettings(
        meta_key=2, file_key=1, picc_offset=0x20, mac_input_offset=0x43, mac_offset=0x43,
        ctr_ret_key=1,
    ).encode()  # fmt: skip
    assert data == H("4000E0C1F121200000430000430000")
    assert s.iv_command() == H("3E27082AB2ACC1EF55C57547934E9962")
    assert s.command(ev2.CMD_CHANGE_FILE_SETTINGS, b"\x02", data, FULL) == H(
        "905F0000190261B6D97903566E84C3AE5274467E89EAD799B7C1A0EF7A0400"
    )
    with pytest.raises(SecureMessagingError) as err:  # one bit off in the reply's MAC
        s.response(H("57BFF87B1241E93E9100"), FULL)
    assert err.value.check == "mac" and s.cmd_ctr == 1  # a forged reply does not count
    assert s.response(H("57BFF87B1241E93D9100"), FULL) == b""
    assert s.cmd_ctr == 2


# AN12196 §6.16 ChangeKey, case 1 (key 02, not the authenticated key; old key all zero).
def test_change_key_other_key_an12196() -> None:
    new = H("F3847D627727ED3BC9C4CC050489B966")
    assert ev2.crc32_nk(new) == H("789DFADC")
    data = ev2.change_key_data(2, new, 1, auth_key_no=0, old_key=bytes(16))
    assert ev2.pad(data) == H("F3847D627727ED3BC9C4CC050489B96601789DFADC8000000000000000000000")
    s = session(
        "7614281A", "4CF3CB41A22583A61E89B158D252FC53", "5529860B2FC5FB6154B7F28361D30BF9", 2
    )
    assert s.iv_command() == H("307EDE1814707F30CFE603DD6CA62353")
    assert s.command(ev2.CMD_CHANGE_KEY, b"\x02", data, FULL) == H(
        "90C4000029022CF362B7BF4311FF3BE1DAA295E8C68DE09050560D19B9E16C2393AE9CD1FAC75D0CE20BCD1D06E600"
    )
    assert s.response(H("203BB55D1089D5879100"), MAC) == b""
    assert s.cmd_ctr == 3


# AN12196 §6.16 ChangeKey, case 2 (key 00, the authenticated key: no MAC in the reply).
def test_change_key_authenticated_key_an12196() -> None:
    data = ev2.change_key_data(
        0, H("5004BF991F408672B1EF00F08F9E8647"), 1, auth_key_no=0, old_key=None
    )
    s = session(
        "7614281A", "4CF3CB41A22583A61E89B158D252FC53", "5529860B2FC5FB6154B7F28361D30BF9", 3
    )
    assert s.iv_command() == H("01602D579423B2797BE8B478B0B4D27B")
    assert s.command(ev2.CMD_CHANGE_KEY, b"\x00", data, FULL) == H(
        "90C400002900C0EB4DEEFEDDF0B513A03A95A75491818580503190D4D05053FF75668A01D6FDA6610234BDED643200"
    )
    assert s.response(H("9100"), ev2.PLAIN) == b""


# AN12196 §7.3 "CommMode.FULL response": GetCardUID (51), its encrypted reply decrypted.
def test_full_mode_response_get_card_uid_an12196() -> None:
    s = session("DF055522", "2B4D963C014DC36F24F69A50A394F875", "379D32130CE61705DD5FD8C36B95D764")
    assert s.command(0x51, b"", b"", FULL) == H("90510000088E2C155ADDA99BE300")
    reply = H("70756055688505B52A5E26E59E329CD6595F672298EA41B79100")
    assert s.response(reply, FULL) == H("04958CAA5C5E80")


def test_iso_commands_and_bad_input() -> None:
    assert ev2.iso_select_aid() == H("00A4040C07D276000085010100")
    assert ev2.iso_select_file(ev2.NDEF_FILE_ID) == H("00A4000C02E104")
    assert ev2.iso_read_binary(0, 256) == H("00B0000000")
    assert ev2.iso_update_binary(2, b"\x01") == H("00D600020101")
    assert ev2.write_data_header(2, 0x123456, 3) == H("02563412030000")
    for bad in (
        lambda: ev2.iso_read_binary(0, 0),
        lambda: ev2.write_data_header(2, 1 << 24, 1),
        lambda: ev2.change_key_data(2, bytes(16), 1, auth_key_no=0, old_key=None),
        lambda: ev2.change_key_data(0, b"short", 1, auth_key_no=0, old_key=None),
        lambda: Ev2Auth(5, bytes(16)),
        lambda: ev2.native_apdu(0x8D, bytes(256)),
    ):
        with pytest.raises(Ev2UsageError):
            bad()
    with pytest.raises(SecureMessagingError):
        ev2.split_reply(b"\x91", "x")
    with pytest.raises(SecureMessagingError):
        ev2.unpad(bytes(16), "x")


def test_the_secure_messaging_module_is_sans_io() -> None:
    import ast
    from pathlib import Path

    tree = ast.parse(Path(ev2.__file__).read_text("utf-8"))
    names = {
        a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    names |= {
        n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
    }
    assert not names & {"asyncio", "serial", "socket", "sqlite3", "time", "threading", "select"}
