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
