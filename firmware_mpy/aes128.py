# AES-128 for the OSDP Secure Channel.
#
# Real ESP32 / RP2040 ports have `cryptolib` (hardware or mbedTLS AES) and we use it.
# The WebAssembly port and CPython have none, so a small byte-oriented AES-128
# implementation is the fallback.  It builds its tables at import (about 2 KB of RAM)
# instead of shipping them, which keeps the .mpy small.  Speed is ~1 ms/block on the
# host; on a real node the fallback is never used.
#
# Usage:  ct = ecb_encrypt(key16, block16);  out = cbc_encrypt(key16, iv16, data)

try:
    import cryptolib as _cl
except ImportError:
    _cl = None

_ECB = 1
_CBC = 2


def _xt(a):
    a <<= 1
    if a & 0x100:
        a ^= 0x11B
    return a


def _build():
    sbox = bytearray(256)
    inv = bytearray(256)
    p = q = 1
    while True:
        p = (p ^ _xt(p)) & 0xFF  # p *= 3 in GF(2^8)
        q ^= (q << 1) & 0xFF  # q /= 3
        q ^= (q << 2) & 0xFF
        q ^= (q << 4) & 0xFF
        if q & 0x80:
            q ^= 0x09
        x = q
        for s in (1, 2, 3, 4):
            x ^= ((q << s) | (q >> (8 - s))) & 0xFF
        x ^= 0x63
        sbox[p] = x
        inv[x] = p
        if p == 1:
            break
    sbox[0] = 0x63
    inv[0x63] = 0
    m2 = bytearray(256)
    m3 = bytearray(256)
    m9 = bytearray(256)
    m11 = bytearray(256)
    m13 = bytearray(256)
    m14 = bytearray(256)
    for a in range(256):
        a2 = _xt(a)
        a4 = _xt(a2)
        a8 = _xt(a4)
        m2[a] = a2
        m3[a] = a2 ^ a
        m9[a] = a8 ^ a
        m11[a] = a8 ^ a2 ^ a
        m13[a] = a8 ^ a4 ^ a
        m14[a] = a8 ^ a4 ^ a2
    return (bytes(sbox), bytes(inv), bytes(m2), bytes(m3), bytes(m9), bytes(m11), bytes(m13),
            bytes(m14))


_T = None  # tables, built on first use of the fallback
_SHIFT = (0, 5, 10, 15, 4, 9, 14, 3, 8, 13, 2, 7, 12, 1, 6, 11)
_ISHIFT = (0, 13, 10, 7, 4, 1, 14, 11, 8, 5, 2, 15, 12, 9, 6, 3)


class SoftAES:
    """Pure-Python AES-128 block cipher: SoftAES(key).encrypt_block(b16) -> bytes."""

    def __init__(self, key):
        global _T
        if len(key) != 16:
            raise ValueError("AES-128 key must be 16 bytes")
        if _T is None:
            _T = _build()
        sbox = _T[0]
        rk = bytearray(176)
        rk[0:16] = key
        rcon = 1
        for i in range(16, 176, 4):
            t0 = rk[i - 4]
            t1 = rk[i - 3]
            t2 = rk[i - 2]
            t3 = rk[i - 1]
            if i % 16 == 0:
                t0, t1, t2, t3 = sbox[t1] ^ rcon, sbox[t2], sbox[t3], sbox[t0]
                rcon = _xt(rcon)
            rk[i] = rk[i - 16] ^ t0
            rk[i + 1] = rk[i - 15] ^ t1
            rk[i + 2] = rk[i - 14] ^ t2
            rk[i + 3] = rk[i - 13] ^ t3
        self._rk = rk

    def encrypt_block(self, block):
        sbox, _, m2, m3 = _T[0], _T[1], _T[2], _T[3]
        rk = self._rk
        s = bytearray(16)
        for i in range(16):
            s[i] = block[i] ^ rk[i]
        t = bytearray(16)
        sh = _SHIFT
        for rnd in range(1, 11):
            for i in range(16):
                t[i] = sbox[s[sh[i]]]
            o = rnd * 16
            if rnd < 10:
                for c in range(0, 16, 4):
                    a0 = t[c]
                    a1 = t[c + 1]
                    a2 = t[c + 2]
                    a3 = t[c + 3]
                    s[c] = m2[a0] ^ m3[a1] ^ a2 ^ a3 ^ rk[o + c]
                    s[c + 1] = a0 ^ m2[a1] ^ m3[a2] ^ a3 ^ rk[o + c + 1]
                    s[c + 2] = a0 ^ a1 ^ m2[a2] ^ m3[a3] ^ rk[o + c + 2]
                    s[c + 3] = m3[a0] ^ a1 ^ a2 ^ m2[a3] ^ rk[o + c + 3]
            else:
                for i in range(16):
                    s[i] = t[i] ^ rk[o + i]
        return bytes(s)

    def decrypt_block(self, block):
        inv, m9, m11, m13, m14 = _T[1], _T[4], _T[5], _T[6], _T[7]
        rk = self._rk
        s = bytearray(16)
        for i in range(16):
            s[i] = block[i] ^ rk[160 + i]
        t = bytearray(16)
        ish = _ISHIFT
        for rnd in range(9, -1, -1):
            for i in range(16):
                t[i] = inv[s[ish[i]]]
            o = rnd * 16
            if rnd > 0:
                for c in range(0, 16, 4):
                    a0 = t[c] ^ rk[o + c]
                    a1 = t[c + 1] ^ rk[o + c + 1]
                    a2 = t[c + 2] ^ rk[o + c + 2]
                    a3 = t[c + 3] ^ rk[o + c + 3]
                    s[c] = m14[a0] ^ m11[a1] ^ m13[a2] ^ m9[a3]
                    s[c + 1] = m9[a0] ^ m14[a1] ^ m11[a2] ^ m13[a3]
                    s[c + 2] = m13[a0] ^ m9[a1] ^ m14[a2] ^ m11[a3]
                    s[c + 3] = m11[a0] ^ m13[a1] ^ m9[a2] ^ m14[a3]
            else:
                for i in range(16):
                    s[i] = t[i] ^ rk[i]
        return bytes(s)


# Expanded fallback keys: a session uses 3-4 keys for minutes, so keep the last few.
_cache = {}
_CACHE_MAX = 6
force_soft = False  # tests set this to exercise the fallback on a port with cryptolib


def _soft(key):
    key = bytes(key)
    c = _cache.get(key)
    if c is None:
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        c = _cache[key] = SoftAES(key)
    return c


def backend():
    """'cryptolib' or 'soft': which AES this node is using."""
    return "cryptolib" if (_cl is not None and not force_soft) else "soft"


def ecb_encrypt(key, data):
    """AES-128-ECB encrypt; len(data) must be a multiple of 16."""
    if _cl is not None and not force_soft:
        return _cl.aes(bytes(key), _ECB).encrypt(bytes(data))
    a = _soft(key)
    out = bytearray()
    for i in range(0, len(data), 16):
        out.extend(a.encrypt_block(data[i:i + 16]))
    return bytes(out)


def cbc_encrypt(key, iv, data):
    """AES-128-CBC encrypt without padding; len(data) must be a multiple of 16."""
    if _cl is not None and not force_soft:
        return _cl.aes(bytes(key), _CBC, bytes(iv)).encrypt(bytes(data))
    a = _soft(key)
    out = bytearray()
    prev = bytes(iv)
    blk = bytearray(16)
    for i in range(0, len(data), 16):
        for j in range(16):
            blk[j] = data[i + j] ^ prev[j]
        prev = a.encrypt_block(blk)
        out.extend(prev)
    return bytes(out)


def cbc_decrypt(key, iv, data):
    """AES-128-CBC decrypt without unpadding; len(data) must be a multiple of 16."""
    if _cl is not None and not force_soft:
        return _cl.aes(bytes(key), _CBC, bytes(iv)).decrypt(bytes(data))
    a = _soft(key)
    out = bytearray()
    prev = bytes(iv)
    for i in range(0, len(data), 16):
        c = bytes(data[i:i + 16])
        p = a.decrypt_block(c)
        for j in range(16):
            out.append(p[j] ^ prev[j])
        prev = c
    return bytes(out)
