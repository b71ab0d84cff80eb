"""Build hook: the wheel carries compiled gettext catalogues (.mo) beside their .po sources.

Everything else about the build is in pyproject.toml. Without Babel at build time the wheel
still works: the gateway compiles a .po in memory when its .mo is missing (i18n/catalogue.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
PACKAGES_WITH_CATALOGUES = ("gateway", "i18n")


class BuildPyWithCatalogues(build_py):
    def run(self) -> None:
        super().run()
        sys.path.insert(0, str(HERE))
        try:
            from i18n.catalogue import compile_catalogues
        except ImportError as exc:  # no Babel: the .po files ship and compile at run time
            print(f"not compiling catalogues: {exc}", file=sys.stderr)
            return
        finally:
            sys.path.remove(str(HERE))
        for package in PACKAGES_WITH_CATALOGUES:
            locale = Path(self.build_lib) / package / "locale"
            if locale.is_dir():
                for mo in compile_catalogues(locale):
                    print(f"compiled {mo}")


setup(cmdclass={"build_py": BuildPyWithCatalogues})
