"""Typed, validated configuration sections built from TOML data.

Each section is a frozen dataclass; its fields say their type, and ``setting()`` adds limits and
a line of documentation. :func:`parse_section` turns a TOML mapping into the dataclass, refusing
unknown keys and naming the exact key of any bad value::

    @dataclass(frozen=True, slots=True)
    class Bus:
        port: str = setting(doc="serial device path")
        baud: int = setting(9600, choices=(9600, 19200, 38400, 57600, 115200))

    parse_section(Bus, {"port": "/dev/ttyUSB0", "baud": 1200}, "buses[0]")
    # ConfigError: buses[0].baud: 1200 is not one of 9600, 19200, 38400, 57600, 115200

A section may define ``check(self) -> Iterable[tuple[str, str]]`` for rules across fields; each
pair is (key relative to the section, reason). :func:`dump_section` is the inverse of
:func:`parse_section` (``None`` values are left out, as TOML has no null).

A configuration file is untrusted input: whatever TOML data comes in (a 401-digit number, a
string with a NUL, an array nested a thousand deep, a time zone that names a folder),
:func:`parse_section` raises :class:`~gateway.errors.ConfigError` naming the key, and nothing
else. Integers are held to TOML's 64-bit range, numbers for float settings must fit a float,
strings may not hold NUL (no path or name can), and error messages never echo more than a
short prefix of a value.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from gateway.errors import ConfigError

T = TypeVar("T")

_MISSING = dataclasses.MISSING


def setting(
    default: Any = _MISSING,
    *,
    doc: str = "",
    min: float | None = None,
    max: float | None = None,
    choices: tuple[Any, ...] | None = None,
    pattern: str | None = None,
    min_items: int | None = None,
    max_items: int | None = None,
) -> Any:
    """A dataclass field with validation limits and a line of documentation."""
    meta = {
        "doc": doc,
        "min": min,
        "max": max,
        "choices": choices,
        "pattern": re.compile(pattern) if pattern else None,
        "min_items": min_items,
        "max_items": max_items,
    }
    if isinstance(default, list | dict):
        raise TypeError("use a tuple default, configuration is immutable")
    if default is _MISSING:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


# TOML integers are 64-bit signed (TOML 1.0, "Integer"); tomllib accepts any size.
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
_DESCRIBE_MAX = 60  # characters of a value an error message repeats
# IANA zone names: "Area/Location[/Sub]", ASCII letters, digits, "_", "-", "+"; the longest in
# tzdata is about 30 characters. Checked before zoneinfo sees the name, which would otherwise
# open it as a path (a folder such as "Asia" raises IsADirectoryError, a long name OSError).
_TIMEZONE = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}")
TIMEZONE_MAX_LEN = 64


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if value.bit_length() > 64:  # never str(): past 4300 digits it raises ValueError
            return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
        return str(value)
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= _DESCRIBE_MAX else text[:_DESCRIBE_MAX] + "...'"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "an array"
    text = str(value)
    return text if len(text) <= _DESCRIBE_MAX else text[:_DESCRIBE_MAX] + "..."


def timezone_problem(name: str) -> str | None:
    """Why ``name`` is not a usable IANA time zone, or None if it is (for ``check()`` rules).

    zoneinfo raises ValueError, KeyError subclasses, IsADirectoryError or other OSErrors for
    bad names; all of them become one sentence here.
    """
    import zoneinfo

    shown = _describe(name)
    if len(name) > TIMEZONE_MAX_LEN or not _TIMEZONE.fullmatch(name):
        return f"{shown} is not a known IANA time zone"
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError, UnicodeError):
        return f"{shown} is not a known IANA time zone"
    return None


def _type_name(tp: Any) -> str:
    if dataclasses.is_dataclass(tp):
        return "a table"
    origin = get_origin(tp)
    if origin is tuple:
        return "an array"
    if origin is Literal:
        return "one of " + ", ".join(_describe(a) for a in get_args(tp))
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        tp, str(tp)
    )


def _check_limits(value: Any, meta: Mapping[str, Any], key: str) -> None:
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(
            key, f"{_describe(value)} is not one of " + ", ".join(map(_describe, choices))
        )
    lo, hi = meta.get("min"), meta.get("max")
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if is_number and ((lo is not None and value < lo) or (hi is not None and value > hi)):
        if lo is not None and hi is not None:
            raise ConfigError(key, f"{_describe(value)} is outside {lo}..{hi}")
        if lo is not None:
            raise ConfigError(key, f"{_describe(value)} is below the minimum {lo}")
        raise ConfigError(key, f"{_describe(value)} is above the maximum {hi}")
    pattern = meta.get("pattern")
    if pattern is not None and isinstance(value, str) and not pattern.fullmatch(value):
        raise ConfigError(key, f"{_describe(value)} does not match {pattern.pattern}")
    if isinstance(value, tuple):
        lo_n, hi_n = meta.get("min_items"), meta.get("max_items")
        if lo_n is not None and len(value) < lo_n:
            raise ConfigError(key, f"needs at least {lo_n} item(s), has {len(value)}")
        if hi_n is not None and len(value) > hi_n:
            raise ConfigError(key, f"allows at most {hi_n} item(s), has {len(value)}")


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported union at {key}")
        return _convert(args[0], value, key)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"expected a table, got {_describe(value)}")
        return parse_section(tp, value, key)  # type: ignore[arg-type]
    if origin is tuple:
        item_args = get_args(tp)
        if not isinstance(value, list | tuple):
            raise ConfigError(key, f"expected an array, got {_describe(value)}")
        item_tp = item_args[0]
        return tuple(_convert(item_tp, item, f"{key}[{i}]") for i, item in enumerate(value))
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(key, f"{_describe(value)} is not {_type_name(tp)}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"expected true or false, got {_describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"expected an integer, got {_describe(value)}")
        if not INT_MIN <= value <= INT_MAX:
            raise ConfigError(key, f"{_describe(value)} is outside the 64-bit integer range")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key, f"expected a number, got {_describe(value)}")
        try:
            number = float(value)
        except OverflowError:  # an integer too large for a float
            raise ConfigError(key, f"{_describe(value)} is too large for a number") from None
        if math.isnan(number) or math.isinf(number):
            raise ConfigError(key, f"{_describe(value)} is not a finite number")
        return number
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"expected a string, got {_describe(value)}")
        if "\x00" in value:
            raise ConfigError(key, f"{_describe(value)} contains a NUL character")
        return value
    raise TypeError(f"unsupported configuration type {tp!r} at {key}")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def parse_section(cls: type[T], data: Mapping[str, Any], path: str = "") -> T:
    """Build the dataclass ``cls`` from TOML data, or raise ConfigError naming the key."""
    if not isinstance(data, Mapping):
        raise ConfigError(path, f"expected a table, got {_describe(data)}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for name in data:
        if name not in fields:
            known = ", ".join(sorted(fields)) or "none"
            raise ConfigError(_join(path, str(name)), f"unknown key (known keys: {known})")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        key = _join(path, name)
        if name not in data:
            if f.default is _MISSING and f.default_factory is _MISSING:
                raise ConfigError(key, "is required")
            continue
        value = _convert(hints[name], data[name], key)
        _check_limits(value, f.metadata, key)
        kwargs[name] = value
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if check is not None:
        for sub, reason in check():
            raise ConfigError(_join(path, sub), reason)
    return obj


def dump_section(obj: Any) -> dict[str, Any]:
    """The TOML-ready mapping for a section (inverse of :func:`parse_section`)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if value is None:
            continue
        out[f.name] = _dump_value(value)
    return out


def _dump_value(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dump_section(value)
    if isinstance(value, tuple):
        return [_dump_value(v) for v in value]
    return value


def documented_keys(cls: type, prefix: str = "") -> Iterable[tuple[str, str]]:
    """Every (dotted key, doc) of a section, nested ones included, for docs and their test."""
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = _join(prefix, f.name)
        yield key, f.metadata.get("doc", "")
        tp = hints[f.name]
        inner = [a for a in get_args(tp) if a is not type(None)] if get_origin(tp) else [tp]
        for candidate in inner:
            if get_origin(candidate) is tuple:
                item = get_args(candidate)[0]
                if dataclasses.is_dataclass(item):
                    yield from documented_keys(item, key + "[]")  # type: ignore[arg-type]
            elif dataclasses.is_dataclass(candidate):
                yield from documented_keys(candidate, key)  # type: ignore[arg-type]
