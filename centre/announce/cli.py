"""``compound-centre announce``: the announcement library from the command line.

    compound-centre announce add fraud.mp3 --title "防诈骗提示" [--id fraud-2026-49] [--json]
    compound-centre announce say "请勿向陌生人转账。" --title "转账提醒" [--id ...] [--json]
    compound-centre announce list [--json]

Output in the operator's language (``--lang``, default Simplified Chinese).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from centre.announce.library import LANGUAGES, Announcement, AnnouncementError, AnnouncementLibrary
from centre.announce.media import MediaError
from centre.announce.words import REASONS, translations


def _library(args: argparse.Namespace) -> AnnouncementLibrary:
    return AnnouncementLibrary(Path(args.data).resolve())


def _show(ann: Announcement, args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps(ann.to_dict(), ensure_ascii=False))
        return
    t = translations(args.lang)
    print(
        t.gettext("Announcement %(id)s added: %(title)s, %(seconds).1f s, sha256 %(sha)s")
        % {"id": ann.id, "title": ann.title, "seconds": ann.duration_s, "sha": ann.sha256}
    )


def _fail(exc: AnnouncementError | MediaError, args: argparse.Namespace) -> int:
    t = translations(args.lang)
    if isinstance(exc, MediaError):
        text = t.gettext(REASONS["bad_media"]) % {"reason": exc.reason}
    else:
        text = t.gettext(REASONS.get(exc.code, REASONS["bad_media"])) % {"reason": exc.reason}
    print(f"compound-centre: {text}", file=sys.stderr)
    return 2


def cmd_add(args: argparse.Namespace) -> int:
    try:
        ann = _library(args).add_upload(
            Path(args.file), title=args.title, language=args.language, ann_id=args.id
        )
    except (AnnouncementError, MediaError) as exc:
        return _fail(exc, args)
    except OSError as exc:
        return _fail(MediaError(f"cannot read {args.file}: {exc.strerror}"), args)
    _show(ann, args)
    return 0


def cmd_say(args: argparse.Namespace) -> int:
    try:
        ann = _library(args).add_text(args.text, title=args.title, ann_id=args.id)
    except (AnnouncementError, MediaError) as exc:
        return _fail(exc, args)
    _show(ann, args)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    anns = _library(args).list()
    if args.json:
        print(json.dumps([a.to_dict() for a in anns], ensure_ascii=False))
        return 0
    t = translations(args.lang)
    if not anns:
        print(t.gettext("No announcements yet."))
    for a in anns:
        source = t.gettext("recording") if a.source == "upload" else t.gettext("text-to-speech")
        print(
            t.gettext("%(id)s  %(title)s  (%(source)s, %(seconds).1f s)  sha256 %(sha)s")
            % {
                "id": a.id,
                "title": a.title,
                "source": source,
                "seconds": a.duration_s,
                "sha": a.sha256[:16],
            }
        )
    return 0


def _common(p: Any) -> None:
    p.add_argument("--json", action="store_true")
    p.add_argument("--lang", default=None, help="zh-CN (default) or en")


def add_announce_commands(sub: Any) -> None:
    """Register ``announce add|say|list`` on the centre CLI's subparsers."""
    p = sub.add_parser("announce", help="announcement library (recordings, text-to-speech)")
    asub = p.add_subparsers(dest="announce_command", required=True)
    a = asub.add_parser("add", help="add a recording (WAV, MP3, M4A), loudness normalised")
    a.add_argument("file")
    a.add_argument("--title", required=True)
    a.add_argument("--language", choices=LANGUAGES, default="zh-CN")
    a.add_argument("--id", default=None, help="announcement id (default: from its hash)")
    _common(a)
    a.set_defaults(func=cmd_add)
    s = asub.add_parser("say", help="add typed Mandarin text, spoken offline (espeak-ng)")
    s.add_argument("text")
    s.add_argument("--title", required=True)
    s.add_argument("--id", default=None)
    _common(s)
    s.set_defaults(func=cmd_say)
    ls = asub.add_parser("list", help="the library")
    _common(ls)
    ls.set_defaults(func=cmd_list)
