"""Two Tradecores on one Redis keep apart by their event log's database (as Kafka topics)."""

from __future__ import annotations

from tradecore.bootstrap import redis_prefix_for
from tradecore.readside import log_topic


def test_each_event_log_has_its_own_redis_keys_and_live_channels() -> None:
    default = "postgresql://u:p@127.0.0.1:54329/tradecore"
    other = "postgresql://u:p@127.0.0.1:54329/test_web_1a2b"
    assert redis_prefix_for(default) == "tradecore:"
    assert redis_prefix_for(other) == "tradecore:test_web_1a2b:"
    assert redis_prefix_for(default) != redis_prefix_for(other)
    # the same rule as the Kafka topic of the same log
    assert (redis_prefix_for(other) == "tradecore:") == (log_topic(other) == log_topic(default))
