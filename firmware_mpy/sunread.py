# A band's SUN message at a tap, for the OSDP card read (docs/credentials.md, "How a
# band's SUN message reaches the gateway").
#
# An ISO-DEP card (PN532 SEL_RES bit 0x20) is asked for its NDEF file over InDataExchange
# (sun.read_ndef: SELECT D2760000850101, SELECT E104, READ BINARY).  When its URI carries a
# SUN message (a `cmac=` parameter), the card data the gateway gets is the part of the
# URL's query from the first SUN parameter to the end of the last one, as ASCII bytes:
#
#   picc_data=EF963FF7828658A599F3041510671E88&cmac=94EED9EE65337086     (64 bytes)
#   uid=04DE5F1EACC040&ctr=00003D&cmac=94EED9EE65337086                  (51 bytes)
#
# which is what gateway/credentials/payload.py parses; the node does not verify (the
# gateway holds the site's keys).  The text between `enc=` and `cmac=` is kept verbatim,
# so a MAC over it still checks.  Anything else keeps today's behaviour: the raw UID.
#
# Usage:  data = sunread.read(nfc, target, clock_ms)   # bytes, None (UID card) or OSError

from micropython import const

import sun

MAX_CARD_DATA = const(64)  # an OSDP card read carries at most 64 bytes (libosdp)
_SUN_KEYS = ("picc_data", "uid", "ctr", "enc", "cmac")


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
        raise sun.SunError("malformed", "url", "SUN part longer than %d bytes" % MAX_CARD_DATA)
    for c in part:
        if not "!" <= c <= "~":
            raise sun.SunError("malformed", "url", "not printable ASCII")
    return part.encode()


def read(nfc, target, clock_ms):
    """Card data for an ISO-DEP target: the SUN message (bytes), or None for a card that
    has no SUN message (no NDEF application, no URI, no `cmac=`: send its UID).  OSError
    when the card stopped answering (it left the field mid-read)."""
    try:
        url = sun.ndef_uri(sun.read_ndef(lambda apdu: nfc.data_exchange(target.tg, apdu,
                                                                          clock_ms)))
        return card_data(url)
    except sun.SunError:
        return None
