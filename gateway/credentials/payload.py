"""A band's SUN message as a reader hands it to the gateway (the raw card data of osdp_RAW).

An NTAG 424 DNA band answers a read with an NDEF URL whose query carries its SUN data. The
reader -- our node, or a commercial OSDP reader in NDEF/URL pass-through mode -- sends that
URL (or just its query) as the card data of a card read, in any card format (raw or ASCII):

    https://band.example/t?picc_data=EF963FF7828658A599F3041510671E88&cmac=94EED9EE65337086
    picc_data=EF963FF7828658A599F3041510671E88&cmac=94EED9EE65337086
    uid=04DE5F1EACC040&ctr=00003D&cmac=...              (UID and counter mirrored in clear)

A card read is a SUN message when its bytes contain ``cmac=`` (any case); anything else is a
UID-only read (:func:`parse_reader_payload` answers ``None``). A SUN message that is not
well formed raises :class:`~gateway.credentials.sun.SunError` with ``kind="malformed"``
and nothing else (the one error type of this parser); the tap path refuses and records it.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.credentials.sun import (
    PICC_DATA_LEN,
    SDMMAC_LEN,
    UID_LEN,
    SunError,
    parse_mirrored_ctr,
)

# OSDP card data is short; a SUN URL is ~100 characters. Longer is not a band.
MAX_PAYLOAD = 1024
MAX_PARAMS = 16
MARKER = b"cmac="
_PICC, _MAC, _ENC, _UID, _CTR = "picc_data", "cmac", "enc", "uid", "ctr"


@dataclass(frozen=True, slots=True)
class SunMessage:
    """The SUN parameters of one read (not yet verified).

    Either ``picc_data`` (encrypted UID and counter) or ``uid`` and ``read_ctr`` (mirrored in
    the clear) is set. ``mac_input`` is what the band MACed: empty in the patrol set-up, or
    the URL text from the first digit of ``enc`` up to the SDMMAC (AN12196).
    """

    mac: bytes
    mac_input: bytes
    picc_data: bytes | None = None
    uid: bytes | None = None
    read_ctr: int | None = None


def is_sun_payload(data: bytes) -> bool:
    """True when a card read carries a SUN message (``cmac=`` anywhere in it, any case)."""
    return MARKER in bytes(data).lower()


def _hex(value: str, field: str, length: int) -> bytes:
    if len(value) != 2 * length:
        raise SunError("malformed", field, f"must be {2 * length} hex digits")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise SunError("malformed", field, "not hex") from None


def parse_reader_payload(data: bytes) -> SunMessage | None:
    """The SUN message in a card read's data, ``None`` for a UID-only read; ``SunError``
    (``kind="malformed"``) for a SUN message that is not well formed."""
    raw = bytes(data)
    if not is_sun_payload(raw):
        return None
    if len(raw) > MAX_PAYLOAD:
        raise SunError("malformed", "payload", f"longer than {MAX_PAYLOAD} bytes")
    if not all(0x21 <= b <= 0x7E for b in raw):
        raise SunError("malformed", "payload", "not printable ASCII text")
    text = raw.decode("ascii")
    q = text.find("?")
    start = q + 1 if q >= 0 else 0
    query = text[start:]
    parts = query.split("&")
    if len(parts) > MAX_PARAMS:
        raise SunError("malformed", "payload", f"more than {MAX_PARAMS} parameters")
    found: dict[str, tuple[int, str]] = {}
    pos = start
    for part in parts:
        key, eq, value = part.partition("=")
        key = key.lower()
        if eq and key in (_PICC, _MAC, _ENC, _UID, _CTR):
            if key in found:
                raise SunError("malformed", key, "appears twice")
            found[key] = (pos + len(key) + 1, value)
        pos += len(part) + 1
    if _MAC not in found:
        raise SunError("malformed", _MAC, "missing")
    mac_at, mac_hex = found[_MAC]
    mac = _hex(mac_hex, "sdmmac", SDMMAC_LEN)
    mac_input = b""
    if _ENC in found:
        enc_at = found[_ENC][0]
        if enc_at >= mac_at:
            raise SunError("malformed", _ENC, "must come before cmac")
        mac_input = text[enc_at:mac_at].encode("ascii")
    if _PICC in found:
        if _UID in found or _CTR in found:
            raise SunError("malformed", _PICC, "picc_data and uid/ctr together")
        return SunMessage(mac, mac_input, picc_data=_hex(found[_PICC][1], _PICC, PICC_DATA_LEN))
    if _UID in found and _CTR in found:
        uid = _hex(found[_UID][1], _UID, UID_LEN)
        return SunMessage(mac, mac_input, uid=uid, read_ctr=parse_mirrored_ctr(found[_CTR][1]))
    raise SunError("malformed", "payload", "needs picc_data=, or uid= and ctr=")
