"""Optional native builds of the domain: the Rust matching kernel and mypyc, Python as fallback.

Two independent builds, each optional:

* the Rust kernel (``native/kernel``, PyO3): ``cargo build --release`` (progress shown), the
  library copied to ``domain/_kernel*.so`` with a digest of the crate's sources
  (``domain/_kernel_sources.txt``). ``domain.kernel.make_exchange()`` then returns the
  kernel-backed ``FastExchange``. If cargo is missing or the build fails, a warning is
  printed, any stale kernel is removed and ``Exchange`` (Python) is used.
* mypyc, below: compiles the Python reference itself, which stays the fallback (no cargo)
  and the replay path of ``Exchange``; kept because it costs nothing at run time.

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
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from domain._native import NATIVE_MODULES, STAMP_NAME, source_digest

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = ROOT / "domain"
GROUP = "domain._native_lib"  # the shared library: domain/_native_lib__mypyc.*.so
STAMP = DOMAIN / STAMP_NAME


KERNEL_CRATE = ROOT / "native" / "kernel"
KERNEL_STAMP = DOMAIN / "_kernel_sources.txt"


def compiled_files(domain_dir: Path = DOMAIN) -> list[Path]:
    """The mypyc modules (not the Rust kernel)."""
    return sorted(p for p in domain_dir.glob("*.so") if not p.name.startswith("_kernel."))


def kernel_files(domain_dir: Path = DOMAIN) -> list[Path]:
    return sorted(domain_dir.glob("_kernel.*.so"))


def clean_kernel() -> None:
    for path in kernel_files():
        path.unlink()
    KERNEL_STAMP.unlink(missing_ok=True)


def _kernel_digest() -> str:
    digest = hashlib.sha256()
    crate = KERNEL_CRATE
    paths = [crate / "Cargo.toml", crate / "Cargo.lock", *sorted((crate / "src").glob("*.rs"))]
    for path in paths:
        if path.exists():
            digest.update(path.relative_to(crate).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _cargo() -> str | None:
    found = shutil.which("cargo")
    if found:
        return found
    home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo")) / "bin" / "cargo"
    return str(home) if home.exists() else None


_KERNEL_CHECK = """
import domain.kernel as k
assert k.kernel_available(), k.kernel_status()
k.FastExchange().state_hash()
"""


def build_kernel(quiet: bool = False) -> bool:
    """Build the Rust kernel; True on success. On failure warn, clean up, return False."""
    cargo = _cargo()
    if cargo is None:
        clean_kernel()
        return _warn_kernel("cargo is not installed (https://rustup.rs)")
    if (
        KERNEL_STAMP.exists()
        and kernel_files()
        and KERNEL_STAMP.read_text().strip() == (_kernel_digest())
    ):
        if not quiet:
            print("==> Rust kernel is up to date")
        return True
    manifest = str(KERNEL_CRATE / "Cargo.toml")
    base = [cargo, "build", "--release", "--locked", "--manifest-path", manifest]
    # Progress goes straight to the terminal; with every crate cached no network is needed,
    # and a second attempt with --offline covers a machine that has no network at all.
    proc = subprocess.run(base, check=False)
    if proc.returncode != 0:
        proc = subprocess.run([*base, "--offline"], check=False)
    if proc.returncode != 0:
        clean_kernel()
        return _warn_kernel(f"cargo build failed (exit status {proc.returncode})")
    built = KERNEL_CRATE / "target" / "release" / "lib_kernel.so"
    if not built.exists():
        clean_kernel()
        return _warn_kernel(f"cargo produced no {built.name}")
    clean_kernel()
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    shutil.copy2(built, DOMAIN / f"_kernel{suffix}")
    KERNEL_STAMP.write_text(_kernel_digest() + "\n")
    check = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-c", _KERNEL_CHECK],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "TRADECORE_PURE_PYTHON"},
    )
    if check.returncode != 0:
        clean_kernel()
        return _warn_kernel(f"the kernel does not load:\n{check.stderr.strip()[-2000:]}")
    if not quiet:
        print("==> built the Rust matching kernel: domain/_kernel (FastExchange)")
    return True


def _warn_kernel(message: str) -> bool:
    print(
        f"WARNING: the Rust kernel is not built, the Python Exchange is used: {message}",
        file=sys.stderr,
    )
    return False


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
    parser.add_argument("--clean", action="store_true", help="remove every native build")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--no-rust", action="store_true", help="skip the Rust kernel")
    parser.add_argument("--no-mypyc", action="store_true", help="skip mypyc")
    opts = parser.parse_args(argv)
    if opts.clean:
        clean()
        clean_kernel()
        return 0
    if not opts.no_mypyc:
        build(quiet=opts.quiet)
    if not opts.no_rust:
        build_kernel(quiet=opts.quiet)
    return 0  # never fail the set-up: the pure-Python modules are a complete fallback


if __name__ == "__main__":
    raise SystemExit(main())
