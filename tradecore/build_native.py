"""Optional mypyc compilation of the domain's hot path, with the pure-Python source as fallback.

``python -m tradecore.build_native`` compiles the modules in ``NATIVE_MODULES`` into
extension modules next to their sources (``domain/*.so``, git-ignored); Python then imports
the extension instead of the ``.py``. The ``.py`` files stay the source of truth: if the
compiler, a C toolchain or the Python headers are missing, or mypyc refuses the code, this
prints a warning, removes any partial output and exits 0, and the pure-Python modules are
used. ``--clean`` removes the compiled modules. ``domain/__init__.py`` ignores compiled
modules whose sources changed since they were built (see ``domain._native``).

Events (``domain.events``), commands and ``domain.outcome`` are left interpreted on purpose:
they are frozen dataclasses that other code introspects, and the event builders rely on
``__class__`` assignment, which compiled (native) classes do not allow.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from domain._native import NATIVE_MODULES, STAMP_NAME, source_digest

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = ROOT / "domain"
GROUP = "domain._native_lib"  # the shared library: domain/_native_lib__mypyc.*.so
STAMP = DOMAIN / STAMP_NAME


def compiled_files(domain_dir: Path = DOMAIN) -> list[Path]:
    return sorted(p for p in domain_dir.glob("*.so"))


def clean() -> None:
    for path in compiled_files():
        path.unlink()
    STAMP.unlink(missing_ok=True)


_SETUP = """
import sys
from setuptools import setup
from mypyc.build import mypycify

setup(
    name="tradecore-native",
    ext_modules=mypycify(sys.argv.pop(1).split(","), opt_level="3", group_name={group!r}),
    script_args=["build_ext", "--inplace", "--build-temp", sys.argv.pop(1)],
)
"""


_CHECK = """
import domain._native as n
got = n.compiled_modules()
assert len(got) == len(n.NATIVE_MODULES), got
"""


def build(quiet: bool = False) -> bool:
    """Compile; True on success. On failure warn, clean up and return False."""
    try:
        import mypyc  # noqa: F401
    except ImportError:
        return _warn("mypyc is not installed (it comes with mypy, in the dev extras)")
    clean()
    sources = ",".join(str(DOMAIN / f"{name}.py") for name in NATIVE_MODULES)
    # Build in a scratch directory (setuptools must not read the project's pyproject.toml,
    # and mypyc's generated C stays out of the tree), then copy the modules into domain/.
    with tempfile.TemporaryDirectory(prefix="tradecore-mypyc-") as tmp:
        setup_py = Path(tmp) / "setup_native.py"
        setup_py.write_text(_SETUP.format(group=GROUP))
        (Path(tmp) / "domain").mkdir()  # where build_ext --inplace puts the modules
        proc = subprocess.run(
            [sys.executable, str(setup_py), sources, str(Path(tmp) / "temp")],
            cwd=tmp,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode == 0:
            for path in (Path(tmp) / "domain").glob("*.so"):
                shutil.copy2(path, DOMAIN / path.name)
    if proc.returncode != 0:
        clean()
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        return _warn(f"mypyc failed (exit status {proc.returncode}):\n{tail}")
    built = compiled_files()
    expected = {f"{name}." for name in NATIVE_MODULES}
    missing = [e for e in expected if not any(p.name.startswith(e) for p in built)]
    if missing:
        clean()
        return _warn(f"mypyc produced no module for {sorted(missing)}")
    STAMP.write_text(source_digest(DOMAIN) + "\n")
    check = subprocess.run(
        [sys.executable, "-c", _CHECK],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if check.returncode != 0:
        clean()
        return _warn(f"the compiled modules do not import:\n{check.stderr.strip()[-2000:]}")
    if not quiet:
        names = ", ".join(f"domain.{n}" for n in NATIVE_MODULES)
        print(f"==> compiled with mypyc: {names}")
    return True


def _warn(message: str) -> bool:
    print(
        f"WARNING: the domain is not compiled, the pure-Python modules are used: {message}",
        file=sys.stderr,
    )
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clean", action="store_true", help="remove the compiled modules")
    parser.add_argument("--quiet", action="store_true")
    opts = parser.parse_args(argv)
    if opts.clean:
        clean()
        return 0
    build(quiet=opts.quiet)
    return 0  # never fail the set-up: the pure-Python modules are a complete fallback


if __name__ == "__main__":
    raise SystemExit(main())
