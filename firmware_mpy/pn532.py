# PN532 NFC reader over HSU (UART), micropython-lib style: the UART is injected.
#
# Reads ISO 14443A targets (4-, 7- and 10-byte UIDs) without blocking the main loop:
# poll(now_ms) sends InListPassiveTarget when idle and parses whatever bytes have
# arrived.  RFConfiguration(MxRtyPassiveActivation) makes the chip answer "no target"
# after a few tries instead of waiting forever.  Targets keep SENS_RES/SEL_RES/ATS so
# an ISO-DEP card (NTAG 424 DNA: SEL_RES bit 0x20) can later be driven with
# data_exchange() APDUs (SUN/SDM authentication) without changing this module.
#
# Usage:  nfc = PN532(uart); nfc.begin(clock_ms); t = nfc.poll(clock_ms())  # Target|None

from micropython import const

_HOST = const(0xD4)
_CHIP = const(0xD5)
CMD_GET_FIRMWARE = const(0x02)
CMD_SAM_CONFIG = const(0x14)
CMD_RF_CONFIG = const(0x32)
CMD_IN_DATA_EXCHANGE = const(0x40)
CMD_IN_LIST_PASSIVE = const(0x4A)

ACK = b"\x00\x00\xff\x00\xff\x00"
WAKE = b"\x55\x55\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
RESPONSE_TIMEOUT_MS = const(300)


def encode(cmd, data=b""):
    """Host-to-PN532 information frame for command `cmd`."""
    body = bytes((_HOST, cmd)) + bytes(data)
    n = len(body)
    dcs = (-sum(body)) & 0xFF
    return b"\x00\x00\xff" + bytes((n, (-n) & 0xFF)) + body + bytes((dcs, 0))


def decode(buf):
    """Parse the first frame in buf -> (kind, payload, consumed).

    kind: "ack", "frame" (payload = TFI-less bytes: cmd+1, data...), "bad", or None
    when more bytes are needed.  Leading noise is skipped (counted in consumed).
    """
    i = buf.find(b"\x00\xff")
    if i < 0:
        return None, None, max(0, len(buf) - 1)
    if len(buf) < i + 4:
        return None, None, i
    n = buf[i + 2]
    lcs = buf[i + 3]
    if n == 0 and lcs == 0xFF:
        return "ack", None, i + 5 if len(buf) > i + 4 else i + 4
    if (n + lcs) & 0xFF:
        return "bad", None, i + 2
    end = i + 4 + n + 1
    if len(buf) < end:
        return None, None, i
    body = buf[i + 4:i + 4 + n]
    if (sum(body) + buf[end - 1]) & 0xFF or not body or body[0] != _CHIP:
        return "bad", None, end
    return "frame", bytes(body[1:]), end


class Target:
    """A card in the field: uid bytes, sens_res, sel_res, ats (b'' unless ISO-DEP)."""

    __slots__ = ("tg", "uid", "sens_res", "sel_res", "ats")

    def __init__(self, tg, uid, sens_res, sel_res, ats):
        self.tg = tg
        self.uid = uid
        self.sens_res = sens_res
        self.sel_res = sel_res
        self.ats = ats

    def iso_dep(self):
        return bool(self.sel_res & 0x20)


def parse_list_passive(p):
    """InListPassiveTarget response payload (after 0x4B) -> Target or None."""
    if not p or p[0] == 0:
        return None
    if len(p) < 6:
        raise ValueError("short target")
    tg = p[1]
    sens = p[2] << 8 | p[3]
    sel = p[4]
    n = p[5]
    if n not in (4, 7, 10) or len(p) < 6 + n:
        raise ValueError("uid length %d" % n)
    uid = bytes(p[6:6 + n])
    ats = bytes(p[6 + n:])
    return Target(tg, uid, sens, sel, ats)


class PN532:
    """PN532 on a UART (HSU, 115200 8N1).

    Usage:  nfc = PN532(UART(1, 115200, tx=4, rx=5)); nfc.begin(up.ms); t = nfc.poll(up.ms())
    """

    def __init__(self, uart, retries=2):
        self.uart = uart
        self._buf = bytearray()
        self._waiting = False
        self._sent_ms = 0
        self._retries = retries
        self.errors = 0

    def _read_into(self):
        n = self.uart.any()
        if n:
            b = self.uart.read(n)
            if b:
                self._buf.extend(b)

    def _next(self):
        kind, payload, used = decode(self._buf)
        if used:
            self._buf = self._buf[used:]
        return kind, payload

    def command(self, cmd, data, clock_ms, timeout_ms=RESPONSE_TIMEOUT_MS):
        """Blocking command for setup and REPL use; returns the response payload."""
        self._buf = bytearray()
        self.uart.write(encode(cmd, data))
        t0 = clock_ms()
        while clock_ms() - t0 < timeout_ms:
            self._read_into()
            kind, payload = self._next()
            if kind == "frame":
                if payload[0] != cmd + 1:
                    raise OSError("PN532 answered 0x%02x to 0x%02x" % (payload[0], cmd))
                return payload[1:]
            if kind is None and not self.uart.any():
                _idle()
        raise OSError("PN532 timeout on 0x%02x" % cmd)

    def begin(self, clock_ms):
        """Wake from power-down, normal SAM mode, bounded passive-activation retries."""
        self.uart.write(WAKE)
        ver = self.command(CMD_GET_FIRMWARE, b"", clock_ms)
        self.command(CMD_SAM_CONFIG, b"\x01\x14\x01", clock_ms)
        # CfgItem 5: MxRtyATR, MxRtyPSL, MxRtyPassiveActivation
        self.command(CMD_RF_CONFIG, bytes((5, 0xFF, 0x01, self._retries)), clock_ms)
        return ver

    def poll(self, now_ms):
        """Advance the scan; returns a Target when a card was read, else None."""
        if not self._waiting:
            self._buf = bytearray()
            self.uart.write(encode(CMD_IN_LIST_PASSIVE, b"\x01\x00"))
            self._waiting = True
            self._sent_ms = now_ms
            return None
        self._read_into()
        while True:
            kind, payload = self._next()
            if kind is None:
                break
            if kind == "frame" and payload[0] == CMD_IN_LIST_PASSIVE + 1:
                self._waiting = False
                try:
                    return parse_list_passive(payload[1:])
                except ValueError:
                    self.errors += 1
                    return None
            if kind == "bad":
                self.errors += 1
        if now_ms - self._sent_ms > RESPONSE_TIMEOUT_MS:
            self.errors += 1
            self._waiting = False  # chip lost the command (or was reset): send again
        return None

    def data_exchange(self, tg, apdu, clock_ms):
        """Send an APDU to an ISO-DEP target (NTAG 424 DNA, sunread.py); returns the reply."""
        r = self.command(CMD_IN_DATA_EXCHANGE, bytes((tg,)) + bytes(apdu), clock_ms)
        if not r:
            raise OSError("PN532 InDataExchange without status")
        if r[0] & 0x3F:
            raise OSError("PN532 status 0x%02x" % r[0])
        return r[1:]


def _idle():
    try:
        import time
        time.sleep_ms(1)
    except AttributeError:
        pass
