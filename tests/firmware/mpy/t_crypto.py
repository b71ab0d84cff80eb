# Known-answer tests: OSDP CRC/checksum and Secure Channel (SIA OSDP 2.2 Annex E, as
# also used by libosdp tests/unit-tests/test-sc-sia-vectors.c), AES-128 (FIPS-197 C.1).
from binascii import unhexlify as h

import aes128
import osdp_frame
import osdp_sc

import mpytest

SCBK_D = bytes(range(0x30, 0x40))
RND_A = bytes(range(0xB0, 0xB8))  # CP (ACU) random
RND_B = bytes(range(0xA0, 0xA8))  # PD random


def test_crc_annex_e():
    m1 = bytes((0x53, 0x7F, 0x0D, 0x00, 0x04, 0x6E, 0x00, 0x80, 0x25, 0x00, 0x00))
    c = osdp_frame.crc16(m1)
    assert (c & 0xFF, c >> 8) == (0x6E, 0x38), hex(c)
    m2 = bytes((0x53, 0x00, 0x09, 0x00, 0x04, 0x61, 0x00))
    c = osdp_frame.crc16(m2)
    assert (c & 0xFF, c >> 8) == (0xC0, 0x66), hex(c)


def test_checksum_annex_e():
    m1 = bytes((0x53, 0x7F, 0x0C, 0x00, 0x00, 0x6E, 0x00, 0x80, 0x25, 0x00, 0x00))
    assert osdp_frame.checksum(m1) == 0x0F
    assert osdp_frame.checksum(bytes((0x53, 0x00, 0x08, 0x00, 0x00, 0x61, 0x00))) == 0x44


def test_aes_fips197():
    k = h("000102030405060708090a0b0c0d0e0f")
    p = h("00112233445566778899aabbccddeeff")
    c = h("69c4e0d86a7b0430d8cdb78070b4c55a")
    assert aes128.ecb_encrypt(k, p) == c
    assert aes128.SoftAES(k).decrypt_block(c) == p


def test_aes_cbc_roundtrip():
    k = bytes(range(16))
    iv = bytes(range(16, 32))
    d = bytes(range(64))
    e = aes128.cbc_encrypt(k, iv, d)
    assert e != d and len(e) == 64
    assert aes128.cbc_decrypt(k, iv, e) == d
    # CBC chaining: first block equals ECB of (p0 xor iv)
    x = bytes(d[i] ^ iv[i] for i in range(16))
    assert e[:16] == aes128.ecb_encrypt(k, x)


def test_session_keys_annex_e():
    enc, mac1, mac2 = osdp_sc.session_keys(SCBK_D, RND_A)
    assert mac1 == h("5e86c676603bdee2d8beafe178637332")
    assert mac2 == h("6fda86e857777e81132035758239172e")
    assert enc == h("bf8dc2a8329acb8c67c6d0cd9a451682")


def test_cryptograms_and_rmac_annex_e():
    enc, mac1, mac2 = osdp_sc.session_keys(SCBK_D, RND_A)
    server = osdp_sc.server_cryptogram(enc, RND_A, RND_B)
    client = osdp_sc.client_cryptogram(enc, RND_A, RND_B)
    assert server == h("26d3356e07762d262801fc8e6665a891")
    assert client == h("fde5d2f428ec16312471ea3c02bd7796")
    assert osdp_sc.initial_rmac(mac1, mac2, server) == h("b2a30057eb98ba2229ec1f875662b524")


def test_pd_handshake_reproduces_annex_e():
    sc = osdp_sc.SecureChannel()
    payload = sc.challenge(SCBK_D, RND_A, RND_B, b"CUID0001")
    assert payload[:8] == b"CUID0001" and payload[8:16] == RND_B
    assert payload[16:] == h("fde5d2f428ec16312471ea3c02bd7796")
    assert sc.confirm(h("00" * 16)) is None and not sc.active  # wrong CP cryptogram
    sc.challenge(SCBK_D, RND_A, RND_B, b"CUID0001")
    rmac = sc.confirm(h("26d3356e07762d262801fc8e6665a891"))
    assert rmac == h("b2a30057eb98ba2229ec1f875662b524")
    assert sc.active


def test_mac_padding_rules():
    _enc, mac1, mac2 = osdp_sc.session_keys(SCBK_D, RND_A)
    iv = bytes(16)
    # 16-byte message: no padding; one block, S-MAC2 only
    m16 = bytes(range(16))
    assert osdp_sc.compute_mac(mac1, mac2, iv, m16) == aes128.ecb_encrypt(mac2, m16)
    # 10-byte message: 0x80 then zeros
    m10 = bytes(range(10))
    padded = m10 + b"\x80" + bytes(5)
    assert osdp_sc.compute_mac(mac1, mac2, iv, m10) == aes128.ecb_encrypt(mac2, padded)
    # 20 bytes: first block under S-MAC1 (CBC), last under S-MAC2
    m20 = bytes(range(20))
    b1 = aes128.ecb_encrypt(mac1, m20[:16])
    last = m20[16:] + b"\x80" + bytes(11)
    x = bytes(last[i] ^ b1[i] for i in range(16))
    assert osdp_sc.compute_mac(mac1, mac2, iv, m20) == aes128.ecb_encrypt(mac2, x)


def test_data_block_padding_and_iv():
    enc, _, _ = osdp_sc.session_keys(SCBK_D, RND_A)
    mac = bytes(range(16))
    for n in (0, 1, 15, 16, 17):
        d = bytes(range(n))
        e = osdp_sc.encrypt_data(enc, mac, d)
        assert len(e) == (n // 16 + 1) * 16  # always padded, a full block when aligned
        assert osdp_sc.decrypt_data(enc, mac, e) == d
    # IV is the one's complement of the other side's MAC
    e = osdp_sc.encrypt_data(enc, mac, b"\x01")
    iv = bytes((~x) & 0xFF for x in mac)
    assert e == aes128.cbc_encrypt(enc, iv, b"\x01\x80" + bytes(14))
    assert osdp_sc.decrypt_data(enc, bytes(16), e) is None  # wrong IV: bad padding


mpytest.run(globals())
