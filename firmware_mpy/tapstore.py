# Durable ring buffer of NFC taps on the node's flash file system.
#
# Why this shape (flash wear and power cuts):
#  * Two fixed-size, preallocated files -- no growth, truncation or renames, so the
#    file system's metadata is not rewritten on every tap.
#  * taps.bin: SLOTS x 32-byte records; tap number n always lives in slot n % SLOTS, so
#    writes walk round the file and every slot wears equally; nothing is ever erased.
#  * taps.ack: ACK_SLOTS x 16-byte "delivered through n" records, also written round
#    robin (generation number picks the newest); one write per delivered tap, never
#    one per poll.  littlefs (ESP32 and RP2040 default) adds its own wear levelling.
#  * Every record carries a CRC-16, so a write torn by a reset is simply ignored: a
#    torn tap was never acknowledged to the guard; a torn ack re-delivers one tap,
#    which the gateway recognises by its tap number.
#  * Bounded: if more than SLOTS taps are waiting, the oldest is overwritten and the
#    gap in tap numbers tells the gateway exactly how many were lost.
#
# Usage:  s = TapStore("/data"); n = s.append(uid, uptime_ms, offline=True)
#         r = s.first_pending(); ...deliver...; s.mark_delivered(r.number)

import os
import struct

from osdp_frame import crc16

SLOTS = 64
ACK_SLOTS = 8
TAP_SIZE = 32
ACK_SIZE = 16
_TAP_MAGIC = 0xA5
_ACK_MAGIC = 0xA7
MAX_UID = 10
FLAG_OFFLINE = 0x01  # tapped while the panel was not polling us

_TAP_FMT = "<BBHIII"  # magic, flags, boot, number, uptime_ms lo, hi  (then uid len + uid)
_ACK_FMT = "<BBHII"  # magic, version, boot, delivered-through, generation


class TapRecord:
    """One stored tap: number (monotonic for the node's life), boot, uptime_ms, uid, flags."""

    __slots__ = ("number", "boot", "uptime_ms", "uid", "flags")

    def __init__(self, number, boot, uptime_ms, uid, flags):
        self.number = number
        self.boot = boot
        self.uptime_ms = uptime_ms
        self.uid = uid
        self.flags = flags

    def __repr__(self):
        return "TapRecord(%d, boot=%d, t=%d, uid=%s)" % (
            self.number, self.boot, self.uptime_ms, self.uid)


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _prealloc(path, size):
    if _exists(path):
        st = os.stat(path)
        if st[6] == size:
            return
    with open(path, "wb") as f:
        blank = b"\xff" * 32
        for _ in range(size // 32):
            f.write(blank)


def encode_tap(r):
    """The 32-byte slot image of a TapRecord."""
    uid = bytes(r.uid)
    body = struct.pack(_TAP_FMT, _TAP_MAGIC, r.flags, r.boot & 0xFFFF, r.number,
                       r.uptime_ms & 0xFFFFFFFF, (r.uptime_ms >> 32) & 0xFFFFFFFF)
    body += bytes((len(uid),)) + uid + bytes(MAX_UID - len(uid)) + bytes(3)
    c = crc16(body)
    return body + bytes((c & 0xFF, c >> 8))


def decode_tap(b):
    """TapRecord from a slot image, or None when blank or torn."""
    if len(b) != TAP_SIZE or b[0] != _TAP_MAGIC:
        return None
    if crc16(b[:30]) != (b[30] | (b[31] << 8)):
        return None
    _, flags, boot, number, lo, hi = struct.unpack(_TAP_FMT, b[:16])
    n = b[16]
    if n > MAX_UID:
        return None
    return TapRecord(number, boot, lo | (hi << 32), bytes(b[17:17 + n]), flags)


class TapStore:
    """Taps kept on flash until the panel has them; see the module comment.

    Usage:  s = TapStore("/data"); s.append(uid, now_ms, offline=True); s.first_pending()
    """

    def __init__(self, root, slots=SLOTS, ack_slots=ACK_SLOTS):
        self.slots = slots
        self.ack_slots = ack_slots
        self._taps = root + "/taps.bin"
        self._acks = root + "/taps.ack"
        try:
            os.mkdir(root)
        except OSError:
            pass
        _prealloc(self._taps, slots * TAP_SIZE)
        _prealloc(self._acks, ack_slots * ACK_SIZE)
        self.writes = 0  # flash writes this boot (taps + acks): the wear figure
        self._load()
        self.boot = (self._prev_boot + 1) & 0xFFFF
        self._write_ack(self.delivered)  # records the new boot number

    def _load(self):
        acked, boot, gen = 0, 0, -1
        with open(self._acks, "rb") as f:
            for _ in range(self.ack_slots):
                b = f.read(ACK_SIZE)
                if len(b) < ACK_SIZE or b[0] != _ACK_MAGIC:
                    continue
                if crc16(b[:12]) != (b[12] | (b[13] << 8)):
                    continue
                _, _, bt, through, g = struct.unpack(_ACK_FMT, b[:12])
                if g > gen:
                    acked, boot, gen = through, bt, g
        self.delivered = acked
        self._prev_boot = boot
        self._gen = gen + 1
        recs = []
        top = acked
        # Highest uptime seen per earlier boot: a lower bound for "how long ago".
        self._boot_last_ms = {}
        with open(self._taps, "rb") as f:
            for _ in range(self.slots):
                r = decode_tap(f.read(TAP_SIZE))
                if r is None:
                    continue
                top = max(top, r.number)
                if r.boot not in self._boot_last_ms or r.uptime_ms > self._boot_last_ms[r.boot]:
                    self._boot_last_ms[r.boot] = r.uptime_ms
                if r.number > acked:
                    recs.append(r)
        recs.sort(key=lambda r: r.number)
        # A slot reused by a newer tap hides an older one: keep only the live window.
        lo = top - self.slots
        self._pending = [r for r in recs if r.number > lo]
        self.next_number = top + 1

    def _write_ack(self, through):
        body = struct.pack(_ACK_FMT, _ACK_MAGIC, 1, self.boot, through, self._gen)
        c = crc16(body)
        body += bytes((c & 0xFF, c >> 8)) + b"\xff\xff"
        with open(self._acks, "r+b") as f:
            f.seek((self._gen % self.ack_slots) * ACK_SIZE)
            f.write(body)
        self._gen += 1
        self.writes += 1

    def append(self, uid, uptime_ms, offline):
        """Store a tap durably; returns its number.  Call before telling the guard 'ok'."""
        uid = bytes(uid)
        if not 1 <= len(uid) <= MAX_UID:
            raise ValueError("uid length")
        r = TapRecord(self.next_number, self.boot, uptime_ms, uid,
                      FLAG_OFFLINE if offline else 0)
        with open(self._taps, "r+b") as f:
            f.seek((r.number % self.slots) * TAP_SIZE)
            f.write(encode_tap(r))
        self.writes += 1
        self.next_number += 1
        self._pending.append(r)
        if len(self._pending) > self.slots:
            self._pending.pop(0)  # overwritten on flash just now
        return r.number

    def first_pending(self):
        """Oldest tap the panel does not have yet, or None."""
        return self._pending[0] if self._pending else None

    def pending_count(self):
        return len(self._pending)

    def mark_delivered(self, number):
        """The panel has tap `number` (and everything before it): never offer them again."""
        if number <= self.delivered:
            return
        self._write_ack(number)
        self.delivered = number
        while self._pending and self._pending[0].number <= number:
            self._pending.pop(0)

    def age_ms(self, r, now_ms):
        """(age, exact): exact for this boot; for earlier boots a lower bound (no RTC)."""
        if r.boot == self.boot:
            return now_ms - r.uptime_ms, True
        last = self._boot_last_ms.get(r.boot, r.uptime_ms)
        return now_ms + (last - r.uptime_ms), False
