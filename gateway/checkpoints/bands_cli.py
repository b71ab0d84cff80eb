"""``compound-gw bands provision`` and ``compound-gw bands list``.

    compound-gw bands provision --reader pn532:PORT|sim-apdu[:UID]|sim[:UID] [--count 1]
                                [--timeout 15] [--url-prefix URL]
    compound-gw bands list [--json] [--journal PATH]

``provision`` writes this site's keys and SUN settings to each band laid on the reader
(:mod:`gateway.checkpoints.bandwriter`; the site master key from ``checkpoints.band_key_file``)
and proves each with a first verified read. ``list`` shows every band of the roster and every
band seen in the journal: verified (NTAG 424 DNA, SUN checked), UID only (cloneable), or never
seen, with its last read, counter, counter gaps and refusals, read-only from the journal file
(works while the daemon runs). Exit codes: 0 ok, 1 a band or the reader failed, 2 bad input
or configuration.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from gateway.checkpoints.bandwriter import (
    DEFAULT_URL_PREFIX,
    BadBandInput,
    BandProvisionError,
    BandWriter,
    open_transport,
)
from gateway.checkpoints.cli import _common, load_section
from gateway.checkpoints.config import load_band_master_key
from gateway.checkpoints.core import UNKNOWN_GUARD
from gateway.errors import ConfigError, DeviceError, JournalError
from gateway.i18n import N_, _, fmt_time, word

# Events that say something about a band (kinds from gateway/checkpoints/core.py).
BAND_KINDS: Final = frozenset({"tap", "tap.delivered_late", "unknown_wristband", "tap.refused"})
PAGE: Final = 5000
VERIFIED, UID_ONLY, NEVER_SEEN, REFUSED_ONLY = "verified", "uid_only", "never_seen", "refused"
STATUS_WORDS: Final = {
    VERIFIED: N_("verified (NTAG 424 DNA)"),
    UID_ONLY: N_("UID only: can be cloned"),
    NEVER_SEEN: N_("never seen"),
    REFUSED_ONLY: N_("refused reads only"),
}


@dataclass(slots=True)
class BandRow:
    """What the journal says about one band."""

    wristband: str
    guard: str = ""
    on_roster: bool = False
    verified_reads: int = 0
    uid_only_reads: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    last_seen: float | None = None
    last_verified: bool | None = None
    counter: int | None = None
    gaps: int = 0

    @property
    def status(self) -> str:
        if self.last_verified is None:
            return REFUSED_ONLY if self.refused else NEVER_SEEN
        return VERIFIED if self.last_verified else UID_ONLY


def band_table(roster: Mapping[str, str], events: Iterable[Any]) -> list[BandRow]:
    """Rows for the roster's bands and every band in ``events`` (journal ``Event`` objects),
    roster first, then by band. Pure: no I/O."""
    rows: dict[str, BandRow] = {
        band: BandRow(band, guard, on_roster=True) for band, guard in sorted(roster.items())
    }
    for ev in events:
        p = ev.payload
        if ev.kind not in BAND_KINDS or not isinstance(p, Mapping):
            continue
        band = p.get("wristband")
        if not isinstance(band, str) or not band:
            continue
        guard = p.get("guard")
        named = guard if isinstance(guard, str) and guard != UNKNOWN_GUARD else ""
        row = rows.setdefault(band, BandRow(band, named))
        if ev.kind == "tap.refused":
            reason = str(p.get("reason") or "?")
            row.refused[reason] = row.refused.get(reason, 0) + 1
            continue
        verified = p.get("verified") is True
        row.last_seen = ev.wall_time
        row.last_verified = verified
        if verified:
            row.verified_reads += 1
            counter, gap = p.get("counter"), p.get("counter_gap")
            if isinstance(counter, int) and not isinstance(counter, bool):
                row.counter = counter
            if isinstance(gap, int) and not isinstance(gap, bool) and gap > 0:
                row.gaps += gap
        else:
            row.uid_only_reads += 1
    return sorted(rows.values(), key=lambda r: (not r.on_roster, r.wristband))


def read_band_events(journal_path: Path) -> Iterable[Any]:
    """Every event of the journal file, page by page, read-only."""
    from gateway.journal import read_events

    after = 0
    while True:
        page = read_events(journal_path, after_seq=after, limit=PAGE)
        if not page:
            return
        yield from page
        after = page[-1].seq


def format_bands(rows: list[BandRow], tz: str) -> str:
    from i18n import format_table

    headers = [
        _("band"),
        _("guard"),
        _("credential"),
        _("last read"),
        _("counter"),
        _("counter gaps"),
        _("refused"),
    ]
    cells = []
    for r in rows:
        cells.append(
            [
                r.wristband,
                r.guard or _("(not on the roster)"),
                word(r.status, STATUS_WORDS),
                fmt_time(r.last_seen, tz) if r.last_seen is not None else "-",
                "-" if r.counter is None else str(r.counter),
                str(r.gaps),
                str(sum(r.refused.values())),
            ]
        )
    verified = sum(1 for r in rows if r.status == VERIFIED)
    head = _("%(n)s bands, %(v)s verified") % {"n": len(rows), "v": verified}
    return head + "\n" + format_table(headers, cells)


def _journal_and_tz(args: argparse.Namespace) -> tuple[Path, str]:
    if args.journal:
        return Path(args.journal), args.timezone or "Asia/Shanghai"
    from gateway.config import load_config

    cfg = load_config(args.config)
    return cfg.journal_path, args.timezone or cfg.gateway.timezone


def cmd_bands_list(args: argparse.Namespace) -> int:
    try:
        section, _base, _status = load_section(args)
        journal, tz = _journal_and_tz(args)
    except ConfigError as exc:
        print(_("config error: %(reason)s") % {"reason": exc.reason})
        return 2
    roster = {g.wristband: g.guard for g in section.roster}
    try:
        rows = band_table(roster, read_band_events(journal) if journal.exists() else ())
    except JournalError as exc:
        print(_("cannot read the journal: %(reason)s") % {"reason": exc.reason})
        return 1
    if args.json:
        out = [asdict(r) | {"status": r.status} for r in rows]
        print(json.dumps(out, indent=2, sort_keys=True, ensure_ascii=False))
    else:
        print(format_bands(rows, tz))
    return 0


def cmd_bands_provision(args: argparse.Namespace) -> int:
    try:
        section, base, _status = load_section(args)
        master = load_band_master_key(section, base)
        if master is None:
            raise ConfigError(
                "checkpoints.band_key_file", "not set: bands are provisioned with the site key"
            )
        if not 1 <= args.count <= 1000:
            raise BadBandInput("count", "must be 1..1000")
        if not 0 < args.timeout <= 600:
            raise BadBandInput("timeout", "must be more than 0 and at most 600 seconds")
        writer = BandWriter(master, url_prefix=args.url_prefix)
        transport = open_transport(args.reader)
    except ConfigError as exc:
        print(_("config error: %(reason)s") % {"reason": exc.reason})
        return 2
    except DeviceError as exc:  # the PN532 did not open or answer
        print(_("the reader failed: %(reason)s") % {"reason": exc.reason})
        return 1
    try:
        return _provision_bands(args, writer, transport)
    finally:
        close = getattr(transport, "close", None)
        if close is not None:
            close()


def _provision_bands(args: argparse.Namespace, writer: BandWriter, transport: Any) -> int:
    failed = 0
    for i in range(args.count):
        print(_("lay band %(i)s of %(n)s on the reader ...") % {"i": i + 1, "n": args.count})
        started = time.monotonic()
        try:
            result = writer.provision(transport, timeout_s=args.timeout)
        except BandProvisionError as exc:
            failed += 1
            print(_("band not provisioned: %(reason)s") % {"reason": exc.reason})
            continue
        words = (
            _("provisioned again (already this site's)")
            if result.reprovisioned
            else _("provisioned")
        )
        print(
            _("band %(uid)s %(what)s; first read verified (counter %(ctr)s, %(s).1f s)")
            % {
                "uid": result.uid_hex,
                "what": words,
                "ctr": result.counter,
                "s": time.monotonic() - started,
            }
        )
        print(
            _('add it to [checkpoints] roster as wristband = "%(uid)s"') % {"uid": result.uid_hex}
        )
    return 1 if failed else 0


def add_cli(subparsers: Any) -> None:
    """Register ``bands provision`` and ``bands list`` on the ``compound-gw`` parser."""
    bands = subparsers.add_parser("bands", help=_("NTAG 424 DNA wristbands: provision, list"))
    sub = bands.add_subparsers(dest="bands_command", required=True)
    p = sub.add_parser(
        "provision", help=_("write this site's keys and SUN settings to bands on a reader")
    )
    _common(p)
    p.add_argument(
        "--reader",
        required=True,
        help=_(
            "the reader: pn532:PORT (a PN532 on a serial port), sim-apdu[:UID] or sim[:UID]"
            " (simulated bands)"
        ),
    )
    p.add_argument("--count", type=int, default=1, help=_("how many bands, one after another"))
    p.add_argument("--timeout", type=float, default=15.0, help=_("seconds to wait for each band"))
    p.add_argument(
        "--url-prefix",
        default=DEFAULT_URL_PREFIX,
        help=_("https URL the band's NDEF record starts with (default: %(default)s)"),
    )
    p.set_defaults(handler=cmd_bands_provision)
    p = sub.add_parser("list", help=_("bands on the roster and in the journal: verified or not"))
    _common(p)
    p.add_argument("--journal", default="", help=_("journal file (default: the gateway's)"))
    p.add_argument("--timezone", default="", help=_("time zone for times (default: the gateway's)"))
    p.add_argument("--json", action="store_true", help=_("machine-readable output"))
    p.set_defaults(handler=cmd_bands_list)
