"""Verifying a card read as a band credential: SUN MAC, band key, counter rule (sans-IO).

    bands = BandVerifier(master_key, require_verified=False)
    bands.learn("04de5f1eacc040", 61)          # counters seen before (from the journal)
    check = bands.check(card_data)              # BandCheck: verified / refused and why

Keys: the site holds one master key (a 0600 file). Each band's SDMFileReadKey (the SDMMAC
key) is diversified from it per NXP AN10922 with the band's UID, so a key read out of one
band opens that band only. PICCData must be decrypted before the UID is known, so the
SDMMetaReadKey is one per site: ``CMAC(master, "compound/sdm-meta-read-key/v1")``.
Provisioning writes both into each band (docs/credentials.md).

The counter of the last verified read of each band is kept here; it must rise strictly. The
state is rebuilt at start from the ``counter`` of verified taps in the journal (no extra
writes per tap). Nothing here raises for a hostile read: every outcome is a BandCheck.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.credentials.payload import parse_reader_payload
from gateway.credentials.sun import (
    READ_CTR_MAX,
    SunError,
    SunRead,
    aes_cmac,
    check_counter,
    decrypt_picc_data,
    diversify_key,
    verify_encrypted,
    verify_plain,
)

META_KEY_LABEL = b"compound/sdm-meta-read-key/v1"

# Refusal reasons as journaled (tap.refused ``reason``).
REPLAY = "replay"
BAD_MAC = "bad_mac"
BAD_PICC_DATA = "bad_picc_data"
MALFORMED = "malformed"
UNVERIFIED_BAND = "unverified_band"
SUN_NOT_CONFIGURED = "sun_not_configured"


def meta_read_key(master_key: bytes) -> bytes:
    """The site's SDMMetaReadKey (PICCData encryption) derived from the master key."""
    return aes_cmac(master_key, META_KEY_LABEL)


def band_file_read_key(master_key: bytes, uid: bytes) -> bytes:
    """A band's SDMFileReadKey (SDMMAC), AN10922-diversified from the master key by UID."""
    return diversify_key(master_key, uid)


@dataclass(frozen=True, slots=True)
class BandCheck:
    """What a card read says about the band that made it.

    ``sun``: the read carried a SUN message. ``verified``: its MAC checked out and its counter
    rose. ``uid``: the band's UID in hex (for a SUN read: the authentic or claimed one; None
    when it could not be decrypted). ``refusal``: why the tap is refused (None: accepted).
    ``detail``: extra evidence for the journal (error field, last counter seen).
    """

    sun: bool
    verified: bool
    uid: str | None = None
    counter: int | None = None
    gap: int = 0
    refusal: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class BandVerifier:
    """Per-site band policy and per-band counter state (see the module docstring)."""

    master_key: bytes | None
    require_verified: bool = False
    counters: dict[str, int] = field(default_factory=dict)
    _meta_key: bytes | None = None

    def __post_init__(self) -> None:
        if self.master_key is not None:
            self._meta_key = meta_read_key(self.master_key)

    def learn(self, uid_hex: str, counter: object) -> bool:
        """A verified counter seen before (journal history): keep the highest. A value that
        cannot be a band's counter is ignored (False), never trusted or raised on."""
        if isinstance(counter, bool) or not isinstance(counter, int):
            return False
        if not 0 <= counter <= READ_CTR_MAX or not uid_hex:
            return False
        last = self.counters.get(uid_hex)
        if last is None or counter > last:
            self.counters[uid_hex] = counter
        return True

    def check(self, data: bytes) -> BandCheck:
        try:
            msg = parse_reader_payload(data)
        except SunError as exc:
            return BandCheck(True, False, refusal=MALFORMED, detail={"sun_error": exc.as_dict()})
        if msg is None:
            if self.require_verified:
                return BandCheck(False, False, uid=bytes(data).hex(), refusal=UNVERIFIED_BAND)
            return BandCheck(False, False, uid=bytes(data).hex())
        if self.master_key is None or self._meta_key is None:
            return BandCheck(True, False, refusal=SUN_NOT_CONFIGURED)
        claimed: bytes | None = msg.uid
        try:
            read: SunRead
            if msg.picc_data is not None:
                claimed = decrypt_picc_data(self._meta_key, msg.picc_data).uid
                read = verify_encrypted(
                    self._meta_key, band_file_read_key(self.master_key, claimed),
                    msg.picc_data, msg.mac, msg.mac_input,
                )  # fmt: skip
            else:
                assert msg.uid is not None and msg.read_ctr is not None
                read = verify_plain(
                    band_file_read_key(self.master_key, msg.uid), msg.uid, msg.read_ctr,
                    msg.mac, msg.mac_input,
                )  # fmt: skip
        except SunError as exc:
            return BandCheck(
                True, False, uid=None if claimed is None else claimed.hex(),
                refusal=exc.kind, detail={"sun_error": exc.as_dict()},
            )  # fmt: skip
        uid = read.uid.hex()
        last = self.counters.get(uid)
        outcome = check_counter(last, read.read_ctr)
        if not outcome.accepted:
            return BandCheck(True, False, uid=uid, counter=read.read_ctr, refusal=REPLAY,
                             detail={"last_counter": last})  # fmt: skip
        self.counters[uid] = read.read_ctr
        return BandCheck(True, True, uid=uid, counter=read.read_ctr, gap=outcome.gap)
