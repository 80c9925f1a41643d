"""The web UI's GraphQL documents (web/src/data/graphql.ts) are valid against the served
schema: a renamed field or argument fails here, not in a trader's browser."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from graphql import build_schema as parse_sdl
from graphql import parse, validate

from read_api.schema import build_schema

SOURCE = Path(__file__).resolve().parents[3] / "web" / "src" / "data" / "graphql.ts"
DOCUMENTS = dict(re.findall(r"const ([A-Z_]+) = `(.*?)`;", SOURCE.read_text(), re.S))


def test_the_web_ui_has_graphql_documents() -> None:
    assert {"CANDLES", "TRADES", "BOOK", "POSITIONS", "HISTORY", "EVENTS", "ACCOUNT_STATE"} <= set(
        DOCUMENTS
    )


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_a_web_ui_document_validates_against_the_schema(name: str) -> None:
    schema = parse_sdl(build_schema(production=False).as_str())
    assert validate(schema, parse(DOCUMENTS[name])) == []
