"""Data loaders, made per request: every account's (or order's, or symbol's) rows of one
query level are fetched with one statement, whatever the number of parents."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from strawberry.dataloader import DataLoader

from read_api import queries
from read_api.queries import Db, FillFilter, OrderFilter


def _grouped(
    fetch: Callable[[Sequence[str]], Awaitable[list[Any]]], column: str
) -> Callable[[list[str]], Awaitable[list[list[Any]]]]:
    async def load(keys: list[str]) -> list[list[Any]]:
        by_key: dict[str, list[Any]] = defaultdict(list)
        for row in await fetch(keys):
            by_key[row[column]].append(row)
        return [by_key.get(key, []) for key in keys]

    return load


def _single(
    fetch: Callable[[Sequence[str]], Awaitable[list[Any]]], column: str
) -> Callable[[list[str]], Awaitable[list[Any | None]]]:
    async def load(keys: list[str]) -> list[Any | None]:
        by_key = {row[column]: row for row in await fetch(keys)}
        return [by_key.get(key) for key in keys]

    return load


@dataclass(frozen=True, slots=True)
class OrdersKey:
    account_id: str
    where: OrderFilter


@dataclass(frozen=True, slots=True)
class FillsKey:
    account_id: str
    where: FillFilter


class Loaders:
    def __init__(self, db: Db) -> None:
        self.db = db
        self.balances = DataLoader(_grouped(lambda k: queries.balances_of(db, k), "account_id"))
        self.positions = DataLoader(_grouped(lambda k: queries.positions_of(db, k), "account_id"))
        self.fills = DataLoader(_grouped(lambda k: queries.fills_of_orders(db, k), "order_id"))
        self.order = DataLoader(_single(lambda k: queries.orders_by_id(db, k), "order_id"))
        self.stats = DataLoader(_single(lambda k: queries.stats_by_symbol(db, k), "symbol"))
        self.instrument = DataLoader(
            _single(lambda k: queries.instruments_by_symbol(db, k), "symbol")
        )
        self.orders = DataLoader(self._load_orders)
        self.account_fills = DataLoader(self._load_account_fills)

    async def _load_orders(self, keys: list[OrdersKey]) -> list[list[Any]]:
        """One statement per distinct filter (a query level shares its arguments)."""
        accounts_by_filter: dict[OrderFilter, list[str]] = defaultdict(list)
        for key in keys:
            accounts_by_filter[key.where].append(key.account_id)
        rows: dict[OrdersKey, list[Any]] = defaultdict(list)
        for where, accounts in accounts_by_filter.items():
            for row in await queries.orders_of(self.db, accounts, where):
                rows[OrdersKey(row["account_id"], where)].append(row)
        return [rows.get(key, []) for key in keys]

    async def _load_account_fills(self, keys: list[FillsKey]) -> list[list[Any]]:
        accounts_by_filter: dict[FillFilter, list[str]] = defaultdict(list)
        for key in keys:
            accounts_by_filter[key.where].append(key.account_id)
        rows: dict[FillsKey, list[Any]] = defaultdict(list)
        for where, accounts in accounts_by_filter.items():
            for row in await queries.fills_of_accounts(self.db, accounts, where):
                rows[FillsKey(row["account_id"], where)].append(row)
        return [rows.get(key, []) for key in keys]
