# OSDP peripheral device (PD) engine, sans-IO.
#
# Theory of operation: the node hands every byte from the bus to receive(data, now_ms)
# and transmits whatever bytes it returns (at most one reply per command).  The engine
# owns the link rules -- address filter, sequence numbers, reply cache for retries,
# NAK reasons, Secure Channel -- and asks the application (the `app` object) for
# everything about the device itself:
#
#   app.on_led(records)            records: list of 14-int tuples (osdp_LED layout)
#   app.on_buzzer(reader, tone, on, off, count)
#   app.on_keyset(key16) -> bool   persist a new SCBK before we ACK it
#   app.on_comset(addr, baud) -> bool   accept new settings (applied after the reply)
#   app.next_report(now_ms) -> (reply_code, data, token) | None   unsolicited poll reply
#   app.report_delivered(token)    the CP moved to the next sequence number: it has it
#   app.on_mfg(vendor, data) -> (reply_code, data) | None
#   app.on_file(data) -> ftstat data | None   optional: osdp_FILETRANSFER (firmware update)
#
# Delivery rule: a poll reply carrying a report is "in flight" until the CP sends a
# command with the next sequence number (then the CP provably received it) -- only then
# is report_delivered() called.  A repeated sequence number gets the cached reply, byte
# for byte; sequence 0 (CP restart) forgets the in-flight report so it is offered again.

from micropython import const

import osdp_frame
import osdp_sc

# commands
CMD_POLL = const(0x60)
CMD_ID = const(0x61)
CMD_CAP = const(0x62)
CMD_LSTAT = const(0x64)
CMD_LED = const(0x69)
CMD_BUZ = const(0x6A)
CMD_COMSET = const(0x6E)
CMD_KEYSET = const(0x75)
CMD_CHLNG = const(0x76)
CMD_SCRYPT = const(0x77)
CMD_FILETRANSFER = const(0x7C)
CMD_MFG = const(0x80)
CMD_ABORT = const(0xA2)
# replies
REPLY_ACK = const(0x40)
REPLY_NAK = const(0x41)
REPLY_PDID = const(0x45)
REPLY_PDCAP = const(0x46)
REPLY_LSTATR = const(0x48)
REPLY_RAW = const(0x50)
REPLY_COM = const(0x54)
REPLY_CCRYPT = const(0x76)
REPLY_FTSTAT = const(0x7A)
REPLY_RMAC_I = const(0x78)
REPLY_MFGREP = const(0x90)
# NAK reasons (OSDP 2.2 table 47)
NAK_CHECK = const(0x01)  # CRC / checksum
NAK_LENGTH = const(0x02)  # command length
NAK_UNKNOWN = const(0x03)  # unknown command code
NAK_SEQ = const(0x04)  # unexpected sequence number
NAK_SC_UNSUPPORTED = const(0x05)  # security block not supported
NAK_SC_REQUIRED = const(0x06)  # encrypted communication required / SC conditions
NAK_RECORD = const(0x09)  # unable to process command record

OFFLINE_AFTER_MS = const(8000)  # spec: a PD unpolled for 8 s is offline; SC expires too

BAUDS = (9600, 19200, 38400, 57600, 115200, 230400)

# Commands a panel may send in the clear when Secure Channel is required: enough to
# identify us and start the handshake.  A plaintext POLL is answered with a bare ACK.
_PLAIN_OK = (CMD_POLL, CMD_ID, CMD_CAP, CMD_CHLNG, CMD_SCRYPT, CMD_LSTAT)


def _next_seq(s):
    return 1 if s >= 3 else s + 1


class PDIdentity:
    """Values for osdp_PDID: PDIdentity(vendor=0x0A0B0C, model=1, version=1, serial=7)."""

    def __init__(self, vendor=0, model=1, version=1, serial=0, firmware=(1, 0, 0)):
        self.vendor = vendor
        self.model = model
        self.version = version
        self.serial = serial
        self.firmware = firmware

    def pdid(self):
        v = self.vendor
        s = self.serial
        f = self.firmware
        return bytes((v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF, self.model & 0xFF,
                      self.version & 0xFF, s & 0xFF, (s >> 8) & 0xFF, (s >> 16) & 0xFF,
                      (s >> 24) & 0xFF, f[0], f[1], f[2]))

    def cuid(self):
        v = self.vendor
        s = self.serial
        return bytes((v & 0xFF, (v >> 8) & 0xFF, self.model & 0xFF, self.version & 0xFF,
                      s & 0xFF, (s >> 8) & 0xFF, (s >> 16) & 0xFF, (s >> 24) & 0xFF))


def default_caps(install_mode):
    """osdp_PDCAP entries (function, compliance, items) this node actually implements."""
    rx = osdp_frame.MAX_FRAME
    return (
        (3, 1, 0),  # card data format: raw bits (osdp_RAW)
        (4, 2, 1),  # one LED, timed commands
        (5, 2, 1),  # buzzer, timed commands
        (8, 1, 0),  # CRC-16 check character
        (9, 1, 1 if install_mode else 0),  # AES-128 SC; SCBK-D only in install mode
        (10, rx & 0xFF, rx >> 8),  # receive buffer size
        (11, rx & 0xFF, rx >> 8),  # largest combined message
    )


class PeripheralDevice:
    """The PD: pd = PeripheralDevice(1, app, scbk=key, rng=os.urandom); out = pd.receive(b, t)."""

    def __init__(self, address, app, scbk=None, install_mode=False, require_sc=None,
                 identity=None, rng=None):
        self.address = address
        self.app = app
        self.scbk = scbk
        self.install_mode = install_mode
        # A node provisioned with its own key refuses to do anything useful in the clear.
        self.require_sc = (scbk is not None) if require_sc is None else require_sc
        self.identity = identity or PDIdentity()
        self._rng = rng
        self.sc = osdp_sc.SecureChannel()
        self.reader = osdp_frame.FrameReader()
        self._last_seq = None
        self._last_raw = None
        self._last_reply = None
        self._in_flight = None
        self._last_cmd_ms = None
        self.offline_after_ms = OFFLINE_AFTER_MS
        self.pending_comset = None  # (addr, baud) to apply once the osdp_COM reply is out
        self.stats = {"rx": 0, "tx": 0, "nak": 0, "bad": 0, "retry": 0, "mac_fail": 0}

    # --- link state -------------------------------------------------------------------

    def is_online(self, now_ms):
        """True while the panel has polled us within offline_after_ms."""
        return self._last_cmd_ms is not None and now_ms - self._last_cmd_ms < self.offline_after_ms

    def tick(self, now_ms):
        """Expire the session when the panel has gone quiet (call from the main loop)."""
        if self._last_cmd_ms is not None and not self.is_online(now_ms):
            if self.sc.active or self.sc.pending:
                self.sc.reset()
            self._in_flight = None
            self._last_reply = None
            self._last_seq = None

    # --- bytes in, bytes out ------------------------------------------------------------

    def receive(self, data, now_ms):
        """Feed bus bytes; returns a list of replies to transmit (usually 0 or 1)."""
        self.reader.feed(data, now_ms)
        out = []
        while True:
            f = self.reader.next_frame()
            if f is None:
                return out
            r = self._on_frame(f, now_ms)
            if r is not None:
                self.stats["tx"] += 1
                out.append(r)

    def _on_frame(self, f, now_ms):
        addr = f.addr & 0x7F
        if f.addr & 0x80:
            return None  # a reply (another PD, or our own echo on a 2-wire bus)
        if addr != self.address and addr != osdp_frame.BROADCAST:
            return None
        if isinstance(f, osdp_frame.BadFrame):
            self.stats["bad"] += 1
            why = NAK_CHECK if f.reason == "check" else NAK_LENGTH
            return self._plain(f, REPLY_NAK, bytes((why,)))
        self.stats["rx"] += 1
        seq = f.seq
        if seq == 0:
            # CP (re)starts: forget session, cache and any in-flight report.
            self.sc.reset()
            self._in_flight = None
            self._last_reply = None
        elif self._last_seq is not None and seq == self._last_seq:
            if self._last_reply is not None and f.raw == self._last_raw:
                self._last_cmd_ms = now_ms
                self.stats["retry"] += 1
                return self._last_reply
        elif self._last_seq is not None and seq != _next_seq(self._last_seq):
            self._last_cmd_ms = now_ms
            return self._finish(f, self._plain(f, REPLY_NAK, bytes((NAK_SEQ,))))
        if self._in_flight is not None and seq != 0 and seq != self._last_seq:
            token = self._in_flight
            self._in_flight = None
            self.app.report_delivered(token)
        self._last_cmd_ms = now_ms
        return self._finish(f, self._dispatch(f, now_ms))

    def _finish(self, f, reply):
        self._last_seq = f.seq
        self._last_raw = f.raw
        self._last_reply = reply
        return reply

    # --- reply encoding -------------------------------------------------------------------

    def _plain(self, f, code, data=b"", scb=None):
        if code == REPLY_NAK:
            self.stats["nak"] += 1
        return osdp_frame.build(self.address | 0x80, f.seq, code, data, f.use_crc, scb,
                                None, f.mark)

    def _reply(self, f, code, data=b""):
        """Reply inside the session when the command came inside it, else in the clear."""
        if not (self.sc.active and f.scb is not None and f.scb[1] >= osdp_sc.SCS_15):
            return self._plain(f, code, data)
        if code == REPLY_NAK:
            self.stats["nak"] += 1
        if data:
            scb = bytes((2, osdp_sc.SCS_18))
            data = self.sc.encrypt_reply(data)
        else:
            scb = bytes((2, osdp_sc.SCS_16))
        return osdp_frame.build(self.address | 0x80, f.seq, code, data, f.use_crc, scb,
                                self.sc.reply_mac, f.mark)

    # --- command handling -----------------------------------------------------------------

    def _dispatch(self, f, now_ms):
        code = f.code
        data = f.data
        scb = f.scb
        sc = self.sc
        if scb is not None and scb[1] >= osdp_sc.SCS_15:
            if not sc.active:
                return self._plain(f, REPLY_NAK, bytes((NAK_SC_REQUIRED,)))
            if not sc.check_command_mac(f.mac_input(), f.mac):
                self.stats["mac_fail"] += 1
                sc.reset()
                return self._plain(f, REPLY_NAK, bytes((NAK_SC_REQUIRED,)))
            if scb[1] == osdp_sc.SCS_17:
                data = sc.decrypt_command(data)
                if data is None:
                    sc.reset()
                    return self._plain(f, REPLY_NAK, bytes((NAK_SC_REQUIRED,)))
            secure = True
        else:
            secure = False
            if code not in (CMD_CHLNG, CMD_SCRYPT):
                if sc.active:
                    # A plaintext command inside a session: the session is over.
                    sc.reset()
                    return self._plain(f, REPLY_NAK, bytes((NAK_SC_REQUIRED,)))
                if self.require_sc and code not in _PLAIN_OK:
                    return self._plain(f, REPLY_NAK, bytes((NAK_SC_REQUIRED,)))

        if code == CMD_POLL:
            if len(data) != 0:
                return self._reply(f, REPLY_NAK, bytes((NAK_LENGTH,)))
            if secure or not self.require_sc:
                rep = self.app.next_report(now_ms)
                if rep is not None:
                    self._in_flight = rep[2]
                    return self._reply(f, rep[0], rep[1])
            return self._reply(f, REPLY_ACK)
        if code == CMD_ID:
            if len(data) != 1:
                return self._reply(f, REPLY_NAK, bytes((NAK_LENGTH,)))
            return self._reply(f, REPLY_PDID, self.identity.pdid())
        if code == CMD_CAP:
            if len(data) != 1:
                return self._reply(f, REPLY_NAK, bytes((NAK_LENGTH,)))
            caps = bytearray()
            for c in default_caps(self.install_mode):
                caps.extend(bytes(c))
            return self._reply(f, REPLY_PDCAP, caps)
        if code == CMD_LSTAT:
            return self._reply(f, REPLY_LSTATR, b"\x00\x00")  # no tamper, power normal
        if code == CMD_LED:
            if not data or len(data) % 14:
                return self._reply(f, REPLY_NAK, bytes((NAK_LENGTH,)))
            recs = [tuple(data[i:i + 14]) for i in range(0, len(data), 14)]
            for r in recs:
                if r[0] != 0 or r[1] != 0:
                    return self._reply(f, REPLY_NAK, bytes((NAK_RECORD,)))
            self.app.on_led(recs)
            return self._reply(f, REPLY_ACK)
        if code == CMD_BUZ:
            if len(data) != 5:
                return self._reply(f, REPLY_NAK, bytes((NAK_LENGTH,)))
            self.app.on_buzzer(data[0], data[1], data[2], data[3], data[4])
            return self._reply(f, REPLY_ACK)
        if code == CMD_COMSET:
            if len(data) != 5:
                return self._reply(f, REPLY_NAK, bytes((NAK_LENGTH,)))
            addr = data[0]
            baud = data[1] | (data[2] << 8) | (data[3] << 16) | (data[4] << 24)
            if addr > 126 or baud not in BAUDS or not self.app.on_comset(addr, baud):
                return self._reply(f, REPLY_NAK, bytes((NAK_RECORD,)))
            self.pending_comset = (addr, baud)
            return self._reply(f, REPLY_COM, bytes(data))
        if code == CMD_KEYSET:
            if not secure:
                return self._plain(f, REPLY_NAK, bytes((NAK_SC_REQUIRED,)))
            if len(data) != 18 or data[0] != 1 or data[1] != 16:
                return self._reply(f, REPLY_NAK, bytes((NAK_LENGTH,)))
            key = bytes(data[2:18])
            if not self.app.on_keyset(key):
                return self._reply(f, REPLY_NAK, bytes((NAK_RECORD,)))
            # ACK inside the current session; the next osdp_CHLNG uses the new key.
            reply = self._reply(f, REPLY_ACK)
            self.scbk = key
            self.require_sc = True
            return reply
        if code == CMD_CHLNG:
            return self._on_chlng(f, data)
        if code == CMD_SCRYPT:
            return self._on_scrypt(f, data)
        if code == CMD_MFG:
            if len(data) < 3:
                return self._reply(f, REPLY_NAK, bytes((NAK_LENGTH,)))
            vendor = data[0] | (data[1] << 8) | (data[2] << 16)
            rep = self.app.on_mfg(vendor, bytes(data[3:]))
            if rep is None:
                return self._reply(f, REPLY_NAK, bytes((NAK_RECORD,)))
            return self._reply(f, rep[0], rep[1])
        on_file = getattr(self.app, "on_file", None)
        if on_file is not None and code in (CMD_FILETRANSFER, CMD_ABORT):
            if not secure:  # an image only ever arrives inside the Secure Channel
                return self._plain(f, REPLY_NAK, bytes((NAK_SC_REQUIRED,)))
            if code == CMD_ABORT:
                on_file(None)
                return self._reply(f, REPLY_ACK)
            stat = on_file(bytes(data))
            if stat is None:
                return self._reply(f, REPLY_NAK, bytes((NAK_LENGTH,)))
            return self._reply(f, REPLY_FTSTAT, stat)
        return self._reply(f, REPLY_NAK, bytes((NAK_UNKNOWN,)))

    def _key_for(self, f):
        if f.scb is None or len(f.scb) < 3:
            return None
        if f.scb[2] == 0:
            return osdp_sc.SCBK_D if self.install_mode else None
        return self.scbk

    def _on_chlng(self, f, data):
        if f.scb is None or f.scb[1] != osdp_sc.SCS_11:
            return self._plain(f, REPLY_NAK, bytes((NAK_SC_REQUIRED,)))
        if len(data) != 8:
            return self._plain(f, REPLY_NAK, bytes((NAK_LENGTH,)))
        key = self._key_for(f)
        if key is None:
            self.sc.reset()
            return self._plain(f, REPLY_NAK, bytes((NAK_SC_UNSUPPORTED,)))
        rnd_b = self._rng(8)
        payload = self.sc.challenge(key, data, rnd_b, self.identity.cuid())
        return self._plain(f, REPLY_CCRYPT, payload, bytes((3, osdp_sc.SCS_12, f.scb[2])))

    def _on_scrypt(self, f, data):
        if f.scb is None or f.scb[1] != osdp_sc.SCS_13:
            return self._plain(f, REPLY_NAK, bytes((NAK_SC_REQUIRED,)))
        if len(data) != 16:
            return self._plain(f, REPLY_NAK, bytes((NAK_LENGTH,)))
        rmac = self.sc.confirm(data)
        if rmac is None:
            return self._plain(f, REPLY_NAK, bytes((NAK_SC_REQUIRED,)))
        return self._plain(f, REPLY_RMAC_I, rmac, bytes((3, osdp_sc.SCS_14, 1)))
