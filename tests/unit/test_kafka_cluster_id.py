"""The local Kafka's KRaft cluster id never looks like a command-line option."""

from __future__ import annotations

import base64
import uuid

import pytest

from infra.stack import kafka


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    dashed = uuid.UUID(bytes=base64.urlsafe_b64decode("-Fv0jNKQS2agAfLR_X4mDA=="))
    ids = iter([dashed, uuid.UUID(int=1)])  # the id CI once drew, then an ordinary one
    monkeypatch.setattr(uuid, "uuid4", lambda: next(ids))  # the module kafka.py uses
    assert kafka.new_cluster_id() == "AAAAAAAAAAAAAAAAAAAAAQ"
    monkeypatch.undo()
    for _ in range(2_000):
        made = kafka.new_cluster_id()
        assert len(made) == 22 and not made.startswith("-")
