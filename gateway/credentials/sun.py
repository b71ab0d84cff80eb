"""NTAG 424 DNA SUN verification, sans-IO: no I/O, no clock, no state.

At every read an NTAG 424 DNA band mirrors its UID and a 24-bit read counter (in the
clear or encrypted as PICCData) plus SDMMAC, a truncated AES-CMAC under a session key
derived from the band's own key.  A copied UID cannot produce the MAC for the next
counter value, so a cloned band is caught; a replayed read is caught by the counter rule
(:func:`check_counter`).  See docs/credentials.md for the protocol and what is left.

Everything untrusted (the bytes a band returned) goes through functions that raise
:class:`SunError` and nothing else.  A MAC that does not match is also a ``SunError``
(``kind="bad_mac"``): the caller refuses the tap and records the error's ``as_dict()``.

References: NXP AN12196 (SUN/SDM), NXP AN10922 (key diversification), RFC 4493 (CMAC).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

from gateway.errors import RemoteProtocolError

KEY_LEN = 16
UID_LEN = 7  # NTAG 424 DNA has a 7-byte UID (random ID is not used for patrol bands)
PICC_DATA_LEN = 16
SDMMAC_LEN = 8
READ_CTR_MAX = 0xFFFFFF  # 24 bits; the band refuses further reads after this

# AN12196 session vector prefixes: label (2 bytes), counter 0001, key length 0080.
_SV1_PREFIX = bytes.fromhex("c33c00010080")  # -> SesSDMFileReadENCKey
_SV2_PREFIX = bytes.fromhex("3cc300010080")  # -> SesSDMFileReadMACKey
# PICCDataTag: bit 7 UID mirrored, bit 6 counter mirrored, low nibble UID length.  A
# band set up for patrol mirrors both and has a 7-byte UID; anything else is a wrong
# key or not a SUN message at all.
_PICC_DATA_TAG = 0x80 | 0x40 | UID_LEN
# AN10922 AES-128 diversification constant.
_DIV_AES128 = 0x01
_DIV_MAX_INPUT = 31

SunErrorKind = Literal["malformed", "bad_picc_data", "bad_mac"]


class SunError(RemoteProtocolError):
    """SUN data from a band is malformed or not authentic: refuse the tap.

    ``kind`` says which: ``"malformed"`` (wrong type, length or hex), ``"bad_picc_data"``
    (PICCData did not decrypt to a UID-and-counter record: wrong key or forged) or
    ``"bad_mac"`` (the SDMMAC does not match: cloned band, forged or corrupted read).
    ``field`` names the culprit input.
    """

    def __init__(self, kind: SunErrorKind, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}", kind=kind, field=field)
        self.kind = kind
        self.field = field


@dataclass(frozen=True, slots=True)
class SunRead:
    """An authentic read: the band's UID and its 24-bit read counter."""

    uid: bytes
    read_ctr: int


@dataclass(frozen=True, slots=True)
class PiccData:
    """Decrypted PICCData (not yet authenticated: check the SDMMAC before trusting it)."""

    tag: int
    uid: bytes
    read_ctr: int


# ---- primitives ---------------------------------------------------------------------


def aes_cmac(key: bytes, message: bytes) -> bytes:
    """AES-128-CMAC (RFC 4493), the full 16-byte tag."""
    c = CMAC(algorithms.AES(key))
    c.update(message)
    return c.finalize()


def _ecb(key: bytes, block: bytes) -> bytes:
    # One block at a time: the raw AES permutation CMAC and AN10922 are built from.
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305
    return enc.update(block) + enc.finalize()


def _cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return dec.update(data) + dec.finalize()


def truncate_mac(full: bytes) -> bytes:
    """SDMMAC: the odd-indexed bytes (1, 3, ..., 15) of the 16-byte CMAC (AN12196)."""
    return full[1::2]


def sv1(uid: bytes, read_ctr: int) -> bytes:
    """Session vector for SesSDMFileReadENCKey: C33C00010080 || UID || counter (LE)."""
    return _SV1_PREFIX + uid + read_ctr.to_bytes(3, "little")


def sv2(uid: bytes, read_ctr: int) -> bytes:
    """Session vector for SesSDMFileReadMACKey: 3CC300010080 || UID || counter (LE)."""
    return _SV2_PREFIX + uid + read_ctr.to_bytes(3, "little")


def session_mac_key(file_read_key: bytes, uid: bytes, read_ctr: int) -> bytes:
    """SesSDMFileReadMACKey = CMAC(K_SDMFileRead, SV2)."""
    return aes_cmac(_key(file_read_key, "sdm_file_read_key"), sv2(uid, read_ctr))


def session_enc_key(file_read_key: bytes, uid: bytes, read_ctr: int) -> bytes:
    """SesSDMFileReadENCKey = CMAC(K_SDMFileRead, SV1)."""
    return aes_cmac(_key(file_read_key, "sdm_file_read_key"), sv1(uid, read_ctr))


def sdmmac(file_read_key: bytes, uid: bytes, read_ctr: int, mac_input: bytes = b"") -> bytes:
    """The 8-byte SDMMAC a genuine band produces for this UID, counter and MAC input."""
    return truncate_mac(aes_cmac(session_mac_key(file_read_key, uid, read_ctr), mac_input))


# ---- untrusted input ----------------------------------------------------------------


def _key(key: object, field: str) -> bytes:
    # Keys come from our own key store, but a wrong one must not surface as a
    # cryptography ValueError from deep inside a verification.
    if not isinstance(key, bytes | bytearray) or len(key) != KEY_LEN:
        raise SunError("malformed", field, f"must be {KEY_LEN} bytes")
    return bytes(key)


def _blob(value: object, field: str, length: int | None) -> bytes:
    """Bytes, or hex text as a band mirrors it into its NDEF URL."""
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 2 * 1024 or not text.isascii():
            raise SunError("malformed", field, "not hex")
        try:
            data = bytes.fromhex(text)
        except ValueError:
            raise SunError("malformed", field, "not hex") from None
    elif isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
    else:
        raise SunError("malformed", field, "must be bytes or hex text")
    if length is not None and len(data) != length:
        raise SunError("malformed", field, f"must be {length} bytes, got {len(data)}")
    return data


def _read_ctr(value: object, field: str = "read_ctr") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SunError("malformed", field, "must be an integer")
    if not 0 <= value <= READ_CTR_MAX:
        raise SunError("malformed", field, "outside the 24-bit counter range")
    return value


def decrypt_picc_data(meta_read_key: bytes, enc_picc_data: object) -> PiccData:
    """Decrypt PICCData (AES-CBC, zero IV) into tag, UID and counter (little-endian)."""
    enc = _blob(enc_picc_data, "picc_data", PICC_DATA_LEN)
    plain = _cbc_decrypt(_key(meta_read_key, "sdm_meta_read_key"), bytes(16), enc)
    if plain[0] != _PICC_DATA_TAG:
        raise SunError("bad_picc_data", "picc_data",
                       "does not decrypt to a UID and counter (wrong key or forged)")
    return PiccData(tag=plain[0], uid=plain[1:1 + UID_LEN],
                    read_ctr=int.from_bytes(plain[1 + UID_LEN:4 + UID_LEN], "little"))


def _check_mac(file_read_key: bytes, uid: bytes, read_ctr: int, mac_input: object,
               mac: object) -> SunRead:
    given = _blob(mac, "sdmmac", SDMMAC_LEN)
    data = _blob(mac_input, "mac_input", None)
    expected = sdmmac(file_read_key, uid, read_ctr, data)
    # Constant time: a timing oracle would let a forger learn the MAC byte by byte.
    if not hmac.compare_digest(expected, given):
        raise SunError("bad_mac", "sdmmac", "does not match: cloned, forged or corrupted")
    return SunRead(uid=uid, read_ctr=read_ctr)


def verify_encrypted(meta_read_key: bytes, file_read_key: bytes, enc_picc_data: object,
                     mac: object, mac_input: object = b"") -> SunRead:
    """Verify a SUN read with encrypted PICCData; the authentic UID and counter, or SunError.

    ``mac_input`` is what the band MACs: the file bytes from SDMMACInputOffset up to
    SDMMACOffset (empty when the two offsets are equal, the usual patrol set-up).
    """
    picc = decrypt_picc_data(meta_read_key, enc_picc_data)
    return _check_mac(file_read_key, picc.uid, picc.read_ctr, mac_input, mac)


def verify_plain(file_read_key: bytes, uid: object, read_ctr: object, mac: object,
                 mac_input: object = b"") -> SunRead:
    """Verify a SUN read whose UID and counter were mirrored in the clear."""
    return _check_mac(file_read_key, _blob(uid, "uid", UID_LEN), _read_ctr(read_ctr),
                      mac_input, mac)


def parse_mirrored_ctr(text: object) -> int:
    """A plain-mirrored counter: 6 hex digits, most significant first (as the band shows it)."""
    if not isinstance(text, str) or len(text) != 6:
        raise SunError("malformed", "read_ctr", "must be 6 hex digits")
    return int.from_bytes(_blob(text, "read_ctr", 3), "big")


def decrypt_file_data(file_read_key: bytes, read: SunRead, enc_file_data: object) -> bytes:
    """Decrypt SDMENCFileData of an authentic read (AES-CBC under SesSDMFileReadENCKey,
    IV = AES-ECB(that key, counter LE || 13 zero bytes))."""
    data = _blob(enc_file_data, "enc_file_data", None)
    if not data or len(data) % 16:
        raise SunError("malformed", "enc_file_data", "must be a non-empty multiple of 16 bytes")
    key = session_enc_key(file_read_key, read.uid, read.read_ctr)
    iv = _ecb(key, read.read_ctr.to_bytes(3, "little") + bytes(13))
    return _cbc_decrypt(key, iv, data)


# ---- key diversification (AN10922) ---------------------------------------------------


def _dbl(block: bytes) -> bytes:
    n = int.from_bytes(block, "big") << 1
    if n >> 128:
        n ^= 0x87
    return (n & ((1 << 128) - 1)).to_bytes(16, "big")


def diversify_key(master_key: bytes, uid: object, aid: bytes = b"",
                  system_identifier: bytes = b"") -> bytes:
    """AN10922 AES-128 diversification: the band's own key from the site master key.

    CMAC over 0x01 || UID || AID || system identifier, always padded (80 00..) to 32
    bytes -- unlike plain CMAC, which would stop at 16 -- with K2 on a padded last block
    and K1 on an exactly-full one.  A stolen band key then opens one band, not the site.
    """
    master = _key(master_key, "master_key")
    m = _blob(uid, "uid", UID_LEN) + bytes(aid) + bytes(system_identifier)
    if len(m) > _DIV_MAX_INPUT:
        raise SunError("malformed", "diversification_input",
                       f"must be at most {_DIV_MAX_INPUT} bytes")
    k1 = _dbl(_ecb(master, bytes(16)))
    d = bytes((_DIV_AES128,)) + m
    if len(d) < 32:
        d += b"\x80" + bytes(31 - len(d))
        tweak = _dbl(k1)
    else:
        tweak = k1
    last = bytes(a ^ b for a, b in zip(d[16:], tweak, strict=True))
    first = _ecb(master, d[:16])
    return _ecb(master, bytes(a ^ b for a, b in zip(first, last, strict=True)))


# ---- the counter rule -----------------------------------------------------------------

CounterOutcome = Literal["first", "next", "gap", "replay"]


@dataclass(frozen=True, slots=True)
class CounterCheck:
    """What a read counter says about a band's history.

    ``accepted`` is False only for a replay.  ``gap`` counts reads the band made outside
    the system since the last one we saw (0 unless ``outcome == "gap"``).
    """

    outcome: CounterOutcome
    accepted: bool
    gap: int


def check_counter(last_seen: int | None, read_ctr: int) -> CounterCheck:
    """Per band, the 24-bit read counter must rise strictly.

    A repeat or a lower value is a replay (refuse); a jump of more than one is a gap
    (accept, and record how many reads happened elsewhere).  ``last_seen`` is None for
    a band we have never seen verified.
    """
    ctr = _read_ctr(read_ctr)
    if last_seen is None:
        return CounterCheck("first", True, 0)
    last = _read_ctr(last_seen, "last_seen")
    if ctr <= last:
        return CounterCheck("replay", False, 0)
    if ctr == last + 1:
        return CounterCheck("next", True, 0)
    return CounterCheck("gap", True, ctr - last - 1)
