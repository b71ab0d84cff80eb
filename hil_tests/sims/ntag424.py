"""A simulated NTAG 424 DNA wristband that answers every read with a genuine SUN message.

Independent of the gateway's code (nothing from gateway/ is imported): the band does what
the chip does, per NXP AN12196 and AN10922, with the ``cryptography`` package's AES and CMAC.

    band = SimBand(master_key, uid=bytes.fromhex("04de5f1eacc040"))
    band.read()            # b"picc_data=...&cmac=..." (counter 1), 64 bytes: OSDP's limit
    band.read()            # counter 2
    band.skip(3)           # read 3 times by something else (a skimmer): counter now 5
    band.uid_only()        # what a UID-only "magic" clone of this band sends: the 7-byte UID

Keys as the site provisions them (docs/credentials.md): SDMMetaReadKey =
CMAC(master, "compound/sdm-meta-read-key/v1"); SDMFileReadKey = AN10922(master, UID).
"""

from __future__ import annotations

import os
import zlib
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

META_LABEL = b"compound/sdm-meta-read-key/v1"
URL_PREFIX = "https://band.example/t?"


def cmac(key: bytes, msg: bytes) -> bytes:
    c = CMAC(algorithms.AES(key))
    c.update(msg)
    return c.finalize()


def _aes_block(key: bytes, block: bytes) -> bytes:
    e = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # one raw block
    return e.update(block) + e.finalize()


def _shift(block: bytes) -> bytes:
    n = int.from_bytes(block, "big") << 1
    if n >> 128:
        n ^= 0x87
    return (n & ((1 << 128) - 1)).to_bytes(16, "big")


def an10922(master: bytes, uid: bytes) -> bytes:
    """AN10922 AES-128 diversification, input 0x01 || UID padded to 32 bytes."""
    k1 = _shift(_aes_block(master, bytes(16)))
    k2 = _shift(k1)
    m = b"\x01" + uid
    m = m + b"\x80" + bytes(31 - len(m))
    x = _aes_block(master, m[:16])
    last = bytes(a ^ b ^ c for a, b, c in zip(x, m[16:], k2, strict=True))
    return _aes_block(master, last)


def sun_mac(file_key: bytes, uid: bytes, ctr: int, mac_input: bytes = b"") -> bytes:
    """SDMMAC: odd bytes of CMAC(SesSDMFileReadMACKey, input), the session key from SV2."""
    session = cmac(file_key, bytes.fromhex("3cc300010080") + uid + ctr.to_bytes(3, "little"))
    return cmac(session, mac_input)[1::2]


def picc_data(meta_key: bytes, uid: bytes, ctr: int, pad: bytes) -> bytes:
    """Encrypted PICCData: AES-CBC, zero IV, over C7 || UID || counter LE || 5 random bytes."""
    e = Cipher(algorithms.AES(meta_key), modes.CBC(bytes(16))).encryptor()
    return e.update(b"\xc7" + uid + ctr.to_bytes(3, "little") + pad) + e.finalize()


class SimBand:
    """One provisioned band (see the module docstring). ``plain``: mirror UID and counter
    in the clear (``uid=..&ctr=..&cmac=..``) instead of encrypted PICCData."""

    def __init__(self, master_key: bytes, uid: bytes, *, counter: int = 0,
                 plain: bool = False) -> None:  # fmt: skip
        assert len(uid) == 7
        self.uid = uid
        self.counter = counter
        self.plain = plain
        self.meta_key = cmac(master_key, META_LABEL)
        self.file_key = an10922(master_key, uid)

    @property
    def wristband(self) -> str:
        return self.uid.hex()

    def read(self, *, full_url: bool = False) -> bytes:
        """The SUN query a reader passes on (``full_url``: the whole NDEF URL, longer than
        the 64 bytes an OSDP card read carries); each read raises the counter by one."""
        self.counter += 1
        mac = sun_mac(self.file_key, self.uid, self.counter).hex().upper()
        if self.plain:
            query = f"uid={self.uid.hex().upper()}&ctr={self.counter:06X}&cmac={mac}"
        else:
            enc = picc_data(self.meta_key, self.uid, self.counter, os.urandom(5))
            query = f"picc_data={enc.hex().upper()}&cmac={mac}"
        return ((URL_PREFIX if full_url else "") + query).encode("ascii")

    def skip(self, reads: int) -> None:
        """The band was read ``reads`` times outside the system (its counter moved on)."""
        self.counter += reads

    def uid_only(self) -> bytes:
        """What a UID-only clone of this band presents: its UID and nothing else."""
        return self.uid


# --------------------------------------------------------------------------- a chip to provision

FACTORY_KEY = bytes(16)  # every key of a new NTAG 424 DNA
KEY_SLOTS = 5
NDEF_FILE = 2
NDEF_FILE_SIZE = 256


class ChipError(Exception):
    """What the chip answers instead of 91 00: ``status`` as NXP names it."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class SimChip:
    """An NTAG 424 DNA as it leaves the factory (all keys zero, SDM off), with the operations
    provisioning needs, at the level of the chip's commands (AN12196 §6): authenticate with a
    key slot, ChangeKey (needs key 0 authenticated; slot 0 itself, or the old key for others),
    WriteData to the NDEF file, ChangeFileSettings with SDM, and a plain read of the NDEF file
    as a phone or reader sees it (SUN mirrored in, counter raised, once SDM is on).

    Secure messaging (AES session keys, command MACs) is not modelled: the transport under
    test talks at the command level. ``removed``: the band left the field; every command fails.
    """

    def __init__(self, uid: bytes) -> None:
        assert len(uid) == 7
        self.uid = uid
        self.keys = [FACTORY_KEY] * KEY_SLOTS
        self.key_versions = [0] * KEY_SLOTS
        self.ndef = bytearray(NDEF_FILE_SIZE)
        self.sdm: dict[str, int] | None = None
        self.counter = 0
        self.authenticated: int | None = None
        self.removed = False

    def _present(self) -> None:
        if self.removed:
            raise ChipError("NO_TAG", "no band in the field")

    def authenticate(self, key_no: int, key: bytes) -> None:
        self._present()
        if not 0 <= key_no < KEY_SLOTS:
            raise ChipError("PARAMETER_ERROR", f"no key {key_no}")
        if key != self.keys[key_no]:
            self.authenticated = None
            raise ChipError("AUTHENTICATION_ERROR", f"key {key_no} does not match")
        self.authenticated = key_no

    def change_key(self, key_no: int, new_key: bytes, version: int, old_key: bytes) -> None:
        self._present()
        if self.authenticated != 0:
            raise ChipError("PERMISSION_DENIED", "authenticate with key 0 first")
        if key_no != 0 and old_key != self.keys[key_no]:
            raise ChipError("INTEGRITY_ERROR", f"old key {key_no} does not match")
        if len(new_key) != 16:
            raise ChipError("LENGTH_ERROR", "a key is 16 bytes")
        self.keys[key_no] = bytes(new_key)
        self.key_versions[key_no] = version
        if key_no == 0:
            self.authenticated = None  # the session key was derived from the old key 0

    def write_ndef(self, offset: int, data: bytes) -> None:
        self._present()
        if self.authenticated != 0:
            raise ChipError("PERMISSION_DENIED", "write access needs key 0")
        if offset < 0 or offset + len(data) > NDEF_FILE_SIZE:
            raise ChipError("BOUNDARY_ERROR", "outside the NDEF file")
        self.ndef[offset : offset + len(data)] = data

    def change_file_settings(self, file_no: int, sdm: dict[str, int]) -> None:
        """``sdm``: meta_key, file_key (key slots), picc_offset, mac_input_offset, mac_offset."""
        self._present()
        if self.authenticated != 0:
            raise ChipError("PERMISSION_DENIED", "file settings need key 0")
        if file_no != NDEF_FILE:
            raise ChipError("PARAMETER_ERROR", "SDM is on the NDEF file only here")
        need = {"meta_key", "file_key", "picc_offset", "mac_input_offset", "mac_offset"}
        if set(sdm) != need or sdm["mac_offset"] + 16 > NDEF_FILE_SIZE:
            raise ChipError("PARAMETER_ERROR", "SDM settings incomplete or out of range")
        if (
            sdm["picc_offset"] + 32 > sdm["mac_input_offset"]
            or sdm["mac_input_offset"] > sdm["mac_offset"]
        ):
            raise ChipError("PARAMETER_ERROR", "SDM offsets overlap")
        self.sdm = dict(sdm)

    def read_ndef(self) -> bytes:
        """The NDEF file as an unauthenticated reader reads it (the band's tap)."""
        self._present()
        data = bytearray(self.ndef)
        if self.sdm is not None:
            self.counter += 1
            s = self.sdm
            meta, file_key = self.keys[s["meta_key"]], self.keys[s["file_key"]]
            enc = picc_data(meta, self.uid, self.counter, os.urandom(5))
            data[s["picc_offset"] : s["picc_offset"] + 32] = enc.hex().upper().encode()
            mac_input = bytes(data[s["mac_input_offset"] : s["mac_offset"]])
            mac = sun_mac(file_key, self.uid, self.counter, mac_input)
            data[s["mac_offset"] : s["mac_offset"] + 16] = mac.hex().upper().encode()
        return bytes(data)


class SimChipTransport:
    """A band transport (gateway/checkpoints/bandwriter.py ``BandTransport``) over chips laid on
    a simulated reader one after the other: ``present(chip)``, then the provisioning runs."""

    def __init__(self, *chips: SimChip) -> None:
        self.queue = list(chips)
        self.chip: SimChip | None = None
        self.log: list[str] = []

    def present(self, chip: SimChip) -> None:
        self.queue.append(chip)

    def _on(self) -> SimChip:
        if self.chip is None:
            raise ChipError("NO_TAG", "no band selected")
        return self.chip

    def wait_for_band(self, timeout_s: float) -> bytes:
        if not self.queue:
            raise ChipError("NO_TAG", f"no band presented within {timeout_s:g} s")
        self.chip = self.queue.pop(0)
        self.chip.authenticated = None
        self.log.append("select")
        return self.chip.uid

    def authenticate(self, key_no: int, key: bytes) -> None:
        self.log.append(f"auth {key_no}")
        self._on().authenticate(key_no, key)

    def change_key(self, key_no: int, new_key: bytes, version: int, old_key: bytes) -> None:
        self.log.append(f"change_key {key_no}")
        self._on().change_key(key_no, new_key, version, old_key)

    def write_ndef(self, offset: int, data: bytes) -> None:
        self.log.append("write_ndef")
        self._on().write_ndef(offset, data)

    def change_file_settings(self, file_no: int, sdm: dict[str, int]) -> None:
        self.log.append("change_file_settings")
        self._on().change_file_settings(file_no, sdm)

    def read_ndef(self) -> bytes:
        self.log.append("read_ndef")
        return self._on().read_ndef()


# ------------------------------------------------------------- the chip at the level of APDUs

# Status words (NT4H2421Gx §10.1; ISO/IEC 7816-4 for the ISO commands).
SW_OK = b"\x91\x00"
SW_MORE = b"\x91\xaf"
SW_ILLEGAL_COMMAND = b"\x91\x1c"
SW_INTEGRITY = b"\x91\x1e"
SW_NO_SUCH_KEY = b"\x91\x40"
SW_LENGTH = b"\x91\x7e"
SW_PERMISSION = b"\x91\x9d"
SW_PARAMETER = b"\x91\x9e"
SW_AUTH = b"\x91\xae"
SW_BOUNDARY = b"\x91\xbe"
SW_ABORTED = b"\x91\xca"
ISO_OK = b"\x90\x00"
ISO_WRONG_LENGTH = b"\x67\x00"
ISO_SECURITY = b"\x69\x82"
ISO_NOT_FOUND = b"\x6a\x82"
ISO_WRONG_P1P2 = b"\x6a\x86"
ISO_WRONG_OFFSET = b"\x6b\x00"
ISO_INS = b"\x6d\x00"
ISO_CLA = b"\x6e\x00"

NDEF_AID = bytes.fromhex("d2760000850101")
FILE_IDS = {bytes.fromhex("e103"): 1, bytes.fromhex("e104"): 2, bytes.fromhex("e105"): 3}
FREE, NEVER = 0xE, 0xF
# The capability container as the chip ships (file 01, NFC Forum T4T: NDEF file E104, 256
# bytes, read and write free).
FACTORY_CC = bytes.fromhex("001720010000ff0406e104010000000506e10500808283") + bytes(9)


def _cbc(key: bytes, iv: bytes, data: bytes, *, decrypt: bool = False) -> bytes:
    c = Cipher(algorithms.AES(key), modes.CBC(iv))
    op = c.decryptor() if decrypt else c.encryptor()
    return op.update(data) + op.finalize()


def _rotl(data: bytes) -> bytes:
    return data[1:] + data[:1]


def _mac8(key: bytes, msg: bytes) -> bytes:
    return cmac(key, msg)[1::2]


def _iso_pad(data: bytes) -> bytes:
    data += b"\x80"
    return data + bytes(-len(data) % 16)


def _iso_unpad(data: bytes) -> bytes | None:
    body = data.rstrip(b"\x00")
    if not body.endswith(b"\x80") or len(data) - len(body) > 15:
        return None
    return body[:-1]


def _crc32nk(data: bytes) -> bytes:
    return ((zlib.crc32(data) ^ 0xFFFFFFFF) & 0xFFFFFFFF).to_bytes(4, "little")


class _Refuse(Exception):
    """Inside the chip: answer with this status word (and end any session)."""

    def __init__(self, sw: bytes) -> None:
        super().__init__(sw.hex())
        self.sw = sw


class _File:
    def __init__(self, size: int, comm: int, rw: int, change: int, read: int, write: int,
                 data: bytes = b"") -> None:  # fmt: skip
        self.data = bytearray(data.ljust(size, b"\x00"))
        self.comm, self.rw, self.change, self.read, self.write = comm, rw, change, read, write
        self.sdm: dict[str, int] | None = None


class _Session:
    def __init__(self, key_no: int, ti: bytes, enc: bytes, mac: bytes) -> None:
        self.key_no, self.ti, self.enc, self.mac, self.ctr = key_no, ti, enc, mac, 0

    def c(self, delta: int = 0) -> bytes:
        return ((self.ctr + delta) & 0xFFFF).to_bytes(2, "little")


class ApduChip:
    """A factory-fresh NTAG 424 DNA answering ISO/IEC 7816-4 APDUs (``exchange``) with EV2
    secure messaging, as the datasheet (NT4H2421Gx) and AN12196 describe it: ISOSelectFile
    (the NDEF application D2760000850101, files E103/E104/E105), ISOReadBinary,
    ISOUpdateBinary, AuthenticateEV2First (71, AF), ChangeKey (C4), ChangeFileSettings (5F,
    SDM with encrypted PICCData and SDMMAC), WriteData (8D) and ReadData (AD) in Plain or Full
    mode as the file says. Its own crypto, nothing from the gateway.

    Modelled choices (where the datasheet leaves room, said here so a test can rely on it):
    CmdCtr rises for every native command answered 91 00 while authenticated, Plain ones
    included; any error status ends the session; the SUN mirror (and the read counter) is
    taken at the first read of the NDEF file after it was selected, so a reader that reads
    in chunks gets one coherent message; SDM is modelled for encrypted PICCData (meta key
    0..4) with SDMMAC (file key 0..4), ASCII, no SDMENCFileData.

    ``removed``: the band left the field (the reader fails every exchange).
    ``random``: the chip's RndB and TI source (os.urandom).
    """

    def __init__(self, uid: bytes, *, random: Any = os.urandom) -> None:
        assert len(uid) == 7
        self.uid = uid
        self.random = random
        self.keys = [FACTORY_KEY] * KEY_SLOTS
        self.key_versions = [0] * KEY_SLOTS
        self.files = {
            1: _File(32, 0, 0, 0, FREE, 0, FACTORY_CC),
            2: _File(NDEF_FILE_SIZE, 0, FREE, 0, FREE, FREE),
            3: _File(128, 3, 3, 0, 2, 3),
        }
        self.counter = 0
        self.removed = False
        self.apdus: list[bytes] = []
        self.reset()

    def reset(self) -> None:
        """The field was switched off and on (a new activation): nothing selected."""
        self.app = False
        self.file: int | None = None
        self.snapshot: bytes | None = None
        self.session: _Session | None = None
        self.pending: tuple[int, bytes] | None = None

    @property
    def ndef(self) -> bytearray:
        return self.files[2].data

    def exchange(self, apdu: bytes) -> bytes:
        if self.removed:
            raise ChipError("NO_TAG", "no band in the field")
        self.apdus.append(bytes(apdu))
        try:
            if len(apdu) < 4:
                raise _Refuse(ISO_WRONG_LENGTH)
            if apdu[0] == 0x00:
                return self._iso(apdu)
            if apdu[0] != 0x90:
                raise _Refuse(ISO_CLA)
            return self._native(apdu)
        except _Refuse as refuse:
            if refuse.sw[0] == 0x91:
                self.session = None
            self.pending = None
            return refuse.sw

    # ---- ISO commands

    def _iso(self, apdu: bytes) -> bytes:
        ins, p1, p2 = apdu[1], apdu[2], apdu[3]
        lc = apdu[4] if len(apdu) > 5 else 0
        data = apdu[5 : 5 + lc]
        if ins == 0xA4:
            if p1 == 0x04 and data == NDEF_AID:
                self.reset()
                self.app = True
                return ISO_OK
            if p1 == 0x00 and self.app and data in FILE_IDS:
                self.file = FILE_IDS[data]
                self.snapshot = None
                return ISO_OK
            raise _Refuse(ISO_NOT_FOUND)
        if ins in (0xB0, 0xD6):
            if self.file is None:
                raise _Refuse(ISO_NOT_FOUND)
            if p1 & 0x80:
                raise _Refuse(ISO_WRONG_P1P2)
            f, offset = self.files[self.file], p1 << 8 | p2
            if ins == 0xB0:
                if len(apdu) != 5:
                    raise _Refuse(ISO_WRONG_LENGTH)
                if FREE not in (f.read, f.rw):
                    raise _Refuse(ISO_SECURITY)
                length = apdu[4] or 256
                if offset + length > len(f.data):
                    raise _Refuse(ISO_WRONG_OFFSET)
                if self.snapshot is None:
                    self.snapshot = self._mirror(self.file)
                return self.snapshot[offset : offset + length] + ISO_OK
            if len(apdu) != 5 + lc or lc == 0:
                raise _Refuse(ISO_WRONG_LENGTH)
            if FREE not in (f.write, f.rw):
                raise _Refuse(ISO_SECURITY)
            if offset + lc > len(f.data):
                raise _Refuse(ISO_WRONG_OFFSET)
            f.data[offset : offset + lc] = data
            return ISO_OK
        raise _Refuse(ISO_INS)

    def _mirror(self, file_no: int) -> bytes:
        f = self.files[file_no]
        data = bytearray(f.data)
        if f.sdm is not None and self.session is None:
            self.counter += 1
            s = f.sdm
            enc = picc_data(self.keys[s["meta_key"]], self.uid, self.counter, self.random(5))
            data[s["picc_offset"] : s["picc_offset"] + 32] = enc.hex().upper().encode()
            mac_input = bytes(data[s["mac_input_offset"] : s["mac_offset"]])
            mac = sun_mac(self.keys[s["file_key"]], self.uid, self.counter, mac_input)
            data[s["mac_offset"] : s["mac_offset"] + 16] = mac.hex().upper().encode()
        return bytes(data)

    # ---- native commands

    def _native(self, apdu: bytes) -> bytes:
        cmd = apdu[1]
        if len(apdu) == 5:
            data = b""
        elif len(apdu) >= 7 and apdu[4] == len(apdu) - 6:
            data = apdu[5:-1]
        else:
            raise _Refuse(SW_LENGTH)
        if not self.app:
            raise _Refuse(SW_PERMISSION)
        if cmd == 0xAF and self.pending is not None:
            return self._auth_part2(data)
        self.pending = None
        if cmd == 0x71:
            return self._auth_part1(data)
        handlers = {0xC4: self._change_key, 0x5F: self._change_file_settings,
                    0x8D: self._write_data, 0xAD: self._read_data}  # fmt: skip
        if cmd not in handlers:
            raise _Refuse(SW_ILLEGAL_COMMAND)
        return handlers[cmd](cmd, data)

    def _auth_part1(self, data: bytes) -> bytes:
        self.session = None
        if len(data) < 2 or len(data) != 2 + data[1]:
            raise _Refuse(SW_LENGTH)
        if data[0] >= KEY_SLOTS:
            raise _Refuse(SW_NO_SUCH_KEY)
        rnd_b = self.random(16)
        self.pending = (data[0], rnd_b)
        return _cbc(self.keys[data[0]], bytes(16), rnd_b) + SW_MORE

    def _auth_part2(self, data: bytes) -> bytes:
        assert self.pending is not None
        key_no, rnd_b = self.pending
        self.pending = None
        if len(data) != 32:
            raise _Refuse(SW_LENGTH)
        key = self.keys[key_no]
        plain = _cbc(key, bytes(16), data, decrypt=True)
        rnd_a = plain[:16]
        if plain[16:] != _rotl(rnd_b):
            raise _Refuse(SW_AUTH)
        ti = self.random(4)
        mix = bytes(a ^ b for a, b in zip(rnd_a[2:8], rnd_b[:6], strict=True))
        ctx = rnd_a[:2] + mix + rnd_b[6:] + rnd_a[8:]
        enc = cmac(key, bytes.fromhex("a55a00010080") + ctx)
        mac = cmac(key, bytes.fromhex("5aa500010080") + ctx)
        self.session = _Session(key_no, ti, enc, mac)
        return _cbc(key, bytes(16), ti + _rotl(rnd_a) + bytes(12)) + SW_OK

    def _access(self, *rights: int) -> None:
        """Pass if one of ``rights`` is free or the session's key; AUTHENTICATION_ERROR if a
        key is needed and not authenticated, PERMISSION_DENIED if no access at all."""
        if FREE in rights:
            return
        if self.session is not None and self.session.key_no in rights:
            return
        raise _Refuse(SW_PERMISSION if all(r == NEVER for r in rights) else SW_AUTH)

    def _unwrap_full(self, cmd: int, header_len: int, data: bytes) -> tuple[bytes, bytes]:
        """(header, plain data) of a Full-mode command, its MAC checked."""
        s = self.session
        if s is None:
            raise _Refuse(SW_AUTH)
        if len(data) < header_len + 8 or (len(data) - header_len - 8) % 16:
            raise _Refuse(SW_LENGTH)
        body, mac = data[:-8], data[-8:]
        if _mac8(s.mac, bytes((cmd,)) + s.c() + s.ti + body) != mac:
            raise _Refuse(SW_INTEGRITY)
        header, enc = body[:header_len], body[header_len:]
        if not enc:
            return header, b""
        iv = _iv(s.enc, b"\xa5\x5a" + s.ti + s.c() + bytes(8))
        plain = _iso_unpad(_cbc(s.enc, iv, enc, decrypt=True))
        if plain is None:
            raise _Refuse(SW_INTEGRITY)
        return header, plain

    def _unwrap_mac(self, cmd: int, header_len: int, data: bytes) -> tuple[bytes, bytes]:
        s = self.session
        if s is None:
            raise _Refuse(SW_AUTH)
        if len(data) < header_len + 8:
            raise _Refuse(SW_LENGTH)
        body, mac = data[:-8], data[-8:]
        if _mac8(s.mac, bytes((cmd,)) + s.c() + s.ti + body) != mac:
            raise _Refuse(SW_INTEGRITY)
        return body[:header_len], body[header_len:]

    def _ok(self, data: bytes = b"", *, mode: int = 0) -> bytes:
        """91 00 with ``data`` in the comm ``mode`` (0 Plain, 1 MAC, 3 Full); CmdCtr + 1."""
        s = self.session
        if s is None:
            return data + SW_OK
        s.ctr += 1
        if mode == 3 and data:
            iv = _iv(s.enc, b"\x5a\xa5" + s.ti + s.c() + bytes(8))
            data = _cbc(s.enc, iv, _iso_pad(data))
        if mode in (1, 3):
            data += _mac8(s.mac, b"\x00" + s.c() + s.ti + data)
        return data + SW_OK

    def _change_key(self, cmd: int, data: bytes) -> bytes:
        s = self.session
        if s is None or s.key_no != 0:
            raise _Refuse(SW_AUTH)  # the AppMasterKey changes keys
        header, plain = self._unwrap_full(cmd, 1, data)
        key_no = header[0]
        if key_no >= KEY_SLOTS:
            raise _Refuse(SW_NO_SUCH_KEY)
        if key_no == s.key_no:
            if len(plain) != 17:
                raise _Refuse(SW_LENGTH)
            self.keys[key_no], self.key_versions[key_no] = plain[:16], plain[16]
            self.session = None  # the session's key is gone: no MAC on the reply
            return SW_OK
        if len(plain) != 21:
            raise _Refuse(SW_LENGTH)
        new = bytes(a ^ b for a, b in zip(plain[:16], self.keys[key_no], strict=True))
        if _crc32nk(new) != plain[17:21]:
            raise _Refuse(SW_INTEGRITY)
        self.keys[key_no], self.key_versions[key_no] = new, plain[16]
        return self._ok(mode=1)

    def _change_file_settings(self, cmd: int, data: bytes) -> bytes:
        if not data or data[0] not in self.files:
            raise _Refuse(SW_PARAMETER if data else SW_LENGTH)
        f = self.files[data[0]]
        self._access(f.change)
        if self.session is None:
            raise _Refuse(SW_AUTH)
        _, p = self._unwrap_full(cmd, 1, data)
        if len(p) < 3:
            raise _Refuse(SW_LENGTH)
        option, rights = p[0], p[1] << 8 | p[2]
        sdm: dict[str, int] | None = None
        if option & 0x40:
            if data[0] != 2:
                raise _Refuse(SW_PERMISSION)  # SDM is for the NDEF file only
            sdm = self._parse_sdm(p[3:])
        elif len(p) != 3:
            raise _Refuse(SW_LENGTH)
        f.comm = option & 0x03
        f.rw, f.change = rights >> 12, rights >> 8 & 15
        f.read, f.write = rights >> 4 & 15, rights & 15
        f.sdm = sdm
        if sdm is not None:
            self.counter = 0  # enabling SDM resets SDMReadCtr
        return self._ok(mode=1)

    def _parse_sdm(self, p: bytes) -> dict[str, int]:
        if len(p) < 3:
            raise _Refuse(SW_LENGTH)
        options, meta, file_key = p[0], p[2] >> 4, p[2] & 15
        if p[1] >> 4 != 0xF or options & 0x30 or not options & 0x01:
            raise _Refuse(SW_PARAMETER)  # RFU nibble; counter limit, ENC data, binary: not modelled
        if meta >= KEY_SLOTS or file_key >= KEY_SLOTS or options & 0xC0 != 0xC0:
            raise _Refuse(SW_PARAMETER)  # modelled: encrypted PICCData with UID and counter
        if len(p) != 3 + 9:
            raise _Refuse(SW_LENGTH)
        picc, mac_in, mac = (int.from_bytes(p[i : i + 3], "little") for i in (3, 6, 9))
        if picc + 32 > mac_in or mac_in > mac or mac + 16 > NDEF_FILE_SIZE:
            raise _Refuse(SW_PARAMETER)
        return {"meta_key": meta, "file_key": file_key, "picc_offset": picc,
                "mac_input_offset": mac_in, "mac_offset": mac}  # fmt: skip

    def _file_args(self, data: bytes) -> tuple[int, _File, int, int]:
        if len(data) < 7:
            raise _Refuse(SW_LENGTH)
        if data[0] not in self.files:
            raise _Refuse(SW_PARAMETER)
        f = self.files[data[0]]
        offset, length = int.from_bytes(data[1:4], "little"), int.from_bytes(data[4:7], "little")
        return data[0], f, offset, length

    def _write_data(self, cmd: int, data: bytes) -> bytes:
        _, f, offset, length = self._file_args(data)
        self._access(f.write, f.rw)
        if f.comm == 3:
            _, body = self._unwrap_full(cmd, 7, data)
        elif f.comm == 1:
            _, body = self._unwrap_mac(cmd, 7, data)
        else:
            body = data[7:]
        if len(body) != length or length == 0:
            raise _Refuse(SW_LENGTH)
        if offset + length > len(f.data):
            raise _Refuse(SW_BOUNDARY)
        f.data[offset : offset + length] = body
        return self._ok(mode=f.comm)

    def _read_data(self, cmd: int, data: bytes) -> bytes:
        file_no, f, offset, length = self._file_args(data)
        if len(data) != 7:
            raise _Refuse(SW_LENGTH)
        self._access(f.read, f.rw)
        end = len(f.data) if length == 0 else offset + length
        if offset >= len(f.data) or end > len(f.data):
            raise _Refuse(SW_BOUNDARY)
        return self._ok(self._mirror(file_no)[offset:end], mode=f.comm)


def _iv(key: bytes, block: bytes) -> bytes:
    """The IV of a Full-mode message: the block encrypted once (AES-ECB) under the ENC key."""
    return _aes_block(key, block)


class SimApduReader:
    """A card reader with chips laid on it one after another: ``activate`` (the next chip's
    UID, as a PN532's InListPassiveTarget reports it) and ``exchange`` (one APDU), the link
    gateway/checkpoints/ev2link.py ``Ev2Transport`` drives."""

    def __init__(self, *chips: ApduChip) -> None:
        self.queue = list(chips)
        self.chip: ApduChip | None = None

    def present(self, chip: ApduChip) -> None:
        self.queue.append(chip)

    def activate(self, timeout_s: float) -> bytes:
        if not self.queue:
            raise ChipError("NO_TAG", f"no band presented within {timeout_s:g} s")
        self.chip = self.queue.pop(0)
        self.chip.reset()
        return self.chip.uid

    def exchange(self, apdu: bytes) -> bytes:
        if self.chip is None:
            raise ChipError("NO_TAG", "no band activated")
        return self.chip.exchange(apdu)
