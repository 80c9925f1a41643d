"""Compiled (mypyc) or pure-Python domain: which one runs, and a guard against stale builds.

``tradecore.build_native`` may compile ``NATIVE_MODULES`` into extension modules next to
their sources, and Python imports an extension in preference to the ``.py``. The build
records a digest of the sources it compiled (``_native_sources.txt``). ``guard()``, run by
``domain/__init__.py`` before any submodule is imported, makes Python load the ``.py``
sources instead when that digest no longer matches (the sources changed since the build:
warned) or when ``TRADECORE_PURE_PYTHON=1`` is set (not warned). Standard library only.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import sys
import warnings
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

NATIVE_MODULES = ("values", "instruments", "book", "exchange")
STAMP_NAME = "_native_sources.txt"
DOMAIN_DIR = Path(__file__).resolve().parent


def source_digest(domain_dir: Path = DOMAIN_DIR) -> str:
    """sha256 over the sources of the compiled modules, in ``NATIVE_MODULES`` order."""
    digest = hashlib.sha256()
    for name in NATIVE_MODULES:
        digest.update(name.encode() + b"\0" + (domain_dir / f"{name}.py").read_bytes() + b"\0")
    return digest.hexdigest()


def compiled_present(domain_dir: Path = DOMAIN_DIR) -> bool:
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    return any((domain_dir / f"{n}{s}").exists() for n in NATIVE_MODULES for s in suffixes)


class _SourceFinder:
    """Meta path finder that loads the listed ``domain`` modules from their ``.py`` files."""

    def __init__(self, domain_dir: Path) -> None:
        self.domain_dir = domain_dir
        self.names = {f"domain.{n}": n for n in NATIVE_MODULES}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        short = self.names.get(fullname)
        if short is None:
            return None
        return importlib.util.spec_from_file_location(fullname, self.domain_dir / f"{short}.py")


def guard(domain_dir: Path = DOMAIN_DIR) -> None:
    if not compiled_present(domain_dir):
        return
    if os.environ.get("TRADECORE_PURE_PYTHON", "") not in ("", "0"):
        sys.meta_path.insert(0, _SourceFinder(domain_dir))
        return
    stamp = domain_dir / STAMP_NAME
    built = stamp.read_text().strip() if stamp.exists() else ""
    if built != source_digest(domain_dir):
        sys.meta_path.insert(0, _SourceFinder(domain_dir))
        warnings.warn(
            "compiled domain modules are out of date with their sources and are ignored; "
            "rebuild them with `python -m tradecore.build_native` (or `make`)",
            RuntimeWarning,
            stacklevel=2,
        )


def compiled_modules() -> list[str]:
    """The ``domain`` modules that are running compiled (imports them)."""
    out = []
    for name in NATIVE_MODULES:
        module = importlib.import_module(f"domain.{name}")
        if not (module.__file__ or "").endswith(".py"):
            out.append(module.__name__)
    return out
