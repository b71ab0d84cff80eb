# OSDP Secure Channel (SIA OSDP 2.2 section 5.9 / Annex D), PD side.
#
# Handshake:  CP --osdp_CHLNG(RND.A)-->  PD --osdp_CCRYPT(cUID, RND.B, client cryptogram)-->
#             CP --osdp_SCRYPT(server cryptogram)-->  PD --osdp_RMAC_I(initial R-MAC)-->
# then every packet carries a 4-byte MAC (CBC-MAC, S-MAC1 for all blocks but the last,
# S-MAC2 for the last, IV = the previous MAC in the other direction: "MAC chaining"), and
# data blocks are AES-CBC encrypted under S-ENC with IV = ~(previous MAC the other way).
# Names follow the spec: RND.A is the CP's random, RND.B the PD's.
# Pure: no I/O; randomness comes in from the caller.

import aes128

SCBK_D = b"0123456789:;<=>?"  # the spec's default key 0x30..0x3F, for install mode only

SCS_11 = 0x11
SCS_12 = 0x12
SCS_13 = 0x13
SCS_14 = 0x14
SCS_15 = 0x15
SCS_16 = 0x16
SCS_17 = 0x17
SCS_18 = 0x18

_EOM = 0x80


def ct_equal(a, b):
    """Constant-time comparison of two byte strings of equal length."""
    if len(a) != len(b):
        return False
    r = 0
    for i in range(len(a)):
        r |= a[i] ^ b[i]
    return r == 0


def session_keys(scbk, rnd_a):
    """(S-ENC, S-MAC1, S-MAC2) from the base key and the CP's 8-byte random."""
    r6 = bytes(rnd_a[:6])
    pad = bytes(8)
    enc = aes128.ecb_encrypt(scbk, b"\x01\x82" + r6 + pad)
    mac1 = aes128.ecb_encrypt(scbk, b"\x01\x01" + r6 + pad)
    mac2 = aes128.ecb_encrypt(scbk, b"\x01\x02" + r6 + pad)
    return enc, mac1, mac2


def client_cryptogram(s_enc, rnd_a, rnd_b):
    """PD's proof of the key: AES(S-ENC, RND.A || RND.B)."""
    return aes128.ecb_encrypt(s_enc, bytes(rnd_a) + bytes(rnd_b))


def server_cryptogram(s_enc, rnd_a, rnd_b):
    """CP's proof of the key: AES(S-ENC, RND.B || RND.A)."""
    return aes128.ecb_encrypt(s_enc, bytes(rnd_b) + bytes(rnd_a))


def initial_rmac(s_mac1, s_mac2, server_crypt):
    """R-MAC-I = AES(S-MAC2, AES(S-MAC1, server cryptogram))."""
    return aes128.ecb_encrypt(s_mac2, aes128.ecb_encrypt(s_mac1, server_crypt))


def compute_mac(s_mac1, s_mac2, iv, msg):
    """16-byte OSDP MAC of msg; the wire carries the first 4 bytes."""
    n = len(msg)
    if n % 16:
        msg = bytes(msg) + b"\x80" + bytes(15 - n % 16)
    else:
        msg = bytes(msg)
    if len(msg) > 16:
        head = aes128.cbc_encrypt(s_mac1, iv, msg[:-16])
        iv = head[-16:]
    last = msg[-16:]
    blk = bytearray(16)
    for i in range(16):
        blk[i] = last[i] ^ iv[i]
    return aes128.ecb_encrypt(s_mac2, blk)


def _not(b):
    return bytes((~x) & 0xFF for x in b)


def encrypt_data(s_enc, other_mac, data):
    """Pad (0x80 then zeros, always) and AES-CBC encrypt with IV = ~other_mac."""
    n = len(data) + 1
    padded = bytes(data) + b"\x80" + bytes((16 - n % 16) % 16)
    return aes128.cbc_encrypt(s_enc, _not(other_mac), padded)


def decrypt_data(s_enc, other_mac, data):
    """Inverse of encrypt_data; returns None when the padding is wrong."""
    if not data or len(data) % 16:
        return None
    p = aes128.cbc_decrypt(s_enc, _not(other_mac), data)
    i = len(p) - 1
    while i > 0 and p[i] == 0:
        i -= 1
    if p[i] != _EOM:
        return None
    return p[:i]


class SecureChannel:
    """PD-side session state: sc = SecureChannel(); sc.challenge(...); sc.confirm(...)."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.active = False
        self.s_enc = self.s_mac1 = self.s_mac2 = None
        self.rnd_a = self.rnd_b = None
        self.c_mac = None  # last MAC from the CP (IV for our replies)
        self.r_mac = None  # last MAC we sent (IV for the CP's next command)
        self.pending = False  # CHLNG answered, waiting for SCRYPT
        self.with_default_key = False

    def challenge(self, scbk, rnd_a, rnd_b, cuid):
        """Handle osdp_CHLNG: returns the osdp_CCRYPT payload (cUID, RND.B, cryptogram)."""
        self.reset()
        self.rnd_a = bytes(rnd_a)
        self.rnd_b = bytes(rnd_b)
        self.s_enc, self.s_mac1, self.s_mac2 = session_keys(scbk, self.rnd_a)
        self.pending = True
        self.with_default_key = scbk == SCBK_D
        return bytes(cuid) + self.rnd_b + client_cryptogram(self.s_enc, self.rnd_a, self.rnd_b)

    def confirm(self, server_crypt):
        """Handle osdp_SCRYPT: returns the R-MAC-I payload, or None when the CP is wrong."""
        if not self.pending:
            return None
        self.pending = False
        expect = server_cryptogram(self.s_enc, self.rnd_a, self.rnd_b)
        if not ct_equal(expect, server_crypt):
            self.reset()
            return None
        self.r_mac = initial_rmac(self.s_mac1, self.s_mac2, expect)
        self.active = True
        return self.r_mac

    def check_command_mac(self, msg, mac4):
        """Verify a CP packet's MAC; on success it becomes the new C-MAC (chaining)."""
        full = compute_mac(self.s_mac1, self.s_mac2, self.r_mac, msg)
        if not ct_equal(full[:4], mac4):
            return False
        self.c_mac = full
        return True

    def decrypt_command(self, data):
        return decrypt_data(self.s_enc, self.r_mac, data)

    def encrypt_reply(self, data):
        return encrypt_data(self.s_enc, self.c_mac, data)

    def reply_mac(self, msg):
        """MAC our reply (IV = C-MAC); it becomes the R-MAC the CP chains from."""
        self.r_mac = compute_mac(self.s_mac1, self.s_mac2, self.c_mac, msg)
        return self.r_mac[:4]
