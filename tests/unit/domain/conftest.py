"""Run the domain suite against both implementations: the Python ``Exchange`` (the reference)
and the Rust kernel's ``FastExchange`` (skipped, with the reason, when it is not built).

A test module that exercises the Python implementation's own machinery sets
``PYTHON_ONLY = "why"``. Module scope, so that Hypothesis tests see no function-scoped fixture.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from domain.kernel import FastExchange, kernel_available, kernel_status
from tests.unit.domain import factories


@pytest.fixture(autouse=True, scope="module", params=["python", "kernel"])
def exchange_impl(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "python":
        yield "python"
        return
    why = getattr(request.module, "PYTHON_ONLY", "")
    if why:
        pytest.skip(f"Python reference only: {why}")
    if not kernel_available():
        pytest.skip(f"Rust kernel {kernel_status()}; build it with `make native`")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(factories, "Exchange", FastExchange)
        if hasattr(request.module, "Exchange"):
            patch.setattr(request.module, "Exchange", FastExchange)
        yield "kernel"
