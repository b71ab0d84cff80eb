# NTAG 424 DNA SUN (Secure Unique NFC) on the node: read a band's NDEF file over ISO-DEP
# and check its SUN message, the same rules as the gateway (gateway/credentials/sun.py;
# NXP AN12196 for SUN/SDM, AN10922 for key diversification, RFC 4493 for CMAC).  Shares
# golden vectors with the gateway (tests/vectors/ntag424_sun.json), not code.
#
# The gateway is what verifies a band (it holds the site's keys); the node reads the
# message and passes it on.  Verifying here too lets a node that holds a band key check a
# read while its bus is down.  Sans-IO: the APDU exchange is injected.
#
# Usage:
#   url = ndef_uri(read_ndef(lambda apdu: nfc.data_exchange(tg, apdu, clock_ms)))
#   picc, mac, mac_input = sun_params(url)
#   uid, ctr = verify(meta_key, file_key, picc, mac, mac_input)   # or SunError

from binascii import unhexlify

import aes128
from micropython import const
# Reading a band lives in sunread.py (all a node loads at a tap); re-exported here.
from sunread import (  # noqa: F401
    MAX_NDEF,
    NDEF_AID,
    NDEF_FILE,
    READ_CHUNK,
    SunError,
    ndef_uri,
    read_binary_apdu,
    read_ndef,
    select_app_apdu,
    select_file_apdu,
)

_SV1 = b"\xc3\x3c\x00\x01\x00\x80"  # -> SesSDMFileReadENCKey
_SV2 = b"\x3c\xc3\x00\x01\x00\x80"  # -> SesSDMFileReadMACKey
_PICC_TAG = const(0xC7)  # UID and counter mirrored, 7-byte UID
UID_LEN = const(7)


def _xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))


def _dbl(block):
    out = bytearray(16)
    carry = 0
    for i in range(15, -1, -1):
        v = block[i]
        out[i] = ((v << 1) | carry) & 0xFF
        carry = v >> 7
    if carry:
        out[15] ^= 0x87
    return bytes(out)


def cmac(key, msg):
    """AES-128-CMAC (RFC 4493), the full 16-byte tag."""
    k1 = _dbl(aes128.ecb_encrypt(key, bytes(16)))
    n = len(msg)
    if n and n % 16 == 0:
        last = _xor(msg[n - 16:], k1)
        head = msg[:n - 16]
    else:
        cut = n - n % 16
        last = _xor(bytes(msg[cut:]) + b"\x80" + bytes(15 - n % 16), _dbl(k1))
        head = msg[:cut]
    x = bytes(16)
    for i in range(0, len(head), 16):
        x = aes128.ecb_encrypt(key, _xor(x, head[i:i + 16]))
    return aes128.ecb_encrypt(key, _xor(x, last))


def truncate_mac(full):
    """SDMMAC: the odd-indexed bytes of the 16-byte CMAC (AN12196)."""
    return bytes(full[i] for i in range(1, 16, 2))


def _ctr_le(ctr):
    return bytes((ctr & 0xFF, (ctr >> 8) & 0xFF, (ctr >> 16) & 0xFF))


def sv1(uid, ctr):
    return _SV1 + bytes(uid) + _ctr_le(ctr)


def sv2(uid, ctr):
    return _SV2 + bytes(uid) + _ctr_le(ctr)


def session_enc_key(file_key, uid, ctr):
    return cmac(_key(file_key, "sdm_file_read_key"), sv1(uid, ctr))


def session_mac_key(file_key, uid, ctr):
    return cmac(_key(file_key, "sdm_file_read_key"), sv2(uid, ctr))


def sdmmac(file_key, uid, ctr, mac_input=b""):
    """The 8-byte SDMMAC a genuine band gives for this UID, counter and MAC input."""
    return truncate_mac(cmac(session_mac_key(file_key, uid, ctr), bytes(mac_input)))


def _key(key, field):
    if not isinstance(key, (bytes, bytearray)) or len(key) != 16:
        raise SunError("malformed", field, "must be 16 bytes")
    return bytes(key)


def _blob(value, field, length):
    """Bytes, or hex text as the band mirrors it into its URL."""
    if isinstance(value, str):
        try:
            value = unhexlify(value.strip())
        except (ValueError, TypeError):
            raise SunError("malformed", field, "not hex")
    if not isinstance(value, (bytes, bytearray)):
        raise SunError("malformed", field, "must be bytes or hex text")
    if length is not None and len(value) != length:
        raise SunError("malformed", field, "must be %d bytes, got %d" % (length, len(value)))
    return bytes(value)


def decrypt_picc(meta_key, enc):
    """PICCData (AES-CBC, zero IV) -> (uid, counter); SunError if it is not one."""
    plain = aes128.cbc_decrypt(_key(meta_key, "sdm_meta_read_key"), bytes(16),
                               _blob(enc, "picc_data", 16))
    if plain[0] != _PICC_TAG:
        raise SunError("bad_picc_data", "picc_data",
                       "does not decrypt to a UID and counter (wrong key or forged)")
    c = plain[1 + UID_LEN:4 + UID_LEN]
    return plain[1:1 + UID_LEN], c[0] | (c[1] << 8) | (c[2] << 16)


def _check_mac(file_key, uid, ctr, mac_input, mac):
    given = _blob(mac, "sdmmac", 8)
    want = sdmmac(file_key, uid, ctr, _blob(mac_input, "mac_input", None))
    diff = 0
    for a, b in zip(want, given):  # constant time: no byte-by-byte timing oracle
        diff |= a ^ b
    if diff:
        raise SunError("bad_mac", "sdmmac", "does not match: cloned, forged or corrupted")
    return uid, ctr


def verify(meta_key, file_key, enc_picc, mac, mac_input=b""):
    """An encrypted-PICCData SUN read -> authentic (uid, counter), or SunError."""
    uid, ctr = decrypt_picc(meta_key, enc_picc)
    return _check_mac(file_key, uid, ctr, mac_input, mac)


def verify_plain(file_key, uid, ctr, mac, mac_input=b""):
    """A SUN read with UID and counter mirrored in the clear -> (uid, counter), or SunError."""
    if not isinstance(ctr, int) or not 0 <= ctr <= 0xFFFFFF:
        raise SunError("malformed", "read_ctr", "outside the 24-bit counter range")
    return _check_mac(file_key, _blob(uid, "uid", UID_LEN), ctr, mac_input, mac)


def decrypt_file_data(file_key, uid, ctr, enc):
    """SDMENCFileData of an authentic read (AES-CBC under SesSDMFileReadENCKey, IV =
    AES-ECB(that key, counter LE || 13 zero bytes))."""
    data = _blob(enc, "enc_file_data", None)
    if not data or len(data) % 16:
        raise SunError("malformed", "enc_file_data", "must be a non-empty multiple of 16 bytes")
    key = session_enc_key(file_key, uid, ctr)
    return aes128.cbc_decrypt(key, aes128.ecb_encrypt(key, _ctr_le(ctr) + bytes(13)), data)


def diversify(master, uid, aid=b"", system_id=b""):
    """AN10922 AES-128 key diversification: the band's own key from the site master key
    (CMAC over 0x01 || UID || AID || system id, always padded to 32 bytes)."""
    master = _key(master, "master_key")
    m = _blob(uid, "uid", UID_LEN) + bytes(aid) + bytes(system_id)
    if len(m) > 31:
        raise SunError("malformed", "diversification_input", "must be at most 31 bytes")
    k1 = _dbl(aes128.ecb_encrypt(master, bytes(16)))
    d = b"\x01" + m
    if len(d) < 32:
        d += b"\x80" + bytes(31 - len(d))
        tweak = _dbl(k1)
    else:
        tweak = k1
    first = aes128.ecb_encrypt(master, d[:16])
    return aes128.ecb_encrypt(master, _xor(first, _xor(d[16:], tweak)))


def sun_params(url, picc="picc_data", mac="cmac", enc="enc"):
    """(PICCData hex, SDMMAC hex, MAC input bytes) from a SUN URL.  The MAC input is empty
    (SDMMACInputOffset = SDMMACOffset, the patrol set-up) unless the URL mirrors encrypted
    file data, which is then MACed from its first hex digit up to the SDMMAC (AN12196)."""
    q = url.find("?")
    if q < 0:
        raise SunError("malformed", "url", "no query")
    found = {}
    pos = q + 1
    for part in url[q + 1:].split("&"):
        k, _, v = part.partition("=")
        found[k] = (pos + len(k) + 1, v)
        pos += len(part) + 1
    if picc not in found or mac not in found:
        raise SunError("malformed", "url", "needs %s= and %s=" % (picc, mac))
    mac_at = found[mac][0]
    mac_input = b""
    if enc in found:
        mac_input = url[found[enc][0]:mac_at].encode()
    return found[picc][1], found[mac][1], mac_input
