# OSDP link layer: CRC-16, checksum, frame assembly from a byte stream, frame building.
#
# Theory of operation: bytes from the bus go into FrameReader.feed(); next_frame()
# hands back complete, check-character-verified frames (as Frame objects) or reports
# a damaged one (so the PD can NAK it).  Anything before SOM is line noise and is
# skipped, except a 0xFF "mark" byte right before SOM, which libosdp and newer
# panels send and which the PD must echo back in its reply.  Pure: no I/O, no clock;
# the caller passes now_ms so a frame interrupted mid-way is dropped after a gap.
#
# Bus bytes are untrusted: FrameReader never raises on them.  Its one way of saying
# "bad input" is a BadFrame (check character or format wrong: NAK material); noise is
# skipped and counted in `dropped`.  tests/hostile/test_firmware_frame_reader.py holds it
# to that under real MicroPython.
#
# Packet: [0xFF] 0x53 ADDR LEN_LSB LEN_MSB CTRL [SCB...] CODE DATA... [MAC4] CRC16(LE)|CKSUM
# LEN counts from SOM through the check character, without the mark byte.

from micropython import const

SOM = const(0x53)
MARK = const(0xFF)
CTRL_SQN = const(0x03)
CTRL_CRC = const(0x04)
CTRL_SCB = const(0x08)
BROADCAST = const(0x7F)

MAX_FRAME = const(256)  # our receive buffer; advertised in osdp_PDCAP
INTERBYTE_GAP_MS = const(50)  # a frame with a pause this long in the middle is abandoned

_crc_table = None


def _table():
    global _crc_table
    t = []
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else (c << 1)
        t.append(c & 0xFFFF)
    _crc_table = t
    return t


def crc16(data, crc=0x1D0F):
    """OSDP CRC-16 (CCITT polynomial 0x1021, initial value 0x1D0F, no reflection)."""
    t = _crc_table or _table()
    for b in data:
        crc = ((crc << 8) & 0xFF00) ^ t[((crc >> 8) ^ b) & 0xFF]
    return crc


def checksum(data):
    """OSDP 8-bit checksum: two's complement of the byte sum."""
    return (-sum(data)) & 0xFF


class Frame:
    """One verified OSDP packet (mark byte removed, check character verified)."""

    __slots__ = ("raw", "addr", "seq", "use_crc", "scb", "code", "data", "mac", "mark")

    def __init__(self, raw, mark):
        self.raw = raw
        self.mark = mark
        self.addr = raw[1]
        ctrl = raw[4]
        self.seq = ctrl & CTRL_SQN
        self.use_crc = bool(ctrl & CTRL_CRC)
        end = len(raw) - (2 if self.use_crc else 1)
        pos = 5
        self.scb = None
        if ctrl & CTRL_SCB:
            sl = raw[5]
            if sl < 2 or 5 + sl >= end:
                raise ValueError("bad security block")
            self.scb = raw[5:5 + sl]
            pos += sl
        self.mac = None
        if self.scb is not None and self.scb[1] >= 0x15:
            if end - 4 <= pos:
                raise ValueError("no room for MAC")
            self.mac = raw[end - 4:end]
            end -= 4
        self.code = raw[pos]
        self.data = raw[pos + 1:end]

    def mac_input(self):
        """Bytes the MAC covers: SOM up to (not including) the MAC."""
        end = len(self.raw) - (2 if self.use_crc else 1) - 4
        return self.raw[:end]


# next_frame() results other than a Frame
NEED_MORE = None


class BadFrame:
    """A frame that arrived whole but failed its check character (NAK 0x01 material)."""

    __slots__ = ("addr", "seq", "mark", "use_crc", "reason")

    def __init__(self, addr, seq, mark, use_crc, reason):
        self.addr = addr
        self.seq = seq
        self.mark = mark
        self.use_crc = use_crc
        self.reason = reason


class FrameReader:
    """Byte-stream to frame assembler: r.feed(b, now_ms); f = r.next_frame()."""

    def __init__(self, max_frame=MAX_FRAME):
        self._buf = bytearray()
        self._max = max_frame
        self._last_ms = None
        self.dropped = 0  # bytes discarded as noise or broken frames

    def feed(self, data, now_ms=0):
        if not data:
            return
        if self._buf and self._last_ms is not None and now_ms - self._last_ms > INTERBYTE_GAP_MS:
            self.dropped += len(self._buf)
            self._buf = bytearray()
        self._last_ms = now_ms
        self._buf.extend(data)

    def _skip(self, n):
        self.dropped += n
        self._buf = self._buf[n:]

    def next_frame(self):
        """Frame, BadFrame, or None (need more bytes)."""
        while True:
            buf = self._buf
            i = buf.find(b"\x53")
            if i < 0:
                keep = 1 if buf and buf[-1] == MARK else 0
                self._skip(len(buf) - keep)
                return NEED_MORE
            mark = i > 0 and buf[i - 1] == MARK
            # Keep a mark byte in front of SOM until the frame is complete.
            drop = i - 1 if mark else i
            if drop:
                self._skip(drop)
                buf = self._buf
            o = 1 if mark else 0
            if len(buf) < o + 5:
                return NEED_MORE
            length = buf[o + 2] | (buf[o + 3] << 8)
            if length < 7 or length > self._max:
                self._skip(o + 1)  # not a real SOM; resync on the next 0x53
                continue
            if len(buf) < o + length:
                return NEED_MORE
            raw = bytes(buf[o:o + length])
            ctrl = raw[4]
            use_crc = bool(ctrl & CTRL_CRC)
            if use_crc:
                ok = length >= 8 and crc16(raw[:-2]) == (raw[-2] | (raw[-1] << 8))
            else:
                ok = checksum(raw[:-1]) == raw[-1]
            if not ok:
                # Resync one byte on: the real frame may start inside this one.
                self._skip(o + 1)
                return BadFrame(raw[1], ctrl & CTRL_SQN, mark, use_crc, "check")
            self._buf = buf[o + length:]
            try:
                return Frame(raw, mark)
            except (ValueError, IndexError):
                return BadFrame(raw[1], ctrl & CTRL_SQN, mark, use_crc, "format")


def build(addr, seq, code, data=b"", use_crc=True, scb=None, mac_fn=None, mark=False):
    """Encode one packet; mac_fn(bytes_so_far) -> 4-byte MAC when a MAC is due.

    Usage:  build(0x81, 1, 0x40)  ->  an osdp_ACK from PD 1
    """
    n = 5 + (len(scb) if scb else 0) + 1 + len(data) + (4 if mac_fn else 0) + (2 if use_crc else 1)
    ctrl = (seq & CTRL_SQN) | (CTRL_CRC if use_crc else 0) | (CTRL_SCB if scb else 0)
    p = bytearray((SOM, addr, n & 0xFF, n >> 8, ctrl))
    if scb:
        p.extend(scb)
    p.append(code)
    p.extend(data)
    if mac_fn:
        p.extend(mac_fn(p))
    if use_crc:
        c = crc16(p)
        p.append(c & 0xFF)
        p.append(c >> 8)
    else:
        p.append(checksum(p))
    if mark:
        return b"\xff" + bytes(p)
    return bytes(p)
