"""Ids the gateway derives must not change with how they are computed."""

from __future__ import annotations

import uuid

from gateway.commanding import ORDER_NAMESPACE, order_id_for
from gateway.services import GatewayServices


def test_an_order_id_is_the_uuid5_of_its_account_and_client_order_id() -> None:
    for account, client_order_id in [("alice-1", "c1"), ("b", "é:x.y-z"), ("a" * 64, "k" * 64)]:
        name = f"{account}\x1f{client_order_id}"
        assert (
            order_id_for(account, client_order_id) == "o-" + uuid.uuid5(ORDER_NAMESPACE, name).hex
        )


def test_a_new_command_id_is_gw_and_128_random_bits_in_hex() -> None:
    new_id = GatewayServices.__dataclass_fields__["new_command_id"].default
    ids = {new_id() for _ in range(1000)}  # type: ignore[operator]
    assert len(ids) == 1000
    assert all(i.startswith("gw-") and len(i) == 35 and int(i[3:], 16) >= 0 for i in ids)
