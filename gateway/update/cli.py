"""``compound-gw update ...``: signed bundles and the A/B install.

Release engineer (on their own machine; the private key never goes to a gateway)::

    compound-gw update keygen --key update-signing.key          # prints the public key
    compound-gw update make-bundle SRC OUT --key K --version 1.4.0 --release 42 \\
        --hardware rpi4 [--hardware cm4] [--expires-days 30]
    compound-gw update sign BUNDLE --key K

Gateway (as root; the public key is pinned in --trusted-key at provisioning)::

    compound-gw update verify BUNDLE        # checks only; a refusal is journaled
    compound-gw update install BUNDLE       # verify, stage, unpack, switch, start, confirm
    compound-gw update recover [--start]    # finish an interrupted install (before start)
    compound-gw update status [--json]
    compound-gw update selfcheck            # run by the updater after READY (exit 0 = healthy)
    compound-gw update fetch [--install]    # the centre's offer: fetch by hash over mTLS,
                                            # verify, then (--install) install it

Exit codes: 0 ok; 1 refused, rolled back or failed; 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from gateway.i18n import N_, _, fmt_time, word

DEFAULT_ROOT = "/opt/compound-gw"
DEFAULT_TRUSTED_KEY = "/etc/compound-gw/update-key.pub"
DEFAULT_HARDWARE_FILE = "/etc/compound-gw/hardware"
DEFAULT_CONFIG = "/etc/compound-gw/gateway.toml"

REFUSAL_WORDS = {
    "malformed": N_("the bundle's description is damaged or not in the expected form"),
    "unsigned": N_("the bundle is not signed"),
    "bad_signature": N_(
        "the signature does not match: the bundle was changed or signed by another key"
    ),
    "expired": N_("the bundle has expired"),
    "rollback": N_("the bundle is not newer than the installed version"),
    "failed_before": N_("this version failed here before and was rolled back"),
    "wrong_hardware": N_("the bundle is for other hardware"),
    "wrong_product": N_("the bundle is not for this gateway software"),
    "too_large": N_("the bundle is too large"),
    "missing_file": N_("a file of the bundle is missing"),
    "hash_mismatch": N_("a file of the bundle differs from its description"),
    "venv_failed": N_("the software packages of the bundle could not be installed"),
}

START_WORDS = {
    "no_ready": N_("it did not report ready in time"),
    "exited": N_("it stopped during start"),
    "selfcheck_failed": N_("its self-check failed"),
    "start_failed": N_("it could not be started"),
}

STATE_ERROR_WORDS = {
    "busy": N_("another update command is running; try again when it has finished"),
    "broken": N_("the update folder is damaged and needs a technician"),
}

RESULT_WORDS = {
    "installed": N_("installed"),
    "rolled_back": N_("rolled back"),
    "failed": N_("failed"),
    "interrupted": N_("interrupted"),
}


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        "-c",
        default=os.environ.get("COMPOUND_GW_CONFIG", DEFAULT_CONFIG),
        help=_("gateway config file (its data_dir holds the update events for the journal)"),
    )


def _gateway_args(p: argparse.ArgumentParser) -> None:
    _config_arg(p)
    p.add_argument(
        "--root",
        default=os.environ.get("COMPOUND_GW_UPDATE_ROOT", DEFAULT_ROOT),
        help=_("update root with slots a/, b/ and the current link (default %(default)s)"),
    )
    p.add_argument(
        "--trusted-key",
        default=DEFAULT_TRUSTED_KEY,
        help=_("pinned update public key, 64 hex digits (default %(default)s)"),
    )
    p.add_argument(
        "--hardware",
        default="",
        help=_("this gateway's hardware name (default: the first line of %(file)s)")
        % {"file": DEFAULT_HARDWARE_FILE},
    )
    p.add_argument("--ready-timeout", type=float, default=120.0, help=_("seconds to reach READY"))
    p.add_argument("--settle", type=float, default=5.0, help=_("seconds alive after READY"))
    p.add_argument(
        "--systemd-unit",
        default="",
        help=_(
            "start and stop the gateway through this systemd unit (Type=notify) instead of "
            "starting current/bin/compound-gw run directly"
        ),
    )
    p.add_argument("--json", action="store_true", help=_("machine-readable output"))


def add_cli(subparsers: Any) -> None:
    """Register ``update`` on the ``compound-gw`` parser."""
    p = subparsers.add_parser("update", help=_("signed updates with automatic rollback"))
    sub = p.add_subparsers(dest="update_command", required=True)

    k = sub.add_parser("keygen", help=_("make an update signing key (release engineer)"))
    k.add_argument("--key", required=True, help=_("private key file to create (0600)"))
    k.set_defaults(handler=cmd_keygen)

    m = sub.add_parser("make-bundle", help=_("build and sign a bundle from a folder"))
    m.add_argument("src", type=Path)
    m.add_argument("out", type=Path)
    m.add_argument("--key", required=True, help=_("private update key file (0600)"))
    m.add_argument("--version", required=True)
    m.add_argument("--release", type=int, required=True, help=_("increasing release number"))
    m.add_argument("--hardware", action="append", required=True)
    m.add_argument("--expires-days", type=float, default=30.0)
    m.set_defaults(handler=cmd_make_bundle)

    s = sub.add_parser("sign", help=_("(re)sign a bundle's metadata"))
    s.add_argument("bundle", type=Path)
    s.add_argument("--key", required=True)
    s.set_defaults(handler=cmd_sign)

    for name, handler, helptext in (
        ("verify", _guarded(cmd_verify), N_("check a bundle without installing it")),
        (
            "install",
            _guarded(cmd_install),
            N_("install a bundle into the other slot and switch to it"),
        ),
    ):
        q = sub.add_parser(name, help=_(helptext))
        q.add_argument("bundle", type=Path)
        _gateway_args(q)
        q.set_defaults(handler=handler)
    for name, handler, helptext in (
        ("recover", _guarded(cmd_recover), N_("finish an interrupted install")),
        ("status", _guarded(cmd_status), N_("installed version, slots and the last result")),
    ):
        q = sub.add_parser(name, help=_(helptext))
        _gateway_args(q)
        q.set_defaults(handler=handler)
        if name == "recover":
            q.add_argument(
                "--start", action="store_true", help=_("start the version left in place")
            )

    f = sub.add_parser("fetch", help=_("fetch the release the centre offers, and install it"))
    _gateway_args(f)
    f.add_argument(
        "--install", action="store_true", help=_("install the release once it is verified")
    )
    f.add_argument(
        "--rate",
        type=int,
        default=64 * 1024,
        help=_("download budget in bytes a second (0: unpaced)"),
    )
    f.set_defaults(handler=_guarded(cmd_fetch))

    c = sub.add_parser("selfcheck", help=_("exit 0 when the running daemon is healthy"))
    _config_arg(c)
    c.set_defaults(handler=cmd_selfcheck)


def _guarded(handler: Any) -> Any:
    """Run a gateway command; a busy or damaged update root is told in words (exit 1)."""

    def run(args: argparse.Namespace) -> int:
        from gateway.update.install import UpdateStateError

        try:
            return int(handler(args))
        except UpdateStateError as exc:
            if getattr(args, "json", False):
                print(json.dumps({"result": "error", **exc.as_dict()}))
            else:
                print(_(STATE_ERROR_WORDS[exc.code]), file=sys.stderr)
            return 1

    return run


# --------------------------------------------------------------------------- release engineer


def cmd_keygen(args: argparse.Namespace) -> int:
    from gateway.update.bundle import generate_key

    path = Path(args.key)
    if path.exists():
        print(_("%(path)s already exists; not overwritten.") % {"path": path}, file=sys.stderr)
        return 2
    print(generate_key(path))
    return 0


def cmd_make_bundle(args: argparse.Namespace) -> int:
    from gateway.update.bundle import UpdateRefused, load_private_key, make_bundle

    key = load_private_key(Path(args.key))
    if args.out.exists():
        print(_("%(path)s already exists; not overwritten.") % {"path": args.out}, file=sys.stderr)
        return 2
    try:
        meta = make_bundle(
            args.src,
            args.out,
            private_key=key,
            version=args.version,
            release=args.release,
            hardware=args.hardware,
            expires=int(time.time() + args.expires_days * 86400),
        )
    except UpdateRefused as exc:
        print(_("Bundle not made: %(reason)s") % {"reason": exc.reason}, file=sys.stderr)
        return 2
    print(
        _("Bundle %(version)s (release %(release)d), %(n)d files, signed.")
        % {"version": meta.version, "release": meta.release, "n": len(meta.files)}
    )
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    from gateway.update.bundle import UpdateRefused, load_private_key, sign_metadata

    try:
        sign_metadata(args.bundle, load_private_key(Path(args.key)))
    except UpdateRefused as exc:
        print(_("Not signed: %(reason)s") % {"reason": exc.reason}, file=sys.stderr)
        return 2
    print(_("Signed."))
    return 0


# --------------------------------------------------------------------------- gateway


def _hardware(args: argparse.Namespace) -> str:
    from gateway.errors import ConfigError

    if args.hardware:
        return str(args.hardware)
    try:
        with open(DEFAULT_HARDWARE_FILE, encoding="utf-8") as f:
            return f.readline(64).strip()
    except OSError as exc:
        raise ConfigError("--hardware", f"not given and {DEFAULT_HARDWARE_FILE}: {exc}") from exc


def _installer(args: argparse.Namespace) -> Any:
    from gateway.config import load_config
    from gateway.errors import ConfigError
    from gateway.update.bundle import load_public_key
    from gateway.update.install import Installer
    from gateway.update.outbox import OUTBOX_NAME, Outbox
    from gateway.update.runner import SpawnRunner, SystemdRunner

    cfg = load_config(args.config)
    try:
        public_key = load_public_key(Path(args.trusted_key))
    except (OSError, ValueError) as exc:
        raise ConfigError("--trusted-key", f"{args.trusted_key}: {exc}") from exc
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    env = {"COMPOUND_GW_CONFIG": str(Path(args.config).resolve())}
    runner: Any
    if args.systemd_unit:
        runner = SystemdRunner(
            args.systemd_unit, ready_timeout_s=args.ready_timeout, settle_s=args.settle, env=env
        )
    else:
        runner = SpawnRunner(
            root / "run.pid", ready_timeout_s=args.ready_timeout, settle_s=args.settle, env=env
        )
    outbox = Outbox(cfg.data_dir / OUTBOX_NAME)
    # Recovery and status never judge a bundle: they run without a hardware name (the unit's
    # ExecStartPre runs recover on every start, also on a box whose hardware file is missing).
    judging = getattr(args, "update_command", "") in {"verify", "install", "fetch"}
    hardware = _hardware(args) if judging else str(args.hardware or "")
    return Installer(
        root, public_key=public_key, hardware=hardware, runner=runner, record=outbox.record
    )


def _refused(exc: Any, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"result": "refused", **exc.as_dict()}))
    else:
        words = REFUSAL_WORDS.get(exc.code)
        print(
            _("Update refused: %(why)s.") % {"why": _(words) if words else exc.code},
            file=sys.stderr,
        )
    return 1


def cmd_verify(args: argparse.Namespace) -> int:
    from gateway.update.bundle import UpdateRefused

    installer = _installer(args)
    try:
        meta = installer.verify(args.bundle)
    except UpdateRefused as exc:
        return _refused(exc, args.json)
    if args.json:
        print(json.dumps({"result": "ok", "version": meta.version, "release": meta.release}))
    else:
        print(
            _("Bundle %(version)s (release %(release)d) is valid for this gateway.")
            % {"version": meta.version, "release": meta.release}
        )
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    from gateway.update.bundle import UpdateRefused

    installer = _installer(args)
    try:
        outcome = installer.install(args.bundle)
    except UpdateRefused as exc:
        return _refused(exc, args.json)
    return _outcome(outcome, args.json)


def cmd_fetch(args: argparse.Namespace) -> int:
    """Ask the centre for an offer; fetch it by hash over mTLS, verify, and install it."""
    import asyncio

    from gateway.config import load_config
    from gateway.sync.config import SyncPaths, SyncSection
    from gateway.sync.provision import read_enrollment
    from gateway.sync.tls import client_ssl_context
    from gateway.update.bundle import UpdateRefused
    from gateway.update.fetch import FetchFailed, ReleaseFetcher

    installer = _installer(args)
    cfg = load_config(args.config)
    section = getattr(cfg, "sync", None) or SyncSection()
    paths = SyncPaths.from_section(section, Path(cfg.data_dir))
    url = section.centre_url or str(read_enrollment(paths)["centre_url"])
    ctx = client_ssl_context(paths.ca, paths.cert, paths.key)
    fetcher = ReleaseFetcher(
        url,
        ctx,
        Path(cfg.data_dir) / "update-download",
        public_key=installer.public_key,
        hardware=installer.hardware,
        record=installer.record,
        rate_bytes_s=max(0, args.rate),
    )
    state = installer.load_state()

    async def fetch() -> Path | None:
        offer = await fetcher.offer()
        if offer is None:
            return None
        return await fetcher.fetch(
            offer,
            installed_release=int(state["installed_release"]),
            failed_releases=frozenset(int(r) for r in state["failed_releases"]),
        )

    try:
        bundle = asyncio.run(fetch())
    except UpdateRefused as exc:
        return _refused(exc, args.json)
    except FetchFailed as exc:
        if args.json:
            print(json.dumps({"result": "fetch_failed", "reason": str(exc)}))
        else:
            print(_("The release could not be fetched; it will be tried again."), file=sys.stderr)
        return 1
    if bundle is None:
        if args.json:
            print(json.dumps({"result": "no_offer"}))
        else:
            print(_("The centre offers no new release."))
        return 0
    if not args.install:
        if args.json:
            print(json.dumps({"result": "downloaded", "bundle": str(bundle)}))
        else:
            print(_("The release was fetched and verified: %(path)s") % {"path": bundle})
        return 0
    try:
        outcome = installer.install(bundle)
    except UpdateRefused as exc:
        return _refused(exc, args.json)
    return _outcome(outcome, args.json)


def _outcome(outcome: Any, as_json: bool) -> int:
    if as_json:
        print(json.dumps(outcome.__dict__))
    elif outcome.result == "installed":
        print(_("Version %(version)s installed and running.") % {"version": outcome.version})
    else:
        why = START_WORDS.get(outcome.reason)
        print(
            _("Version %(version)s was %(result)s: %(why)s.")
            % {
                "version": outcome.version,
                "result": _(RESULT_WORDS[outcome.result]),
                "why": _(why) if why else outcome.reason,
            },
            file=sys.stderr,
        )
    return 0 if outcome.result == "installed" else 1


def cmd_recover(args: argparse.Namespace) -> int:
    done = _installer(args).recover(start=args.start)
    if args.json:
        print(json.dumps({"recovered": done}))
    elif done is None:
        print(_("No update was interrupted."))
    else:
        print(_("An interrupted update was undone; the previous version is in place."))
    return 0


def render_status(st: dict[str, Any], tz: str) -> str:
    lines = [
        _("Installed version: %(version)s (release %(release)s)")
        % {"version": st["installed_version"] or "-", "release": st["installed_release"]},
        _("Running slot: %(slot)s") % {"slot": st["current"] or "-"},
    ]
    for slot, info in st["slots"].items():
        if info is None:
            lines.append(_("Slot %(slot)s: empty") % {"slot": slot})
        else:
            lines.append(
                _("Slot %(slot)s: version %(version)s (release %(release)s)")
                % {"slot": slot, "version": info["version"], "release": info["release"]}
            )
    last = st.get("last_result")
    if last:
        result = RESULT_WORDS.get(last.get("result", ""))
        lines.append(
            _("Last update: %(version)s %(result)s at %(time)s")
            % {
                "version": last.get("version") or "-",
                "result": _(result) if result else "-",
                "time": fmt_time(last.get("time"), tz),
            }
        )
    if st["step"] != "idle":
        lines.append(_("An update is under way or was interrupted: run update recover."))
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    from gateway.config import load_config

    st = _installer(args).status()
    if args.json:
        print(json.dumps(st, ensure_ascii=False))
    else:
        print(render_status(st, load_config(args.config).gateway.timezone))
    return 0


def cmd_selfcheck(args: argparse.Namespace) -> int:
    """Healthy = the daemon publishes a live status and its journal reads back."""
    from gateway.cli import gather_status
    from gateway.config import load_config

    status = gather_status(load_config(args.config))
    problems = []
    if not status["daemon"]["running"]:
        problems.append(_("the daemon is not running"))
    if "error" in status.get("journal", {}):
        problems.append(_("the journal cannot be read"))
    for problem in problems:
        print(_("Self-check failed: %(problem)s.") % {"problem": problem}, file=sys.stderr)
    if not problems:
        print(word("ok"))
    return 1 if problems else 0
