"""Refusals: no token, a bad token, another trader's account, auditor-only fields, bombs."""

from __future__ import annotations

import strawberry

from read_api.schema import MAX_ALIASES, MAX_DEPTH, build_schema
from tests.unit.read_api.conftest import Api, codes

PORTFOLIO = "query($a: String!) { portfolio(accountId: $a) { accountId balances { asset } } }"


async def test_a_query_without_a_token_is_refused_as_not_authenticated(api: Api) -> None:
    result = await api.run("{ instruments { symbol } }", token=None)
    assert codes(result) == ["not_authenticated"]
    assert api.db.statements == []


async def test_a_forged_token_is_refused_with_the_rest_code(api: Api) -> None:
    result = await api.run("{ me { username } }", token="forged")
    assert codes(result) == ["invalid_token"]


async def test_a_trader_cannot_read_another_traders_portfolio(api: Api) -> None:
    result = await api.run(PORTFOLIO, token="bob", a="alice-1")
    assert codes(result) == ["account_forbidden"]
    assert result.data is None
    assert api.db.statements == []


async def test_a_trader_cannot_list_another_traders_portfolio_among_its_own(api: Api) -> None:
    result = await api.run(
        '{ portfolios(accountIds: ["bob-1", "alice-1"]) { accountId } }', token="bob"
    )
    assert codes(result) == ["account_forbidden"]


async def test_an_auditor_reads_any_portfolio(api: Api) -> None:
    result = await api.run(PORTFOLIO, token="auditor", a="alice-1")
    assert result.errors is None
    assert result.data == {"portfolio": {"accountId": "alice-1", "balances": []}}


async def test_a_trader_may_not_read_the_event_history(api: Api) -> None:
    result = await api.run("{ events { position } }", token="alice")
    assert codes(result) == ["role_forbidden"]


async def test_a_trader_may_not_ask_for_a_past_account_state(api: Api) -> None:
    result = await api.run(
        '{ accountState(accountId: "alice-1", position: "3") { exists } }', token="alice"
    )
    assert codes(result) == ["role_forbidden"]


async def test_an_expired_token_is_refused_even_after_authentication(api: Api) -> None:
    ctx = await api.context("alice")
    assert ctx.viewer is not None
    ctx.viewer = type(ctx.viewer)("alice", "trader", frozenset({"alice-1"}), "x", expires_at=10)
    result = await api.schema.execute("{ me { username } }", context_value=ctx)
    assert codes(result) == ["token_expired"]


def _nested(depth: int) -> str:
    inner = "price"
    for level in range(depth):
        inner = f"fills {{ order {{ {inner} }} }}" if level % 2 == 0 else inner
    return f'{{ portfolio(accountId: "alice-1") {{ orders {{ {inner} }} }} }}'


async def test_a_depth_bomb_is_refused_before_anything_runs(api: Api) -> None:
    result = await api.run(_nested(2 * MAX_DEPTH))
    assert result.errors is not None
    assert "exceeds maximum operation depth" in result.errors[0].message
    assert api.db.statements == []


async def test_a_query_within_the_depth_limit_runs(api: Api) -> None:
    result = await api.run(_nested(4))
    assert result.errors is None


async def test_an_alias_bomb_is_refused_before_anything_runs(api: Api) -> None:
    aliases = " ".join(f"a{i}: instruments {{ symbol }}" for i in range(MAX_ALIASES + 1))
    result = await api.run(f"{{ {aliases} }}")
    assert result.errors is not None
    assert "aliases found" in result.errors[0].message
    assert api.db.statements == []


async def test_a_huge_document_is_refused_by_its_token_count(api: Api) -> None:
    fields = " ".join("symbol" for _ in range(3000))
    result = await api.run(f"{{ instruments {{ {fields} }} }}")
    assert result.errors is not None
    assert "token" in result.errors[0].message.lower()


async def test_introspection_answers_in_development(api: Api) -> None:
    result = await api.run("{ __schema { queryType { name } } }")
    assert result.errors is None


async def test_introspection_is_off_in_production() -> None:
    production: strawberry.Schema = build_schema(production=True)
    result = await Api(production).run("{ __schema { queryType { name } } }")
    assert result.errors is not None
    assert "introspection has been disabled" in result.errors[0].message
