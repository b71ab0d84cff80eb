"""The permission table, exhaustively: every role x every action x every kind of target.

The expected table is written out here by hand from the issue (not derived from the code's
ROLE_ACTIONS), so a change to either shows up as a failing row.
"""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from centre.web.permissions import Action, Role, Target, User, can, check_scope_fields

A = Action
USERS = {
    Role.OFFICER: User("olive", Role.OFFICER),
    Role.CLERK: User("clara", Role.CLERK),
    Role.TOWNSHIP_VIEWER: User("vic", Role.TOWNSHIP_VIEWER, township="North"),
    Role.COMPOUND_MANAGER: User(
        "max", Role.COMPOUND_MANAGER, township="North", compound="Rose Garden"
    ),
}
TARGETS = {
    "district": Target(),
    "own_township": Target("North"),
    "own_compound": Target("North", "Rose Garden"),
    "other_compound_own_township": Target("North", "Plum Court"),
    "other_township": Target("South"),
    "same_name_compound_other_township": Target("South", "Rose Garden"),
}
ALLOWED_ACTIONS = {
    Role.OFFICER: {
        "view_board", "view_compound", "view_image", "acknowledge_alert", "write_explanation",
        "export_bulletin", "send_broadcast", "send_actual_broadcast", "manage_users",
        "manage_announcements",
        "publish_updates", "video_patrol",
    },
    Role.CLERK: {
        "view_board", "view_compound", "view_image", "acknowledge_alert", "write_explanation",
        "export_bulletin", "video_patrol",
    },
    Role.TOWNSHIP_VIEWER: {"view_board", "view_compound", "export_bulletin"},
    Role.COMPOUND_MANAGER: {
        "view_compound", "view_image", "export_bulletin", "write_explanation",
    },
}  # fmt: skip
ALLOWED_SCOPES = {
    Role.OFFICER: set(TARGETS),
    Role.CLERK: set(TARGETS),
    Role.TOWNSHIP_VIEWER: {"own_township", "own_compound", "other_compound_own_township"},
    Role.COMPOUND_MANAGER: {"own_compound"},
}

ROWS = list(itertools.product(Role, Action, TARGETS))


def test_the_table_covers_every_action() -> None:
    assert {a.value for a in Action} == ALLOWED_ACTIONS[Role.OFFICER]
    assert len(ROWS) == 4 * 12 * 6


@pytest.mark.parametrize(("role", "action", "scope"), ROWS)
def test_permission_table(role: Role, action: Action, scope: str) -> None:
    expected = action.value in ALLOWED_ACTIONS[role] and scope in ALLOWED_SCOPES[role]
    assert can(USERS[role], action, TARGETS[scope]) is expected


@pytest.mark.parametrize(("role", "action", "scope"), ROWS)
def test_disabled_accounts_may_do_nothing(role: Role, action: Action, scope: str) -> None:
    user = dataclasses.replace(USERS[role], disabled=True)
    assert can(user, action, TARGETS[scope]) is False


def test_spot_rows_from_the_issue() -> None:
    assert can(USERS[Role.OFFICER], A.SEND_ACTUAL_BROADCAST, Target("South", "Plum Court"))
    assert not can(USERS[Role.CLERK], A.SEND_BROADCAST)
    assert not can(USERS[Role.CLERK], A.MANAGE_USERS)
    assert can(USERS[Role.OFFICER], A.MANAGE_ANNOUNCEMENTS)
    assert not can(USERS[Role.CLERK], A.MANAGE_ANNOUNCEMENTS)  # what loudspeakers say: officers
    assert can(USERS[Role.OFFICER], A.PUBLISH_UPDATES)
    assert not any(can(USERS[r], A.PUBLISH_UPDATES) for r in Role if r is not Role.OFFICER)
    assert can(USERS[Role.CLERK], A.VIEW_IMAGE, Target("South", "Plum Court"))
    assert not can(USERS[Role.TOWNSHIP_VIEWER], A.WRITE_EXPLANATION, Target("North"))
    assert not can(USERS[Role.COMPOUND_MANAGER], A.VIEW_BOARD, Target("North", "Rose Garden"))
    # Images: a manager sees their own compound's, never another's; township viewers none.
    assert can(USERS[Role.COMPOUND_MANAGER], A.VIEW_IMAGE, Target("North", "Rose Garden"))
    assert not can(USERS[Role.COMPOUND_MANAGER], A.VIEW_IMAGE, Target("South", "Rose Garden"))
    assert not can(USERS[Role.TOWNSHIP_VIEWER], A.VIEW_IMAGE, Target("North", "Rose Garden"))


def test_scoped_roles_without_a_scope_see_nothing() -> None:
    viewer = User("v", Role.TOWNSHIP_VIEWER)
    manager = User("m", Role.COMPOUND_MANAGER, compound="Rose Garden")
    assert not can(viewer, A.VIEW_BOARD, Target())
    assert not can(manager, A.VIEW_COMPOUND, Target(None, "Rose Garden"))


@pytest.mark.parametrize(
    ("role", "township", "compound", "ok"),
    [
        (Role.OFFICER, None, None, True),
        (Role.OFFICER, "North", None, False),
        (Role.CLERK, None, "Rose Garden", False),
        (Role.TOWNSHIP_VIEWER, "North", None, True),
        (Role.TOWNSHIP_VIEWER, None, None, False),
        (Role.TOWNSHIP_VIEWER, "North", "Rose Garden", False),
        (Role.COMPOUND_MANAGER, "North", "Rose Garden", True),
        (Role.COMPOUND_MANAGER, None, "Rose Garden", False),
    ],
)
def test_account_scope_fields(role: Role, township: str | None, compound: str | None, ok: bool):
    assert (check_scope_fields(role, township, compound) is None) is ok
