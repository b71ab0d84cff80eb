"""A band transport speaking the chip's APDUs with EV2 secure messaging over any card link.

    transport = Ev2Transport(link)      # link.activate(timeout_s) -> UID, link.exchange(apdu)
    BandWriter(master).provision(transport)

:class:`Ev2Transport` is the :class:`~gateway.checkpoints.bandwriter.BandTransport` of a real
NTAG 424 DNA: each provisioning step becomes the ISO/IEC 7816-4 APDUs of
:mod:`gateway.checkpoints.ev2` (AuthenticateEV2First; WriteData to the NDEF file; ChangeFile-
Settings and ChangeKey fully encrypted and MAC'd; ISOSelectFile and ISOReadBinary for the read
a phone makes). The link is anything with ``activate`` and ``exchange``: a PN532 on a serial
port (:mod:`gateway.checkpoints.pn532`), or the simulated reader of
``hil_tests/sims/ntag424.py``.

Errors: every failure is an :class:`~gateway.checkpoints.ev2.Ev2Error` — :class:`LinkError`
(the reader failed or no band answered), ``ChipStatusError`` (the band said no, e.g. 91 AE
for a wrong key), ``SecureMessagingError`` (a reply failed a check: length, MAC, RndA'),
``Ev2UsageError`` (a command we cannot build). Whatever bytes come back, nothing else is
raised. A failed command ends the session (the chip ends it too).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Final, Protocol

from gateway.checkpoints import ev2
from gateway.checkpoints.ev2 import (
    FULL,
    MAC,
    PLAIN,
    Ev2Auth,
    Ev2Error,
    Ev2Session,
    Ev2UsageError,
    Mode,
    SdmSettings,
    SecureMessagingError,
)

NDEF_FILE_NO: Final = 2
NDEF_FILE_SIZE: Final = 256
CHUNK: Final = 128  # data bytes per WriteData / ISOReadBinary: fits a PN532 frame
UID_LEN: Final = 7
SDM_KEYS: Final = frozenset(
    {"meta_key", "file_key", "picc_offset", "mac_input_offset", "mac_offset"}
)


class LinkError(Ev2Error):
    """The reader failed: no band in the field, a timeout, a broken serial line."""


class CardLink(Protocol):
    def activate(self, timeout_s: float) -> bytes:
        """Wait for the next card (ISO 14443-4 type A) and activate it; its UID."""
        ...

    def exchange(self, apdu: bytes) -> bytes:
        """Send one APDU to the active card; its reply (data and status word)."""
        ...


class Ev2Transport:
    """NTAG 424 DNA provisioning commands as APDUs over ``link`` (see the module docstring).

    ``log``: the steps sent, for tests and diagnostics (no key material)."""

    def __init__(self, link: CardLink, *, random: Callable[[int], bytes] = os.urandom) -> None:
        self.link = link
        self.random = random
        self.session: Ev2Session | None = None
        self.log: list[str] = []

    def close(self) -> None:
        """Close the link (its serial port) if it has a ``close``."""
        close = getattr(self.link, "close", None)
        if close is not None:
            close()

    # ---- the link

    def _exchange(self, apdu: bytes) -> bytes:
        try:
            reply = self.link.exchange(apdu)
        except Ev2Error:
            raise
        except Exception as exc:  # the link's own errors: serial, timeouts, no card
            raise LinkError(f"the reader failed: {str(exc)[:200]}") from exc
        if not isinstance(reply, bytes | bytearray):
            raise SecureMessagingError("exchange", "length", "the reader returned no bytes")
        return bytes(reply)

    def _iso(self, apdu: bytes, command: str) -> bytes:
        return ev2.check_plain_ok(self._exchange(apdu), command, ev2.SW_ISO_OK)

    def _session(self) -> Ev2Session:
        if self.session is None:
            raise Ev2UsageError("not authenticated: call authenticate first")
        return self.session

    def _secure(
        self, cmd: int, header: bytes, data: bytes, mode: Mode, reply_mode: Mode, command: str
    ) -> None:
        """One command in the session whose reply carries no data (all the writes here)."""
        s = self._session()
        try:
            reply = s.response(
                self._exchange(s.command(cmd, header, data, mode)), reply_mode, command
            )
            if reply:
                raise SecureMessagingError(command, "length", "data in a reply that has none")
        except Ev2Error:
            self.session = None
            raise

    def _select_ndef_application(self) -> None:
        self.session = None  # selecting the application ends any authentication
        self._iso(ev2.iso_select_aid(), "ISOSelectFile(NDEF application)")

    # ---- BandTransport

    def wait_for_band(self, timeout_s: float) -> bytes:
        self.log.append("select")
        self.session = None
        try:
            uid = self.link.activate(timeout_s)
        except Ev2Error:
            raise
        except Exception as exc:
            raise LinkError(f"no band: {str(exc)[:200]}") from exc
        if not isinstance(uid, bytes | bytearray) or len(uid) != UID_LEN:
            raise SecureMessagingError("activate", "length", "the band has no 7-byte UID")
        self._select_ndef_application()
        return bytes(uid)

    def authenticate(self, key_no: int, key: bytes) -> None:
        self.log.append(f"auth {key_no}")
        self.session = None
        auth = Ev2Auth(key_no, key, random=self.random)
        part2 = auth.second(self._exchange(auth.first()))
        self.session = auth.finish(self._exchange(part2))

    def change_key(self, key_no: int, new_key: bytes, version: int, old_key: bytes) -> None:
        self.log.append(f"change_key {key_no}")
        s = self._session()
        data = ev2.change_key_data(key_no, new_key, version, auth_key_no=s.key_no, old_key=old_key)
        if key_no == s.key_no:  # the session's own key: the reply has no MAC, the session ends
            try:
                self._secure(ev2.CMD_CHANGE_KEY, bytes((key_no,)), data, FULL, PLAIN, "ChangeKey")
            finally:
                self.session = None
            return
        self._secure(ev2.CMD_CHANGE_KEY, bytes((key_no,)), data, FULL, MAC, "ChangeKey")

    def write_ndef(self, offset: int, data: bytes) -> None:
        """WriteData to the NDEF file in Plain mode (its CommMode), in chunks."""
        self.log.append("write_ndef")
        if offset < 0 or offset + len(data) > NDEF_FILE_SIZE:
            raise Ev2UsageError(f"{len(data)} bytes at {offset} do not fit the NDEF file")
        for at in range(0, len(data), CHUNK):
            chunk = data[at : at + CHUNK]
            header = ev2.write_data_header(NDEF_FILE_NO, offset + at, len(chunk))
            if self.session is None:
                reply = self._exchange(ev2.native_apdu(ev2.CMD_WRITE_DATA, header + chunk))
                ev2.check_plain_ok(reply, "WriteData")
            else:
                self._secure(ev2.CMD_WRITE_DATA, header, chunk, PLAIN, PLAIN, "WriteData")

    def change_file_settings(self, file_no: int, sdm: Mapping[str, int]) -> None:
        """SDM on ``file_no``: encrypted PICCData under ``meta_key``, SDMMAC under
        ``file_key``, read free, write and change with key 0, Plain (a phone reads it)."""
        self.log.append("change_file_settings")
        if set(sdm) != SDM_KEYS:
            raise Ev2UsageError(f"SDM settings need exactly {sorted(SDM_KEYS)}")
        data = SdmSettings(**dict(sdm)).encode()
        self._secure(
            ev2.CMD_CHANGE_FILE_SETTINGS, bytes((file_no,)), data, FULL, FULL, "ChangeFileSettings"
        )

    def read_ndef(self) -> bytes:
        """The NDEF file as a phone reads it: select the application (the session ends) and
        the file, ISOReadBinary in chunks (one SUN message: the chip mirrors at the first)."""
        self.log.append("read_ndef")
        self._select_ndef_application()
        self._iso(ev2.iso_select_file(ev2.NDEF_FILE_ID), "ISOSelectFile(NDEF file)")
        out = bytearray()
        for at in range(0, NDEF_FILE_SIZE, CHUNK):
            part = self._iso(ev2.iso_read_binary(at, CHUNK), "ISOReadBinary")
            if len(part) != CHUNK:
                raise SecureMessagingError("ISOReadBinary", "length", f"{len(part)} bytes read")
            out += part
        return bytes(out)
