"""Every projector Tradecore runs, by name."""

from __future__ import annotations

from projections.alerts import AlertsProjector
from projections.base import Projector
from projections.candles import CandlesProjector
from projections.market_stats import MarketStatsProjector
from projections.order_book import OrderBookProjector
from projections.orders import OrdersProjector
from projections.portfolios import PortfoliosProjector
from projections.trades import TradesProjector


def all_projectors() -> list[Projector]:
    """Fresh instances (projectors hold per-batch state), in a stable order."""
    return [
        TradesProjector(),
        CandlesProjector(),
        PortfoliosProjector(),
        OrdersProjector(),
        OrderBookProjector(),
        MarketStatsProjector(),
        AlertsProjector(),
    ]


def projector_named(name: str) -> Projector:
    for projector in all_projectors():
        if projector.name == name:
            return projector
    known = ", ".join(p.name for p in all_projectors())
    raise KeyError(f"no projector named {name!r} (known: {known})")
