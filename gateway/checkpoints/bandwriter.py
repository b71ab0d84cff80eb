"""Provisioning NTAG 424 DNA bands: keys and SUN (SDM) settings, written through a transport.

    writer = BandWriter(master_key, url_prefix="https://band.example/t")
    result = writer.provision(transport, timeout_s=15)    # the band on the reader
    result.uid_hex, result.verified, result.counter

Theory of operation
-------------------
A new band has all five AES keys at zero and SDM off. For the band presented on the reader
(its UID from :meth:`BandTransport.wait_for_band`) the writer derives, from the site master
key only:

    key 0  application master key  AN10922(master, UID, "compound/app-master/v1")
    key 1  SDMMetaReadKey          the site's PICCData key (credentials/bands.py)
    key 2  SDMFileReadKey          AN10922(master, UID): the SDMMAC key the gateway checks

then, authenticated with key 0 (the factory key, or the derived one when the band was
provisioned by this site before: provisioning again is allowed and rewrites the same keys),
writes the NDEF file (one URI record, ``<prefix>?picc_data=<32 hex>&cmac=<16 hex>``), turns
SDM on over it (encrypted PICCData under key 1, SDMMAC under key 2, MAC input empty: the
patrol set-up of docs/credentials.md), changes keys 2 and 1, and key 0 last (changing key 0
ends the session). Finally it reads the band as a reader would and checks the SUN message
with :class:`~gateway.credentials.bands.BandVerifier`: a band is reported provisioned only
when its first read verifies. A band whose key 0 is neither the factory key nor ours belongs
to somebody else and is refused untouched (:class:`BandLocked`).

The transport is a capability (:class:`BandTransport`): the chip's commands, not bytes.
Built: :class:`~gateway.checkpoints.ev2link.Ev2Transport`, the chip's ISO 14443-4 APDUs with
EV2 secure messaging (:mod:`gateway.checkpoints.ev2`) over a card link — a PN532 on a serial
port (``--reader pn532:PORT``, :mod:`gateway.checkpoints.pn532`) or the simulated APDU chip
(``--reader sim-apdu``); and the command-level simulated chip of ``hil_tests/sims/ntag424.py``
(``--reader sim``). A node transport is not built (:func:`open_transport` says so).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any, Final, Protocol

from gateway.credentials.bands import BandVerifier, band_file_read_key, meta_read_key
from gateway.credentials.sun import KEY_LEN, UID_LEN, SunError, diversify_key
from gateway.errors import ConfigError, DeviceError, GatewayError

FACTORY_KEY: Final = bytes(KEY_LEN)
APP_MASTER_LABEL: Final = b"compound/app-master/v1"  # AN10922 system identifier for key 0
KEY_APP_MASTER: Final = 0
KEY_META_READ: Final = 1
KEY_FILE_READ: Final = 2
KEY_VERSION: Final = 1
NDEF_FILE: Final = 2
DEFAULT_URL_PREFIX: Final = "https://band.example/t"
MAX_URL_PREFIX: Final = 120
_URI_HTTPS: Final = 0x04  # NDEF URI identifier code for "https://"
_PICC_PLACEHOLDER: Final = "0" * 32
_MAC_PLACEHOLDER: Final = "0" * 16


class BandProvisionError(GatewayError):
    """Provisioning a band failed; ``uid`` names the band when it is known."""


class BadBandInput(BandProvisionError, ConfigError):
    """Bad input to provisioning (a key, a URL prefix, a reader spec); ``key`` names it."""

    def __init__(self, key: str, reason: str) -> None:
        ConfigError.__init__(self, key, reason)


class BandLocked(BandProvisionError):
    """The band's key 0 is neither the factory key nor this site's: not ours to write."""


class BandWriteError(BandProvisionError, DeviceError):
    """The reader or the band failed a step (``step``): nothing is claimed about the band."""


class BandCheckFailed(BandProvisionError):
    """The band was written but its first read does not verify (``sun_error``)."""


class BandTransport(Protocol):
    """The commands provisioning needs, for the band currently on the reader."""

    def wait_for_band(self, timeout_s: float) -> bytes:
        """Select the next band presented; its 7-byte UID."""
        ...

    def authenticate(self, key_no: int, key: bytes) -> None: ...
    def change_key(self, key_no: int, new_key: bytes, version: int, old_key: bytes) -> None: ...
    def write_ndef(self, offset: int, data: bytes) -> None: ...
    def change_file_settings(self, file_no: int, sdm: dict[str, int]) -> None: ...
    def read_ndef(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class NdefLayout:
    """The NDEF file the band carries and where SDM mirrors into it (byte offsets in the file)."""

    data: bytes
    picc_offset: int
    mac_offset: int

    def sdm_settings(self) -> dict[str, int]:
        return {
            "meta_key": KEY_META_READ,
            "file_key": KEY_FILE_READ,
            "picc_offset": self.picc_offset,
            "mac_input_offset": self.mac_offset,  # empty MAC input: the patrol set-up
            "mac_offset": self.mac_offset,
        }


@dataclass(frozen=True, slots=True)
class ProvisionResult:
    uid_hex: str
    counter: int
    verified: bool
    reprovisioned: bool  # key 0 was already this site's


def check_url_prefix(prefix: object) -> str:
    """An ``https://`` URL without query or fragment, printable ASCII; BadBandInput if not."""
    if not isinstance(prefix, str) or not prefix.startswith("https://"):
        raise BadBandInput("url_prefix", "must start with https://")
    if len(prefix) > MAX_URL_PREFIX:
        raise BadBandInput("url_prefix", f"longer than {MAX_URL_PREFIX} characters")
    if not all(0x21 <= ord(c) <= 0x7E for c in prefix) or any(c in prefix for c in "?#&"):
        raise BadBandInput("url_prefix", "printable ASCII without ?, # or &")
    return prefix


def ndef_layout(url_prefix: str) -> NdefLayout:
    """The NDEF file (NLEN + one short URI record) with zero placeholders for SUN mirroring."""
    rest = check_url_prefix(url_prefix)[len("https://") :]
    uri = f"{rest}?picc_data={_PICC_PLACEHOLDER}&cmac={_MAC_PLACEHOLDER}".encode("ascii")
    payload = bytes((_URI_HTTPS,)) + uri
    record = bytes((0xD1, 0x01, len(payload), 0x55)) + payload  # MB|ME|SR, TNF well-known, "U"
    data = len(record).to_bytes(2, "big") + record
    text = data.decode("latin-1")
    picc = text.index("picc_data=") + len("picc_data=")
    mac = text.index("&cmac=") + len("&cmac=")
    return NdefLayout(data, picc, mac)


def ndef_url(data: bytes) -> bytes:
    """The URL of the first (short, URI) NDEF record in an NDEF file; BandCheckFailed if none."""
    try:
        n = int.from_bytes(data[:2], "big")
        record = data[2 : 2 + n]
        if len(record) < 5 or record[1] != 0x01 or record[3] != 0x55:
            raise ValueError("not a URI record")
        payload = record[4 : 4 + record[2]]
        if payload[:1] != bytes((_URI_HTTPS,)):
            raise ValueError("not an https URI")
        return b"https://" + payload[1:]
    except (ValueError, IndexError) as exc:
        raise BandCheckFailed(f"the band's NDEF file holds no URL: {exc}") from None


def app_master_key(master_key: bytes, uid: bytes) -> bytes:
    """Key 0 of a band: AN10922-diversified from the master key by UID and its own label."""
    return diversify_key(master_key, uid, system_identifier=APP_MASTER_LABEL)


class BandWriter:
    """Writes this site's keys and SDM settings to bands (see the module docstring)."""

    def __init__(self, master_key: bytes, *, url_prefix: str = DEFAULT_URL_PREFIX) -> None:
        if not isinstance(master_key, bytes) or len(master_key) != KEY_LEN:
            raise BadBandInput(
                "checkpoints.band_key_file", f"the master key must be {KEY_LEN} bytes"
            )
        self.master_key = master_key
        self.layout = ndef_layout(url_prefix)
        self.meta_key = meta_read_key(master_key)

    def provision(self, transport: BandTransport, *, timeout_s: float = 15.0) -> ProvisionResult:
        """Provision the next band presented; BandProvisionError (a subclass) on failure."""
        uid = _step("select", None, transport.wait_for_band, timeout_s)
        if not isinstance(uid, bytes) or len(uid) != UID_LEN:
            raise BandWriteError("the reader returned no 7-byte UID", step="select")
        uid_hex = uid.hex()
        try:
            k0 = app_master_key(self.master_key, uid)
            k2 = band_file_read_key(self.master_key, uid)
        except SunError as exc:  # not reachable with a 7-byte UID; kept as a typed refusal
            raise BadBandInput("uid", exc.reason) from exc
        reprovision = False
        try:
            transport.authenticate(KEY_APP_MASTER, FACTORY_KEY)
        except Exception:
            try:
                transport.authenticate(KEY_APP_MASTER, k0)
            except Exception as exc:
                raise BandLocked(
                    "key 0 is neither the factory key nor this site's: the band belongs to "
                    "another site or was not reset",
                    uid=uid_hex,
                    detail=str(exc)[:200],
                ) from None
            reprovision = True
        old = (k0, self.meta_key, k2) if reprovision else (FACTORY_KEY,) * 3
        layout = self.layout
        _step("write_ndef", uid_hex, transport.write_ndef, 0, layout.data)
        settings = layout.sdm_settings()
        _step("change_file_settings", uid_hex, transport.change_file_settings, NDEF_FILE, settings)
        # Key 0 last: changing it ends the authenticated session.
        for slot, new in (
            (KEY_FILE_READ, k2),
            (KEY_META_READ, self.meta_key),
            (KEY_APP_MASTER, k0),
        ):
            _step(
                f"change_key {slot}",
                uid_hex,
                transport.change_key,
                slot,
                new,
                KEY_VERSION,
                old[slot],
            )
        data = _step("read_ndef", uid_hex, transport.read_ndef)
        check = BandVerifier(self.master_key).check(ndef_url(bytes(data)))
        if not check.verified or check.uid != uid_hex or check.counter is None:
            raise BandCheckFailed(
                "the band was written but its first read does not verify",
                uid=uid_hex,
                refusal=check.refusal,
                **check.detail,
            )
        return ProvisionResult(uid_hex, check.counter, True, reprovision)


def _step(step: str, uid: str | None, call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except BandProvisionError:
        raise
    except Exception as exc:
        fields: dict[str, Any] = {"step": step}
        if uid is not None:
            fields["uid"] = uid
        raise BandWriteError(f"{step} failed: {str(exc)[:200]}", **fields) from exc


def open_transport(spec: str) -> Any:
    """A transport from a ``--reader`` spec; BadBandInput if not one of:

    ``sim[:UID]``       a simulated blank band at the command level (source checkout: tests)
    ``sim-apdu[:UID]``  a simulated blank band answering APDUs, driven by the real
                        :class:`~gateway.checkpoints.ev2link.Ev2Transport` (EV2 secure
                        messaging end to end; source checkout)
    ``pn532:PORT``      a PN532 on a serial port (HSU), :mod:`gateway.checkpoints.pn532`
    """
    kind, _, arg = spec.partition(":")
    if kind in ("sim", "sim-apdu"):
        try:
            sims = importlib.import_module("hil_tests.sims.ntag424")
        except ImportError:
            raise BadBandInput("reader", "the simulated band needs a source checkout") from None
        try:
            uid = bytes.fromhex(arg) if arg else bytes.fromhex("04de5f1eacc040")
        except ValueError:
            raise BadBandInput("reader", f"{kind}:UID needs the UID in hex") from None
        if len(uid) != UID_LEN:
            raise BadBandInput("reader", f"a band UID is {UID_LEN} bytes")
        if kind == "sim":
            return sims.SimChipTransport(sims.SimChip(uid))
        from gateway.checkpoints.ev2link import Ev2Transport

        return Ev2Transport(sims.SimApduReader(sims.ApduChip(uid)))
    if kind == "pn532":
        return _open_pn532(arg)
    if kind == "node":
        raise BadBandInput("reader", "the node transport is not built yet: use pn532:PORT")
    raise BadBandInput("reader", "must be sim[:UID], sim-apdu[:UID] or pn532:PORT")


def _open_pn532(port: str) -> Any:
    if not port:
        raise BadBandInput("reader", "pn532:PORT needs the serial port, e.g. pn532:/dev/ttyUSB0")
    if not os.path.exists(port):  # a wrong name is bad input; a port that fails is a device error
        raise BadBandInput("reader", f"no serial port {port}")
    from gateway.checkpoints.ev2link import Ev2Transport
    from gateway.checkpoints.pn532 import Pn532Link

    return Ev2Transport(Pn532Link.open(port))  # Pn532Error (a DeviceError) if it does not answer
