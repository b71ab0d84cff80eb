# A simulated PN532 on the far end of a shim UART: answers the commands the driver
# sends, with a card (UID) in the field or not.  Runs under MicroPython and CPython.
import pn532


class FakePN532:
    def __init__(self, backend):
        self.backend = backend
        backend.on_write = self._on_write
        self.uid = None
        self.sel_res = 0x00
        self.ats = b""
        self.buf = bytearray()
        self.commands = []
        self.split = 0  # >0: deliver responses in chunks of this size
        self.apdu = None  # ISO-DEP card: apdu bytes -> reply bytes (InDataExchange)

    def _respond(self, cmd, data):
        frame = bytearray()
        body = bytes((0xD5, cmd + 1)) + bytes(data)
        frame.extend(b"\x00\x00\xff" + bytes((len(body), (-len(body)) & 0xFF)) + body)
        frame.extend(bytes(((-sum(body)) & 0xFF, 0)))
        self.backend.push(pn532.ACK)
        self.backend.push(bytes(frame))

    def _on_write(self, data):
        self.buf.extend(data)
        while self._parse_host():
            pass

    def _parse_host(self):
        b = self.buf
        i = bytes(b).find(b"\x00\x00\xff")
        if i < 0 or len(b) < i + 5:
            return False
        n = b[i + 3]
        if len(b) < i + 5 + n + 2:
            return False
        body = bytes(b[i + 5:i + 5 + n])
        self.buf = b[i + 5 + n + 2:]
        cmd = body[1]
        self.commands.append(cmd)
        if cmd == 0x02:
            self._respond(cmd, b"\x32\x01\x06\x07")
        elif cmd in (0x14, 0x32):
            self._respond(cmd, b"")
        elif cmd == 0x40:
            if self.apdu is None or self.uid is None:
                self._respond(cmd, b"\x01")  # status: time-out, no card answered
            else:
                self._respond(cmd, b"\x00" + bytes(self.apdu(body[3:])))
        elif cmd == 0x4A:
            if self.uid is None:
                self._respond(cmd, b"\x00")
            else:
                u = self.uid
                self._respond(cmd, bytes((1, 1, 0x00, 0x44, self.sel_res, len(u))) + u + self.ats)
        return True
