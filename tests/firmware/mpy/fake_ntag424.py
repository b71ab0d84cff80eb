# A simulated NTAG 424 DNA (Type 4 tag) at the APDU level, behind FakePN532.apdu: answers
# ISO SELECT of the NDEF application and of file E104, and READ BINARY of its NDEF file;
# anything else (or out of order) is 6A82 "not found".  Records every APDU it got.
# Runs under MicroPython and CPython.

SELECT_APP = b"\x00\xa4\x04\x00\x07\xd2\x76\x00\x00\x85\x01\x01\x00"
SELECT_NDEF = b"\x00\xa4\x00\x0c\x02\xe1\x04"


class FakeNtag424:
    def __init__(self, ndef, has_app=True):
        self.file = bytes(((len(ndef) >> 8) & 0xFF, len(ndef) & 0xFF)) + ndef
        self.has_app = has_app
        self.app = self.selected = False
        self.apdus = []

    def exchange(self, apdu):
        apdu = bytes(apdu)
        self.apdus.append(apdu)
        if apdu == SELECT_APP and self.has_app:
            self.app = True
            self.selected = False
            return b"\x90\x00"
        if apdu == SELECT_NDEF and self.app:
            self.selected = True
            return b"\x90\x00"
        if len(apdu) == 5 and apdu[:2] == b"\x00\xb0" and self.selected:
            off = (apdu[2] << 8) | apdu[3]
            return self.file[off:off + apdu[4]] + b"\x90\x00"
        return b"\x6a\x82"

    def reads(self):
        """How many times the NDEF file was read from its start (one per SUN message)."""
        return sum(1 for a in self.apdus if a == b"\x00\xb0\x00\x00\x02")


def uri_record(url):
    """A one-record NDEF message: a short well-known URI record, prefix code 4 (https://)."""
    assert url.startswith("https://")
    body = b"\x04" + url[len("https://"):].encode()
    return bytes((0xD1, 1, len(body), 0x55)) + body
