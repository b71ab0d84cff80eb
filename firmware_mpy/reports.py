# What the node tells the panel about taps (see docs/checkpoint-node.md, "Offline taps").
#
# Fresh taps go out as a plain osdp_RAW card read, so any OSDP panel understands them.
# Taps that waited on flash (the panel was away, or the node restarted) -- and every tap
# when the node is set to "numbered" -- go out as osdp_MFGREP with our vendor code,
# carrying the node's tap number and the tap's age:
#
#   offset size  field
#   0      1     message type: 0x01 = tap
#   1      1     format version: 0x01
#   2      4     tap number, little-endian (monotonic for the node's life; gaps = lost)
#   6      4     age in seconds at sending, little-endian
#   10     1     flags: bit0 age is a lower bound (tap was in an earlier boot; downtime
#                not counted), bit1 tapped while not polled (offline), bit2 this tap
#                already went out as an osdp_RAW whose receipt was never confirmed
#   11     1     taps still waiting after this one (saturates at 255)
#   12     1     UID length (4, 7 or 10)
#   13     n     UID
#
# osdp_MFG with our vendor code and data 0x01 asks for a status report (type 0x02):
#   0x02, 0x01, pending u16, delivered-through u32, next tap number u32, boot u16,
#   AES backend (0 = cryptolib, 1 = pure Python), flash writes this boot u32

import struct

MSG_OFFLINE_TAP = 0x01
MSG_STATUS = 0x02
MFG_STATUS_QUERY = 0x01
FLAG_AGE_LOWER_BOUND = 0x01
FLAG_TAPPED_OFFLINE = 0x02
FLAG_MAY_REPEAT_RAW = 0x04
RAW_MAX_AGE_MS = 2000  # older than this, a tap goes out with its number and age


def vendor_bytes(vendor):
    return bytes((vendor & 0xFF, (vendor >> 8) & 0xFF, (vendor >> 16) & 0xFF))


def raw_card(uid):
    """osdp_RAW payload: reader 0, format 0 (raw bits), bit count, UID bytes."""
    bits = len(uid) * 8
    return bytes((0, 0, bits & 0xFF, bits >> 8)) + bytes(uid)


def numbered_tap(vendor, number, age_s, flags, waiting, uid):
    """osdp_MFGREP payload for one stored tap (flags: FLAG_* bits)."""
    return (vendor_bytes(vendor)
            + struct.pack("<BBIIBBB", MSG_OFFLINE_TAP, 1, number, age_s, flags,
                          min(waiting, 255), len(uid))
            + bytes(uid))


def status(vendor, pending, delivered, next_number, boot, soft_aes, writes):
    return vendor_bytes(vendor) + struct.pack(
        "<BBHIIHBI", MSG_STATUS, 1, pending, delivered, next_number, boot,
        1 if soft_aes else 0, writes)
