"""The wizard's state file: which steps are finished and what they found (resume after a kill).

    state = StateFile.load(Path("/var/lib/compound-gw/setup-state.json"))
    if not state.done("scan"): state.finish("scan", {...})

Written atomically (temporary file, fsync, rename; mode 0600) after every step and after every
reader paired, so an interrupted wizard resumes where it stopped and never redoes finished work.
It holds no secret: keys live in their own 0600 files, tokens and passwords are never stored.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError

STATE_VERSION = 1


class StateFile:
    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    @classmethod
    def load(cls, path: Path) -> StateFile:
        if not path.exists():
            return cls(path, {"version": STATE_VERSION, "steps": {}, "partial": {}})
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError("--state", f"state file {path} is damaged: {exc}") from exc
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise ConfigError("--state", f"state file {path} is not a setup state (version 1)")
        data.setdefault("steps", {})
        data.setdefault("partial", {})
        return cls(path, data)

    def answers(self) -> dict[str, str]:
        """Answers typed at the terminal, by question key (never a secret): not asked again."""
        answers: dict[str, str] = self.data.setdefault("answers", {})
        return answers

    def redo(self, step: str, also: tuple[str, ...] = ()) -> None:
        """Forget a step's result and its answers (keys ``<step>.*`` and those in ``also``),
        and the ``write`` step's, so the next run asks again and writes the config again."""
        for name in (step, "write"):
            self.data["steps"].pop(name, None)
            self.data["partial"].pop(name, None)
        answers = self.answers()
        for prefix in (step, *also):
            for key in [k for k in answers if k == prefix or k.startswith(prefix + ".")]:
                del answers[key]
        self.save()

    def done(self, step: str) -> bool:
        return step in self.data["steps"]

    def result(self, step: str) -> dict[str, Any]:
        return dict(self.data["steps"][step]["result"])

    def finish(self, step: str, result: dict[str, Any]) -> None:
        self.data["steps"][step] = {"at": time.time(), "result": result}
        self.data["partial"].pop(step, None)
        self.save()

    def partial(self, step: str) -> dict[str, Any]:
        return dict(self.data["partial"].get(step, {}))

    def save_partial(self, step: str, value: dict[str, Any]) -> None:
        self.data["partial"][step] = value
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, json.dumps(self.data, indent=2, sort_keys=True).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
