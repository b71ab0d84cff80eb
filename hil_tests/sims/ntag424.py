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
