"""Topics as the contract (``events.topics``) describes them: created when missing, and
checked when present.

Why every process does this at start rather than trusting the broker: a broker that
auto-creates topics gives them its own defaults (one partition, seven days' retention), and
a control log with a finite retention silently loses the only source of truth. So a topic is
created here with its documented partitions, cleanup policy, retention, replication and
``min.insync.replicas``, and a topic that exists with other values stops the process with
one line naming the setting and the command that fixes it (:class:`TopicContractError`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from aiokafka import errors as kafka_errors
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from events.topics import ALL_TOPICS, Topics, TopicSpec
from kafka_auth import Brokers
from projections.errors import TopicContractError, TopicSetupError
from projections.io.kafka import DEFAULT_TIMEOUT, kafka_error, make_admin, started

#: replication factor never above this, even on bigger clusters (DESIGN: RF 3, min ISR 2)
MAX_REPLICATION = 3
#: the topic settings the contract fixes (read back with DescribeConfigs)
CHECKED_CONFIGS = ("cleanup.policy", "retention.ms", "retention.bytes", "min.insync.replicas")
_UNKNOWN = kafka_errors.UnknownTopicOrPartitionError.errno
_DENIED = {
    kafka_errors.TopicAuthorizationFailedError.errno,
    kafka_errors.ClusterAuthorizationFailedError.errno,
}


def min_isr(replication_factor: int) -> int:
    """The contract's ``min.insync.replicas``: 2 with three replicas (one may be lost
    without losing an acknowledged write or stopping writes), else 1."""
    return 2 if replication_factor >= 3 else 1


def topic_config(spec: TopicSpec, replication_factor: int) -> dict[str, str]:
    """The configs a topic of ``spec`` is created with."""
    return {
        "cleanup.policy": "compact" if spec.compacted else "delete",
        "retention.ms": str(spec.retention_ms),
        "retention.bytes": "-1",
        "min.insync.replicas": str(min_isr(replication_factor)),
        **dict(spec.configs),
    }


class TopicFacts(NamedTuple):
    """What the brokers say about one existing topic."""

    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str]


def _fix(name: str, setting: str, value: str) -> str:
    return (
        f"fix: kafka-configs.sh --alter --entity-type topics --entity-name {name} "
        f"--add-config {setting}={value}"
    )


def contract_problems(spec: TopicSpec, facts: TopicFacts, *, brokers: int) -> list[str]:
    """Every way ``facts`` differ from the contract for ``spec`` on a cluster of
    ``brokers`` (pure: the unit tests call it with made-up facts)."""
    name, problems = facts.name, []
    if facts.partitions != spec.partitions:
        problems.append(
            f"topic {name} has {facts.partitions} partitions, the contract says "
            f"{spec.partitions} (partitions cannot be changed in place: delete and recreate "
            "it with `streamplane topics`, or use another topic prefix)"
        )
    wanted = topic_config(spec, min(brokers, MAX_REPLICATION))
    checked = ["cleanup.policy"]
    if spec.retention_ms == -1:  # kept forever: any deletion loses truth
        checked += ["retention.ms", "retention.bytes"]
    for setting in checked:
        actual = facts.configs.get(setting)
        if actual is not None and actual != wanted[setting]:
            problems.append(
                f"topic {name} has {setting}={actual}, the contract says "
                f"{setting}={wanted[setting]} ({_fix(name, setting, wanted[setting])})"
            )
    expected_rf = min(brokers, MAX_REPLICATION)
    if facts.replication_factor < expected_rf:
        problems.append(
            f"topic {name} has replication factor {facts.replication_factor}, the contract "
            f"says {expected_rf} on {brokers} brokers (fix: kafka-reassign-partitions.sh "
            "with a plan listing three replicas per partition)"
        )
    isr = facts.configs.get("min.insync.replicas")
    if isr is not None and int(isr) < min_isr(expected_rf):
        want = str(min_isr(expected_rf))
        problems.append(
            f"topic {name} has min.insync.replicas={isr}, the contract says {want} "
            f"({_fix(name, 'min.insync.replicas', want)})"
        )
    return problems


async def ensure_topics(
    bootstrap: Brokers,
    topics: Topics,
    specs: Iterable[TopicSpec] = ALL_TOPICS,
    *,
    replication_factor: int | None = None,
    kafka_timeout: float = DEFAULT_TIMEOUT,
) -> None:
    """Create the missing topics of ``specs`` under ``topics.prefix`` as ``events.topics``
    specifies, wait until every partition has a leader, then check every one of them
    against the contract (:func:`contract_problems`): :class:`TopicContractError` names
    the first wrong setting and its fix. Idempotent; safe when several processes race.
    ``replication_factor`` defaults to min(brokers, 3)."""
    specs = tuple(specs)
    admin = make_admin(bootstrap)
    async with started(admin, kafka_timeout=kafka_timeout, what="Kafka admin client"):
        try:
            async with asyncio.timeout(kafka_timeout):
                cluster = await admin.describe_cluster()
                brokers = len(cluster["brokers"])
                rf = replication_factor or min(brokers, MAX_REPLICATION)
                existing = set(await admin.list_topics())
                missing = [s for s in specs if topics.name(s) not in existing]
                if missing:
                    await _create(admin, topics, missing, rf)
                facts = await _await_leaders(admin, {topics.name(s): s.partitions for s in specs})
                await _check(admin, topics, specs, facts, brokers)
        except (TimeoutError, kafka_errors.KafkaError) as exc:
            raise kafka_error(exc, f"ensure topics under {topics.prefix!r}") from exc


async def replication_factor(bootstrap: Brokers, *, kafka_timeout: float = DEFAULT_TIMEOUT) -> int:
    """The replication factor the contract gives a topic on this cluster: min(brokers, 3)."""
    admin = make_admin(bootstrap)
    async with started(admin, kafka_timeout=kafka_timeout, what="Kafka admin client"):
        try:
            async with asyncio.timeout(kafka_timeout):
                cluster = await admin.describe_cluster()
        except (TimeoutError, kafka_errors.KafkaError) as exc:
            raise kafka_error(exc, "describe the cluster") from exc
    return min(len(cluster["brokers"]), MAX_REPLICATION)


async def _create(
    admin: AIOKafkaAdminClient, topics: Topics, specs: list[TopicSpec], rf: int
) -> None:
    new = [
        NewTopic(topics.name(s), s.partitions, rf, topic_configs=topic_config(s, rf)) for s in specs
    ]
    response = await admin.create_topics(new)
    for name, code, message in response.topic_errors:
        if code in _DENIED:
            raise TopicSetupError(
                f"topic {name} does not exist (or this principal may not see it) and this "
                "principal may not create it: run `streamplane topics` (or start the "
                "orchestrator) with credentials that may"
            )
        if code not in (0, kafka_errors.TopicAlreadyExistsError.errno):
            raise TopicSetupError(f"create topic {name}: error {code}: {message}")


async def _await_leaders(admin: AIOKafkaAdminClient, wanted: dict[str, int]) -> dict[str, Any]:
    """Poll until each topic has partitions, all with a leader (the caller bounds it);
    returns each topic's description."""
    while True:
        described = {t["topic"]: t for t in await admin.describe_topics(list(wanted))}
        for name, topic in described.items():
            if topic.get("error_code") in _DENIED:
                raise TopicSetupError(
                    f"this principal may not see topic {name}; its ACLs lack DESCRIBE or READ "
                    "(docs/infra.md, 'Secure mode')"
                )
        ready = [
            t
            for t in described.values()
            if t.get("partitions") and all(p.get("leader", -1) >= 0 for p in t["partitions"])
        ]
        # a topic with the wrong partition count is complete too: _check says what is wrong
        if len(ready) == len(wanted):
            return described
        await asyncio.sleep(0.1)


async def _check(
    admin: AIOKafkaAdminClient,
    topics: Topics,
    specs: tuple[TopicSpec, ...],
    described: dict[str, Any],
    brokers: int,
) -> None:
    configs = await topic_configs(admin, [topics.name(s) for s in specs])
    problems = []
    for spec in specs:
        name = topics.name(spec)
        parts = described[name]["partitions"]
        rf = min(len(p.get("replicas", ())) for p in parts)
        facts = TopicFacts(name, len(parts), rf, configs.get(name, {}))
        problems += contract_problems(spec, facts, brokers=brokers)
    if problems:
        raise TopicContractError("; ".join(problems))


async def topic_configs(
    admin: AIOKafkaAdminClient, names: list[str], keys: Iterable[str] = CHECKED_CONFIGS
) -> dict[str, dict[str, str]]:
    """topic -> the effective values of ``keys`` (DescribeConfigs). A topic created a
    moment ago may be unknown to the broker asked (each learns of it in its own time): asked
    again until it answers (the caller bounds the wait)."""
    keys = tuple(keys)
    while True:
        resources = [
            ConfigResource(ConfigResourceType.TOPIC, n, dict.fromkeys(keys)) for n in names
        ]
        out: dict[str, dict[str, str]] = {}
        for response in await admin.describe_configs(resources):
            for error, message, _type, name, entries in (r[:5] for r in response.resources):
                if error in _DENIED:
                    raise TopicSetupError(
                        f"this principal may not read the settings of topic {name} "
                        "(DESCRIBE_CONFIGS); see docs/infra.md, 'Secure mode'"
                    )
                if error and error != _UNKNOWN:
                    raise TopicSetupError(f"describe configs of {name}: error {error}: {message}")
                if not error:
                    out[name] = {e[0]: e[1] for e in entries if e[1] is not None}
        if len(out) == len(names):
            return out
        await asyncio.sleep(0.1)
