from __future__ import annotations

import pytest

from centre.web.errors import ConsoleError
from centre.web.passwords import (
    SCRYPT_N,
    check_password_rules,
    check_username,
    hash_password,
    verify_password,
)
from tests.console.conftest import CHEAP_N


def test_round_trip_and_wrong_password() -> None:
    stored = hash_password("jade rabbit on the moon", n=CHEAP_N)
    assert stored.startswith(f"scrypt${CHEAP_N}$8$1$")
    assert verify_password("jade rabbit on the moon", stored)
    assert not verify_password("jade rabbit on the moon ", stored)
    assert not verify_password("", stored)


def test_same_password_gets_a_new_salt_each_time() -> None:
    a = hash_password("jade rabbit on the moon", n=CHEAP_N)
    b = hash_password("jade rabbit on the moon", n=CHEAP_N)
    assert a != b
    assert verify_password("jade rabbit on the moon", a)
    assert verify_password("jade rabbit on the moon", b)


def test_production_cost_is_memory_hard() -> None:
    # N=2**17, r=8: 128 MiB per guess. One real hash so the production parameters are known
    # to run under the memory limit we give OpenSSL.
    assert SCRYPT_N == 2**17
    stored = hash_password("jade rabbit on the moon")
    assert stored.startswith("scrypt$131072$8$1$")
    assert verify_password("jade rabbit on the moon", stored)


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "bcrypt$x",
        "scrypt$16$8$1$!!!$!!!",
        "scrypt$4194304$8$1$AAAA$AAAA",  # a damaged row asking for 4 GiB: refused, not run
        "scrypt$16$8$1$AAAA",
        "scrypt$x$8$1$AAAA$AAAA",
    ],
)
def test_damaged_stored_hash_verifies_false(stored: str) -> None:
    assert verify_password("jade rabbit on the moon", stored) is False


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short-pw", "at least 12"),
        ("x" * 129, "at most 128"),
        ("aaaaaaaaaaaaaaa", "one character repeated"),
        ("my-name-is-Alice-ok", "login name"),
        ("tab\tin the password", "control characters"),
    ],
)
def test_password_rules_in_words(password: str, why: str) -> None:
    with pytest.raises(ConsoleError) as err:
        check_password_rules(password, "alice")
    assert err.value.code == "weak_password"
    assert why in err.value.reason


def test_a_good_password_passes_the_rules() -> None:
    check_password_rules("长城-mooncake-2026", "alice")


@pytest.mark.parametrize("name", ["", "Alice", "a b", "-lead", "x" * 65, "张三", None])
def test_bad_usernames(name: object) -> None:
    with pytest.raises(ConsoleError) as err:
        check_username(name)
    assert err.value.code == "bad_username"
