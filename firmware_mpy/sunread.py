# A band's SUN message at a tap, for the OSDP card read (docs/credentials.md, "How a
# band's SUN message reaches the gateway").
#
# An ISO-DEP card (PN532 SEL_RES bit 0x20) is asked for its NDEF file over InDataExchange
# (read_ndef: SELECT D2760000850101, SELECT E104, READ BINARY).  When its URI carries a
# SUN message (a `cmac=` parameter), the card data the gateway gets is the part of the
# URL's query from the first SUN parameter to the end of the last one, as ASCII bytes:
#
#   picc_data=EF963FF7828658A599F3041510671E88&cmac=94EED9EE65337086     (64 bytes)
#   uid=04DE5F1EACC040&ctr=00003D&cmac=94EED9EE65337086                  (51 bytes)
#
# which is what gateway/credentials/payload.py parses; the node does not verify (the
# gateway holds the site's keys; sun.py has the checks and re-exports this reading part,
# so a tap loads only this module).  The text between `enc=` and `cmac=` is kept verbatim,
# so a MAC over it still checks.  Anything else keeps today's behaviour: the raw UID.
#
# Usage:  data = sunread.read(nfc, target, clock_ms)   # bytes, None (UID card) or OSError

from micropython import const

NDEF_AID = b"\xd2\x76\x00\x00\x85\x01\x01"  # NFC Forum Type 4 Tag application
NDEF_FILE = b"\xe1\x04"
READ_CHUNK = const(48)  # one PN532 frame holds well over this
MAX_NDEF = const(512)
MAX_CARD_DATA = const(64)  # an OSDP card read carries at most 64 bytes (libosdp)
_URI_PREFIX = {0: "", 1: "http://www.", 2: "https://www.", 3: "http://", 4: "https://"}
_SUN_KEYS = ("picc_data", "uid", "ctr", "enc", "cmac")


class SunError(ValueError):
    """A SUN read that is malformed or not authentic.  kind: 'malformed', 'bad_picc_data',
    'bad_mac' (as the gateway's SunError); field names the culprit input."""

    def __init__(self, kind, field, reason):
        super().__init__("%s: %s" % (field, reason))
        self.kind = kind
        self.field = field


# ---- reading the band (ISO 7816-4 APDUs over ISO-DEP) ---------------------------------


def select_app_apdu():
    return b"\x00\xa4\x04\x00" + bytes((len(NDEF_AID),)) + NDEF_AID + b"\x00"


def select_file_apdu():
    return b"\x00\xa4\x00\x0c\x02" + NDEF_FILE


def read_binary_apdu(offset, n):
    return bytes((0x00, 0xB0, (offset >> 8) & 0x7F, offset & 0xFF, n))


def _ok(reply, what):
    if len(reply) < 2 or reply[-2] != 0x90 or reply[-1] != 0x00:
        sw = bytes(reply[-2:]) if len(reply) >= 2 else bytes(reply)
        raise SunError("malformed", what, "status %s" % "".join("%02x" % b for b in sw))
    return bytes(reply[:-2])


def read_ndef(exchange):
    """The NDEF message of a Type 4 tag: exchange(apdu) -> reply bytes (data + SW1 SW2)."""
    _ok(exchange(select_app_apdu()), "select_application")
    _ok(exchange(select_file_apdu()), "select_file")
    head = _ok(exchange(read_binary_apdu(0, 2)), "read_binary")
    if len(head) != 2:
        raise SunError("malformed", "read_binary", "short NLEN")
    n = (head[0] << 8) | head[1]
    if not 0 < n <= MAX_NDEF:
        raise SunError("malformed", "ndef", "length %d outside 1..%d" % (n, MAX_NDEF))
    out = bytearray()
    while len(out) < n:
        want = min(READ_CHUNK, n - len(out))
        part = _ok(exchange(read_binary_apdu(2 + len(out), want)), "read_binary")
        if not part or len(part) > want:
            raise SunError("malformed", "read_binary", "wrong length")
        out.extend(part)
    return bytes(out)


def ndef_uri(msg):
    """The URI of an NDEF message's first record (short record, well-known type 'U')."""
    if len(msg) < 5:
        raise SunError("malformed", "ndef", "too short")
    flags = msg[0]
    il = 1 if flags & 0x08 else 0  # an ID length byte follows the payload length
    if not flags & 0x10 or flags & 0x07 != 1 or msg[1] != 1:
        raise SunError("malformed", "ndef", "not a short well-known record")
    plen = msg[2]
    id_len = msg[3] if il else 0
    at = 3 + il
    if at >= len(msg) or msg[at] != 0x55:
        raise SunError("malformed", "ndef", "not a URI record")
    start = at + 1 + id_len
    if plen < 1 or start + plen > len(msg):
        raise SunError("malformed", "ndef", "record longer than the message")
    payload = msg[start:start + plen]
    try:
        return _URI_PREFIX.get(payload[0], "") + bytes(payload[1:]).decode()
    except UnicodeError:
        raise SunError("malformed", "ndef", "URI is not UTF-8")


def card_data(url):
    """The SUN part of a band's URL as card data bytes, or None when it carries no SUN
    message; SunError ('malformed') when it does but cannot go out in one card read."""
    q = url.find("?")
    if q < 0 or "cmac=" not in url.lower():
        return None
    first = last = -1
    mac = False
    pos = q + 1
    for part in url[q + 1:].split("&"):
        key = part.partition("=")[0].lower()
        if key in _SUN_KEYS:
            if first < 0:
                first = pos
            last = pos + len(part)
            mac = mac or key == "cmac"
        pos += len(part) + 1
    if not mac:
        return None  # 'cmac=' only inside another parameter's value: not a SUN message
    part = url[first:last]
    if len(part) > MAX_CARD_DATA:
        raise SunError("malformed", "url", "SUN part longer than %d bytes" % MAX_CARD_DATA)
    for c in part:
        if not "!" <= c <= "~":
            raise SunError("malformed", "url", "not printable ASCII")
    return part.encode()


def read(nfc, target, clock_ms):
    """Card data for an ISO-DEP target: the SUN message (bytes), or None for a card that
    has no SUN message (no NDEF application, no URI, no `cmac=`: send its UID).  OSError
    when the card stopped answering (it left the field mid-read)."""
    try:
        msg = read_ndef(lambda apdu: nfc.data_exchange(target.tg, apdu, clock_ms))
        return card_data(ndef_uri(msg))
    except SunError:
        return None
