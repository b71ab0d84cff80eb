"""Who may do what, where: roles, named actions, scoped targets and the pure :func:`can`.

A person has one role. Officers and clerks work across the whole district; a township viewer
reads only their own township; a compound manager works only on their own compound::

    can(user, Action.WRITE_EXPLANATION, Target(township="North", compound="Rose Garden"))

``can`` has no side effects and no defaults that grant: an action not in a role's set, or a
target outside the person's scope, is refused. A disabled account may do nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    OFFICER = "officer"
    CLERK = "clerk"
    TOWNSHIP_VIEWER = "township_viewer"
    COMPOUND_MANAGER = "compound_manager"


class Action(StrEnum):
    VIEW_BOARD = "view_board"
    VIEW_COMPOUND = "view_compound"
    VIEW_IMAGE = "view_image"
    ACKNOWLEDGE_ALERT = "acknowledge_alert"
    WRITE_EXPLANATION = "write_explanation"
    EXPORT_BULLETIN = "export_bulletin"
    SEND_BROADCAST = "send_broadcast"
    SEND_ACTUAL_BROADCAST = "send_actual_broadcast"
    MANAGE_USERS = "manage_users"
    # Add recordings and typed text to the announcement library (what the loudspeakers say):
    # an officer's call, like the broadcasts that play them.
    MANAGE_ANNOUNCEMENTS = "manage_announcements"
    # Publish a signed gateway release to gateways (a rollout) and stop one: officers only,
    # since a bad release can take compounds offline.
    PUBLISH_UPDATES = "publish_updates"
    # Video patrol rounds: judge each compound's duty-room picture (district staff only).
    VIDEO_PATROL = "video_patrol"


ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    # Officers answer for the district: everything, including Actual (non-drill) broadcasts.
    Role.OFFICER: frozenset(Action),
    # Clerks run the day: board, alerts, bulletins, explanations, video patrol. No broadcasts
    # (an officer's call) and no user management.
    Role.CLERK: frozenset(
        {
            Action.VIEW_BOARD,
            Action.VIEW_COMPOUND,
            Action.VIEW_IMAGE,
            Action.ACKNOWLEDGE_ALERT,
            Action.WRITE_EXPLANATION,
            Action.EXPORT_BULLETIN,
            Action.VIDEO_PATROL,
        }
    ),
    # Read-only, own township. No camera images: those are for the centre's own staff.
    Role.TOWNSHIP_VIEWER: frozenset(
        {Action.VIEW_BOARD, Action.VIEW_COMPOUND, Action.EXPORT_BULLETIN}
    ),
    # Own compound: see it, read its bulletins, explain its missed rounds, and see its own
    # camera images (never another compound's: ``in_scope``), each view audited.
    Role.COMPOUND_MANAGER: frozenset(
        {
            Action.VIEW_COMPOUND,
            Action.VIEW_IMAGE,
            Action.EXPORT_BULLETIN,
            Action.WRITE_EXPLANATION,
        }
    ),
}

DISTRICT_ROLES = frozenset({Role.OFFICER, Role.CLERK})


@dataclass(frozen=True, slots=True)
class Target:
    """Where an action applies. Both ``None``: the whole district (the district board, users)."""

    township: str | None = None
    compound: str | None = None


DISTRICT = Target()


@dataclass(frozen=True, slots=True)
class User:
    """A console account as the permission model sees it (no password material)."""

    name: str
    role: Role
    township: str | None = None
    compound: str | None = None
    disabled: bool = False


def in_scope(user: User, target: Target) -> bool:
    """Whether ``target`` lies inside the area ``user`` works in."""
    if user.role in DISTRICT_ROLES:
        return True
    if user.role is Role.TOWNSHIP_VIEWER:
        return user.township is not None and target.township == user.township
    # Compound manager: compound names repeat across townships, so both must match.
    return (
        user.compound is not None
        and user.township is not None
        and target.compound == user.compound
        and target.township == user.township
    )


def can(user: User, action: Action, target: Target = DISTRICT) -> bool:
    """Whether ``user`` may do ``action`` on ``target``. Pure; refuses by default."""
    if user.disabled:
        return False
    if action not in ROLE_ACTIONS[user.role]:
        return False
    return in_scope(user, target)


def check_scope_fields(role: Role, township: str | None, compound: str | None) -> str | None:
    """Why an account of ``role`` with this scope makes no sense, or ``None`` if it does."""
    if role in DISTRICT_ROLES and (township or compound):
        return f"a {role} works across the district: give no --township or --compound"
    if role is Role.TOWNSHIP_VIEWER and (not township or compound):
        return "a township viewer needs --township and no --compound"
    if role is Role.COMPOUND_MANAGER and not (township and compound):
        return "a compound manager needs --township and --compound"
    return None
