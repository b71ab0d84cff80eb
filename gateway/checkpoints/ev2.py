"""NTAG 424 DNA EV2 secure messaging, sans-IO: APDUs out, replies in, no I/O, no clock.

    auth = Ev2Auth(key_no=0, key=bytes(16))
    reply = exchange(auth.first())               # 90 71 ...  -> E(K, RndB) 91 AF
    reply = exchange(auth.second(reply))         # 90 AF ...  -> E(K, TI||RndA'||caps) 91 00
    session = auth.finish(reply)                 # SesAuthENCKey, SesAuthMACKey, TI, CmdCtr 0
    apdu = session.command(CMD_CHANGE_FILE_SETTINGS, bytes([2]), data, FULL)
    session.response(exchange(apdu), FULL)       # MAC checked, CmdCtr + 1

Theory of operation (NXP NT4H2421Gx datasheet §9.1, AN12196 §5-§6)
------------------------------------------------------------------
AuthenticateEV2First is three passes with AES-128 CBC under the chosen key and a zero IV:
the chip sends E(K, RndB); we send E(K, RndA || RndB<<<8); the chip answers E(K, TI ||
RndA<<<8 || PDcap2 || PCDcap2), which proves it holds K (RndA' must match). Session keys are
CMACs under K of SV1 (``A55A``) and SV2 (``5AA5``) ``|| 0001 0080 || RndA[15..14] ||
(RndA[13..8] xor RndB[15..10]) || RndB[9..0] || RndA[7..0]`` (byte 15 is the first sent).

Every command in the session carries the 16-bit command counter CmdCtr (little-endian) and
the 4-byte transaction identifier TI. MAC mode: ``MACt = CMAC(SesAuthMACKey, Cmd || CmdCtr
|| TI || header || data)`` reduced to its even bytes (NXP counts from 1: indices 1, 3, ..
from 0). Full mode: the data is padded (``80 00..``, always at least one byte) and encrypted
with AES-CBC under SesAuthENCKey, IV = E(SesAuthENCKey, ``A55A || TI || CmdCtr || 0*8``),
then MAC'd as above. The reply's MAC covers ``status || CmdCtr+1 || TI || data``, its IV
is E(SesAuthENCKey, ``5AA5 || TI || CmdCtr+1 || 0*8``). CmdCtr rises by one for each
command answered ``91 00`` in the session, whatever its mode (Plain included); any other
status ends the session on the chip, and here too.

Untrusted replies raise :class:`Ev2Error` subclasses only: :class:`ChipStatusError` (the chip
said no: ``sw`` and its NXP name) and :class:`SecureMessagingError` (a reply that fails a
check: length, MAC, RndA', padding). Commands we would refuse to build (a key of the wrong
length, an offset beyond 24 bits) raise :class:`Ev2UsageError`.
"""

from __future__ import annotations

import hmac
import os
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

from gateway.errors import DeviceError, LocalProtocolError, RemoteProtocolError

KEY_LEN: Final = 16
BLOCK: Final = 16
NDEF_AID: Final = bytes.fromhex("D2760000850101")  # the NDEF application (ISO DF name)
NDEF_FILE_ID: Final = bytes.fromhex("E104")  # ISO file ID of file 02 (the NDEF file)
CC_FILE_ID: Final = bytes.fromhex("E103")

CMD_AUTH_EV2_FIRST: Final = 0x71
CMD_ADDITIONAL_FRAME: Final = 0xAF
CMD_CHANGE_KEY: Final = 0xC4
CMD_CHANGE_FILE_SETTINGS: Final = 0x5F
CMD_WRITE_DATA: Final = 0x8D
CMD_READ_DATA: Final = 0xAD
CMD_GET_FILE_SETTINGS: Final = 0xF5

Mode = Literal["plain", "mac", "full"]
PLAIN: Final[Mode] = "plain"
MAC: Final[Mode] = "mac"
FULL: Final[Mode] = "full"

SW_OK: Final = 0x9100
SW_MORE: Final = 0x91AF
SW_ISO_OK: Final = 0x9000
# NT4H2421Gx §10.1 (native status) and ISO/IEC 7816-4 (the ISO commands).
STATUS_NAMES: Final[Mapping[int, str]] = {
    0x9100: "OPERATION_OK",
    0x91AF: "ADDITIONAL_FRAME",
    0x910C: "NO_CHANGES",
    0x910E: "OUT_OF_EEPROM_ERROR",
    0x911C: "ILLEGAL_COMMAND_CODE",
    0x911E: "INTEGRITY_ERROR",
    0x9140: "NO_SUCH_KEY",
    0x917E: "LENGTH_ERROR",
    0x919D: "PERMISSION_DENIED",
    0x919E: "PARAMETER_ERROR",
    0x91AD: "AUTHENTICATION_DELAY",
    0x91AE: "AUTHENTICATION_ERROR",
    0x91BE: "BOUNDARY_ERROR",
    0x91CA: "COMMAND_ABORTED",
    0x91EE: "MEMORY_ERROR",
    0x91F0: "FILE_NOT_FOUND",
    0x9000: "ISO_OK",
    0x6700: "ISO_WRONG_LENGTH",
    0x6982: "ISO_SECURITY_STATUS_NOT_SATISFIED",
    0x6985: "ISO_CONDITIONS_NOT_SATISFIED",
    0x6A80: "ISO_WRONG_DATA",
    0x6A82: "ISO_FILE_NOT_FOUND",
    0x6A86: "ISO_WRONG_P1P2",
    0x6B00: "ISO_WRONG_OFFSET",
    0x6D00: "ISO_INS_NOT_SUPPORTED",
    0x6E00: "ISO_CLA_NOT_SUPPORTED",
}

# ChangeFileSettings (NT4H2421Gx §10.7.1): FileOption bit 6 = SDM enabled, low bits CommMode.
FILE_OPTION_SDM: Final = 0x40
SDM_UID_MIRROR: Final = 0x80
SDM_READ_CTR_MIRROR: Final = 0x40
SDM_ASCII: Final = 0x01
ACCESS_FREE: Final = 0xE
ACCESS_NONE: Final = 0xF
MAX_OFFSET: Final = 0xFFFFFF


class Ev2Error(DeviceError):
    """The band link failed: the chip refused a command or its reply failed a check."""


class ChipStatusError(Ev2Error):
    """The chip answered a status other than success; ``sw`` (int) and ``status`` (name)."""

    def __init__(self, command: str, sw: int) -> None:
        name = STATUS_NAMES.get(sw, "UNKNOWN_STATUS")
        super().__init__(f"{command}: the band answered {sw:04X} ({name})", sw=sw, status=name)
        self.sw = sw
        self.status = name


class SecureMessagingError(Ev2Error, RemoteProtocolError):
    """A reply failed a check (``check``: length, mac, rnd_a, padding): hostile or garbled."""

    def __init__(self, command: str, check: str, reason: str) -> None:
        Ev2Error.__init__(self, f"{command}: {reason}", check=check)
        self.check = check


class Ev2UsageError(Ev2Error, LocalProtocolError):
    """We were asked to build a command the chip cannot take (a bug or bad input here)."""


# ----------------------------------------------------------------------------- primitives


def aes_cmac(key: bytes, message: bytes) -> bytes:
    c = CMAC(algorithms.AES(key))
    c.update(message)
    return c.finalize()


def mac_t(key: bytes, message: bytes) -> bytes:
    """MACt: the even-numbered bytes (1-based) of the 16-byte CMAC, 8 bytes."""
    return aes_cmac(key, message)[1::2]


def _ecb(key: bytes, block: bytes) -> bytes:
    e = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305  (one IV block)
    return e.update(block) + e.finalize()


def cbc_encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    e = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return e.update(data) + e.finalize()


def cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    d = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return d.update(data) + d.finalize()


def rotate_left(data: bytes) -> bytes:
    return data[1:] + data[:1]


def pad(data: bytes) -> bytes:
    """ISO/IEC 9797-1 method 2: ``80`` then zeros to a whole block, always at least ``80``."""
    data = data + b"\x80"
    return data + bytes(-len(data) % BLOCK)


def unpad(data: bytes, command: str) -> bytes:
    stripped = data.rstrip(b"\x00")
    if not stripped.endswith(b"\x80") or len(data) - len(stripped) >= BLOCK:
        raise SecureMessagingError(command, "padding", "the decrypted reply is not padded")
    return stripped[:-1]


def crc32_nk(data: bytes) -> bytes:
    """CRC32 as ChangeKey carries it: IEEE 802.3 without the final inversion, little-endian."""
    return ((zlib.crc32(data) ^ 0xFFFFFFFF) & 0xFFFFFFFF).to_bytes(4, "little")


def session_vectors(rnd_a: bytes, rnd_b: bytes) -> tuple[bytes, bytes]:
    """SV1 and SV2 of AuthenticateEV2First (NT4H2421Gx §9.1.7)."""
    mix = bytes(a ^ b for a, b in zip(rnd_a[2:8], rnd_b[0:6], strict=True))
    tail = rnd_a[0:2] + mix + rnd_b[6:16] + rnd_a[8:16]
    return bytes.fromhex("A55A00010080") + tail, bytes.fromhex("5AA500010080") + tail


def session_keys(key: bytes, rnd_a: bytes, rnd_b: bytes) -> tuple[bytes, bytes]:
    """(SesAuthENCKey, SesAuthMACKey) for ``key`` and the two randoms."""
    sv1, sv2 = session_vectors(rnd_a, rnd_b)
    return aes_cmac(key, sv1), aes_cmac(key, sv2)


def native_apdu(cmd: int, data: bytes = b"") -> bytes:
    """A native command wrapped in ISO/IEC 7816-4 (CLA 90, P1 P2 00, Le 00)."""
    if len(data) > 255:
        raise Ev2UsageError(f"{cmd:02X}: {len(data)} bytes of command data (at most 255)")
    return bytes((0x90, cmd, 0, 0)) + (bytes((len(data),)) + data if data else b"") + b"\x00"


def split_reply(reply: object, command: str) -> tuple[bytes, int]:
    """(body, status word) of a reply; SecureMessagingError if it has no status word."""
    if not isinstance(reply, bytes | bytearray) or len(reply) < 2:
        raise SecureMessagingError(command, "length", "a reply without a status word")
    return bytes(reply[:-2]), int.from_bytes(reply[-2:], "big")


def _check_key(key: bytes, what: str) -> bytes:
    if not isinstance(key, bytes) or len(key) != KEY_LEN:
        raise Ev2UsageError(f"{what} must be {KEY_LEN} bytes")
    return key


def _u24(value: int, what: str) -> bytes:
    if not isinstance(value, int) or not 0 <= value <= MAX_OFFSET:
        raise Ev2UsageError(f"{what} {value!r} is outside 0..{MAX_OFFSET}")
    return value.to_bytes(3, "little")


# ------------------------------------------------------------------------- authentication


class Ev2Auth:
    """AuthenticateEV2First with ``key`` in slot ``key_no``, one pass at a time."""

    def __init__(
        self, key_no: int, key: bytes, *, random: Callable[[int], bytes] = os.urandom
    ) -> None:
        if not 0 <= key_no <= 4:
            raise Ev2UsageError(f"key number {key_no} is outside 0..4")
        self.key_no = key_no
        self.key = _check_key(key, "the key")
        self._random = random
        self.rnd_a = b""
        self.rnd_b = b""

    def first(self) -> bytes:
        """Part 1: KeyNo and LenCap 00 (no PCDcap2 sent)."""
        return native_apdu(CMD_AUTH_EV2_FIRST, bytes((self.key_no, 0)))

    def second(self, reply: bytes) -> bytes:
        """Part 2 from the chip's E(K, RndB): E(K, RndA || RndB')."""
        body, sw = split_reply(reply, "AuthenticateEV2First")
        if sw != SW_MORE:
            raise ChipStatusError("AuthenticateEV2First", sw)
        if len(body) != BLOCK:
            raise SecureMessagingError(
                "AuthenticateEV2First", "length", f"{len(body)} bytes of E(RndB), not 16"
            )
        self.rnd_b = cbc_decrypt(self.key, bytes(BLOCK), body)
        rnd_a = self._random(BLOCK)
        if len(rnd_a) != BLOCK:
            raise Ev2UsageError("the random source gave no 16 bytes")
        self.rnd_a = rnd_a
        token = cbc_encrypt(self.key, bytes(BLOCK), rnd_a + rotate_left(self.rnd_b))
        return native_apdu(CMD_ADDITIONAL_FRAME, token)

    def finish(self, reply: bytes) -> Ev2Session:
        """The session from the chip's E(K, TI || RndA' || PDcap2 || PCDcap2)."""
        body, sw = split_reply(reply, "AuthenticateEV2First")
        if sw != SW_OK:
            raise ChipStatusError("AuthenticateEV2First", sw)
        if len(body) != 2 * BLOCK or not self.rnd_a:
            raise SecureMessagingError(
                "AuthenticateEV2First", "length", f"{len(body)} bytes of part 2, not 32"
            )
        plain = cbc_decrypt(self.key, bytes(BLOCK), body)
        if not hmac.compare_digest(plain[4:20], rotate_left(self.rnd_a)):
            raise SecureMessagingError(
                "AuthenticateEV2First", "rnd_a", "the band does not hold the key (RndA')"
            )
        enc, mac = session_keys(self.key, self.rnd_a, self.rnd_b)
        return Ev2Session(self.key_no, plain[0:4], enc, mac, 0, plain[20:26], plain[26:32])


@dataclass(slots=True)
class Ev2Session:
    """An authenticated session: keys, TI and the command counter (see the module docstring)."""

    key_no: int
    ti: bytes
    enc_key: bytes
    mac_key: bytes
    cmd_ctr: int = 0
    pd_cap2: bytes = bytes(6)
    pcd_cap2: bytes = bytes(6)

    def _ctr(self, delta: int = 0) -> bytes:
        return ((self.cmd_ctr + delta) & 0xFFFF).to_bytes(2, "little")

    def iv_command(self) -> bytes:
        return _ecb(self.enc_key, b"\xa5\x5a" + self.ti + self._ctr() + bytes(8))

    def iv_response(self) -> bytes:
        return _ecb(self.enc_key, b"\x5a\xa5" + self.ti + self._ctr(1) + bytes(8))

    def command(self, cmd: int, header: bytes, data: bytes, mode: Mode) -> bytes:
        """The APDU for ``cmd`` with its (clear) header and data in ``mode``."""
        if mode == FULL and data:
            data = cbc_encrypt(self.enc_key, self.iv_command(), pad(data))
        body = header + data
        if mode != PLAIN:
            body += mac_t(self.mac_key, bytes((cmd,)) + self._ctr() + self.ti + body)
        return native_apdu(cmd, body)

    def response(self, reply: bytes, mode: Mode, command: str = "command") -> bytes:
        """The reply's data (decrypted in FULL mode), its MAC checked; CmdCtr + 1.

        ``mode`` "none": the reply carries no MAC (ChangeKey of the authenticated key, which
        ends the session). Any status but 91 00 raises ChipStatusError: the chip has ended
        the session, so should the caller."""
        body, sw = split_reply(reply, command)
        if sw != SW_OK:
            raise ChipStatusError(command, sw)
        if mode == PLAIN:
            self.cmd_ctr += 1
            return body
        if len(body) < 8:
            raise SecureMessagingError(command, "length", "a reply too short for its MAC")
        data, mac = body[:-8], body[-8:]
        expect = mac_t(self.mac_key, b"\x00" + self._ctr(1) + self.ti + data)
        if not hmac.compare_digest(mac, expect):
            raise SecureMessagingError(command, "mac", "the reply's MAC does not match")
        if mode == FULL and data:
            if len(data) % BLOCK:
                raise SecureMessagingError(command, "length", "encrypted data not in blocks")
            data = unpad(cbc_decrypt(self.enc_key, self.iv_response(), data), command)
        self.cmd_ctr += 1
        return data


def check_plain_ok(reply: bytes, command: str, ok: int = SW_OK) -> bytes:
    """The body of a reply outside secure messaging, or ChipStatusError."""
    body, sw = split_reply(reply, command)
    if sw != ok:
        raise ChipStatusError(command, sw)
    return body


# ---------------------------------------------------------------------- command contents


def change_key_data(
    key_no: int, new_key: bytes, version: int, *, auth_key_no: int, old_key: bytes | None
) -> bytes:
    """ChangeKey's plain data: ``new || ver`` for the authenticated key, else
    ``(new xor old) || ver || CRC32NK(new)`` (NT4H2421Gx §10.6.1)."""
    new = _check_key(new_key, "the new key")
    if not 0 <= key_no <= 4 or not 0 <= version <= 0xFF:
        raise Ev2UsageError(f"key {key_no} version {version} out of range")
    if key_no == auth_key_no:
        return new + bytes((version,))
    if old_key is None:
        raise Ev2UsageError(f"changing key {key_no} needs its old value")
    old = _check_key(old_key, "the old key")
    return bytes(a ^ b for a, b in zip(new, old, strict=True)) + bytes((version,)) + crc32_nk(new)


@dataclass(frozen=True, slots=True)
class SdmSettings:
    """ChangeFileSettings for a file mirroring encrypted PICCData and SDMMAC (ASCII)."""

    meta_key: int
    file_key: int
    picc_offset: int
    mac_input_offset: int
    mac_offset: int
    read_key: int = ACCESS_FREE
    write_key: int = 0
    rw_key: int = 0
    change_key: int = 0
    ctr_ret_key: int = ACCESS_NONE
    comm_mode: int = 0  # Plain: a phone reads the NDEF file without authenticating

    def encode(self) -> bytes:
        """FileOption, AccessRights, SDMOptions, SDMAccessRights, then the 3-byte LE offsets
        (PICCDataOffset, SDMMACInputOffset, SDMMACOffset) — NT4H2421Gx Table 69."""
        for slot in (self.meta_key, self.file_key):
            if not 0 <= slot <= 4:
                raise Ev2UsageError(f"SDM key {slot} is outside 0..4")
        rights = (
            self.rw_key << 12 | self.change_key << 8 | self.read_key << 4 | self.write_key
        ).to_bytes(2, "big")
        sdm_rights = 0xF << 12 | self.ctr_ret_key << 8 | self.meta_key << 4 | self.file_key
        return (
            bytes((FILE_OPTION_SDM | self.comm_mode,))
            + rights
            + bytes((SDM_UID_MIRROR | SDM_READ_CTR_MIRROR | SDM_ASCII,))
            + sdm_rights.to_bytes(2, "big")
            + _u24(self.picc_offset, "PICCDataOffset")
            + _u24(self.mac_input_offset, "SDMMACInputOffset")
            + _u24(self.mac_offset, "SDMMACOffset")
        )


def write_data_header(file_no: int, offset: int, length: int) -> bytes:
    return bytes((file_no,)) + _u24(offset, "offset") + _u24(length, "length")


def iso_select_aid(aid: bytes = NDEF_AID) -> bytes:
    """ISOSelectFile by DF name, no FCI returned."""
    return bytes((0x00, 0xA4, 0x04, 0x0C, len(aid))) + aid + b"\x00"


def iso_select_file(file_id: bytes) -> bytes:
    """ISOSelectFile of an EF under the selected application, by its 2-byte ID."""
    return bytes((0x00, 0xA4, 0x00, 0x0C, 0x02)) + file_id


def iso_read_binary(offset: int, length: int) -> bytes:
    """ISOReadBinary of the selected file (offset below 32768, 1..256 bytes; Le 00 = 256)."""
    if not 0 <= offset <= 0x7FFF or not 1 <= length <= 256:
        raise Ev2UsageError(f"ISOReadBinary offset {offset} length {length} out of range")
    return bytes((0x00, 0xB0)) + offset.to_bytes(2, "big") + bytes((length & 0xFF,))


def iso_update_binary(offset: int, data: bytes) -> bytes:
    if not 0 <= offset <= 0x7FFF or not 1 <= len(data) <= 255:
        raise Ev2UsageError(f"ISOUpdateBinary offset {offset} length {len(data)} out of range")
    return bytes((0x00, 0xD6)) + offset.to_bytes(2, "big") + bytes((len(data),)) + data
