"""Our checkpoint node's manufacturer replies (osdp_MFGREP), parsed. Pure: bytes in, a record
or :class:`NodeReportError` out; no libosdp, no I/O, no clock.

The node (``firmware_mpy/reports.py``, ``numbered_tap``; docs/checkpoint-node.md, *Offline
taps*) sends a tap that waited on its flash -- the panel was away, the node restarted, or the
node is set to "numbered" -- as an osdp_MFGREP with its vendor code. libosdp gives the first
three bytes as the event's ``vendor_code`` and the rest as ``data``; ``data`` is::

    offset size  field
    0      1     message type: 0x01 = tap (0x02 = status report, answered to an osdp_MFG query)
    1      1     format version: 0x01
    2      4     tap number, little-endian: monotonic for the node's life, kept across restarts
    6      4     age in seconds when sent, little-endian (floor of the node's milliseconds)
    10     1     flags: bit0 age is a lower bound (tap from an earlier boot; the time the node
                 was off is not counted), bit1 tapped while not polled, bit2 this tap already
                 went out as an osdp_RAW whose receipt the node never saw confirmed
    11     1     taps still waiting on the node after this one (saturates at 255)
    12     1     UID length n (1..10)
    13     n     UID

Usage::

    rec = parse_numbered_tap(event["vendor_code"], event["data"])   # NodeReportError if not
    rec.number, rec.uid, rec.age_s, rec.age_lower_bound
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# The node's default vendor code (firmware_mpy/settings.py: an unregistered placeholder).
NODE_VENDOR_CODE = 0x0BC0DE
MSG_TAP = 0x01
MSG_STATUS = 0x02
TAP_VERSION = 0x01
FLAG_AGE_LOWER_BOUND = 0x01
FLAG_TAPPED_OFFLINE = 0x02
FLAG_MAY_REPEAT_RAW = 0x04
KNOWN_FLAGS = FLAG_AGE_LOWER_BOUND | FLAG_TAPPED_OFFLINE | FLAG_MAY_REPEAT_RAW
MAX_UID = 10  # firmware_mpy/tapstore.py MAX_UID
_HEAD = struct.Struct("<BBIIBBB")  # type, version, number, age_s, flags, waiting, uid_len


class NodeReportError(ValueError):
    """A manufacturer reply that is not one of our node's tap records. ``reason`` is a word:
    ``vendor`` (another vendor's code), ``type`` (ours, not a tap), ``version``, ``length``,
    ``uid_length``; ``vendor_code`` and ``raw`` (the data after the vendor code) are kept so
    the caller can record what came."""

    def __init__(self, reason: str, vendor_code: int, raw: bytes, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.vendor_code = vendor_code
        self.raw = raw


@dataclass(frozen=True, slots=True)
class NumberedTap:
    """One tap record from the node (see the module docstring for the fields)."""

    number: int
    age_s: int
    flags: int
    waiting: int
    uid: bytes

    @property
    def age_lower_bound(self) -> bool:
        """The tap is from an earlier boot: it is *at least* ``age_s`` old."""
        return bool(self.flags & FLAG_AGE_LOWER_BOUND)

    @property
    def tapped_offline(self) -> bool:
        return bool(self.flags & FLAG_TAPPED_OFFLINE)

    @property
    def may_repeat_raw(self) -> bool:
        """This tap may already have arrived as a plain osdp_RAW card read."""
        return bool(self.flags & FLAG_MAY_REPEAT_RAW)


def parse_numbered_tap(vendor_code: int, data: bytes, ours: int = NODE_VENDOR_CODE) -> NumberedTap:
    """The tap record in an osdp_MFGREP from our node; :class:`NodeReportError` for anything
    else (another vendor, another message type or version, a truncated or overlong record).
    Unknown flag bits are kept, not refused: a newer node may say more."""
    raw = bytes(data)
    if vendor_code != ours:
        raise NodeReportError("vendor", vendor_code, raw, f"0x{vendor_code:06x}")
    if not raw:
        raise NodeReportError("length", vendor_code, raw, "empty")
    if raw[0] != MSG_TAP:
        raise NodeReportError("type", vendor_code, raw, f"0x{raw[0]:02x}")
    if len(raw) < 2 or raw[1] != TAP_VERSION:
        raise NodeReportError("version", vendor_code, raw)
    if len(raw) < _HEAD.size:
        raise NodeReportError("length", vendor_code, raw, f"{len(raw)} bytes")
    _t, _v, number, age_s, flags, waiting, n = _HEAD.unpack_from(raw)
    if not 1 <= n <= MAX_UID:
        raise NodeReportError("uid_length", vendor_code, raw, str(n))
    if len(raw) != _HEAD.size + n:
        raise NodeReportError("length", vendor_code, raw, f"{len(raw)} bytes for a {n}-byte UID")
    return NumberedTap(number, age_s, flags, waiting, raw[_HEAD.size:])


def encode_numbered_tap(rec: NumberedTap) -> bytes:
    """The ``data`` of a tap record (what libosdp hands over after the vendor code): the
    inverse of :func:`parse_numbered_tap`, for tests and simulators."""
    return _HEAD.pack(MSG_TAP, TAP_VERSION, rec.number, rec.age_s, rec.flags,
                      min(rec.waiting, 255), len(rec.uid)) + rec.uid  # fmt: skip
