"""The control log's contract, checked against made-up topic descriptions (no broker)."""

from __future__ import annotations

from events.topics import DESIRED, EVENTS, HEARTBEATS
from projections.io.topics import TopicFacts, contract_problems, topic_config

GOOD_EVENTS = {
    "cleanup.policy": "delete",
    "retention.ms": "-1",
    "retention.bytes": "-1",
    "min.insync.replicas": "1",
}


def _facts(partitions: int = 1, rf: int = 1, **configs: str) -> TopicFacts:
    merged = GOOD_EVENTS | {k.replace("_", "."): v for k, v in configs.items()}
    return TopicFacts("p.events", partitions, rf, merged)


def test_the_created_topic_meets_the_contract() -> None:
    for brokers in (1, 3):
        rf = min(brokers, 3)
        facts = TopicFacts("p.events", 1, rf, topic_config(EVENTS, rf))
        assert contract_problems(EVENTS, facts, brokers=brokers) == []


def test_a_finite_retention_names_the_setting_and_the_fix() -> None:
    [problem] = contract_problems(EVENTS, _facts(retention_ms="604800000"), brokers=1)
    assert "retention.ms=604800000" in problem and "retention.ms=-1" in problem
    assert "--add-config retention.ms=-1" in problem and "p.events" in problem


def test_a_size_bound_deletes_history_too() -> None:
    [problem] = contract_problems(EVENTS, _facts(retention_bytes="1073741824"), brokers=1)
    assert "retention.bytes=-1" in problem


def test_partitions_and_cleanup_policy() -> None:
    problems = contract_problems(EVENTS, _facts(partitions=3, cleanup_policy="compact"), brokers=1)
    assert len(problems) == 2
    assert "3 partitions, the contract says 1" in problems[0]
    assert "cleanup.policy=compact" in problems[1] and "cleanup.policy=delete" in problems[1]


def test_replication_and_min_isr_on_three_brokers() -> None:
    facts = _facts(rf=1)
    problems = contract_problems(EVENTS, facts, brokers=3)
    assert any("replication factor 1, the contract says 3" in p for p in problems)
    assert any("min.insync.replicas=1, the contract says 2" in p for p in problems)
    # one broker: one replica is the contract
    assert contract_problems(EVENTS, facts, brokers=1) == []


def test_a_finite_retention_is_fine_where_the_contract_has_one() -> None:
    facts = TopicFacts("p.heartbeats", 6, 1, topic_config(HEARTBEATS, 1) | {"retention.ms": "1"})
    assert contract_problems(HEARTBEATS, facts, brokers=1) == []


def test_the_desired_sets_must_stay_compacted() -> None:
    facts = TopicFacts("p.desired", 6, 1, topic_config(DESIRED, 1) | {"cleanup.policy": "delete"})
    [problem] = contract_problems(DESIRED, facts, brokers=1)
    assert "cleanup.policy=compact" in problem
