"""A Jinja2 environment for pages people read: autoescaped, with ``{% trans %}`` bound.

    env = make_environment(translations, loader=PackageLoader("gateway.web", "templates"))
    env.get_template("status.html").render(view=view)

Autoescape is on for every template, whatever its name: data from the journal, the config or a
request never reaches the page as markup. ``{% trans %}``, ``_()``, ``gettext()`` and
``ngettext()`` use ``translations`` (new-style: ``_("%(n)s taps", n=3)`` escapes its arguments).
Undefined names fail loudly, so a typo in a template is a test failure, not an empty cell.
"""

from __future__ import annotations

import gettext
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # jinja2 is imported on use: building a wheel needs only the catalogue code
    import jinja2


def make_environment(
    translations: gettext.NullTranslations,
    *,
    loader: jinja2.BaseLoader,
    filters: Mapping[str, Callable[..., Any]] | None = None,
    globals: Mapping[str, Any] | None = None,
) -> jinja2.Environment:
    """An autoescaping environment with the i18n extension bound to ``translations``."""
    import jinja2

    env = jinja2.Environment(
        loader=loader,
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
    if filters:
        env.filters.update(filters)
    if globals:
        env.globals.update(globals)
    return env
