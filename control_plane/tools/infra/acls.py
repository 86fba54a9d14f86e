"""Who may do what on a secure cluster: one principal per role, least privilege, built from
the topic contract (``events.topics``) for one topic prefix.

The table (docs/infra.md, "Secure mode", shows the same):

| principal      | writes                               | reads                               |
|----------------|--------------------------------------|-------------------------------------|
| orchestrator   | events, desired, snapshots, dlq,     | events, desired, snapshots,         |
|                | cycles; its transactional id;        | heartbeats, commands, assignments   |
|                | creates topics; sets the snapshots   | (its periodic consistency check)    |
|                | topic's configs                      |                                     |
| worker         | heartbeats                           | desired                             |
| operator       | commands; assignments (`check        | commands, events, assignments,      |
|                | --repair` republishes a drifted key) | alerts, snapshots, desired,         |
|                |                                      | heartbeats, cycles (check, simulate)|
|                |                                      | the projector's table changelogs    |
| projector      | assignments, dlq, its Faust topics   | events, heartbeats, assignments     |
|                |                                      | (what a takeover finds published)   |
| read-model     | dlq                                  | events                              |
| monitor        | alerts                               | alerts, events, heartbeats, dlq     |

Every role may read the settings of the prefix's topics (DESCRIBE_CONFIGS), which each
process does at start to refuse a misconfigured control log. The admin principal is the
brokers' only super user; no process runs as it.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

from events.topics import (
    ALERTS,
    ASSIGNMENTS,
    COMMANDS,
    CYCLES,
    DESIRED,
    DLQ,
    EVENTS,
    HEARTBEATS,
    SNAPSHOTS,
    Topics,
    TopicSpec,
)

ADMIN = "admin"


class Resource(IntEnum):
    """Kafka's resource type codes (CreateAcls)."""

    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5


class Pattern(IntEnum):
    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DESCRIBE = 8
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11


class Acl(NamedTuple):
    """One ALLOW rule: ``principal`` may ``operation`` on the resource, from any host."""

    principal: str
    resource: Resource
    name: str
    pattern: Pattern
    operation: Operation


class Role(NamedTuple):
    """A principal's grants on the topics of one prefix."""

    name: str
    writes: tuple[TopicSpec, ...]
    reads: tuple[TopicSpec, ...]


ROLES: tuple[Role, ...] = (
    Role(
        "orchestrator",
        (EVENTS, DESIRED, SNAPSHOTS, DLQ, CYCLES),
        (EVENTS, DESIRED, SNAPSHOTS, HEARTBEATS, COMMANDS, ASSIGNMENTS),
    ),
    Role("worker", (HEARTBEATS,), (DESIRED,)),
    Role(
        "operator",
        (COMMANDS, ASSIGNMENTS),
        (COMMANDS, EVENTS, ASSIGNMENTS, ALERTS, SNAPSHOTS, DESIRED, HEARTBEATS, CYCLES),
    ),
    Role("projector", (ASSIGNMENTS, DLQ), (EVENTS, HEARTBEATS, ASSIGNMENTS)),
    Role("read-model", (DLQ,), (EVENTS,)),
    Role("monitor", (ALERTS,), (ALERTS, EVENTS, HEARTBEATS, DLQ)),
)
#: every principal infra creates: the roles and the admin
PRINCIPALS: tuple[str, ...] = (ADMIN, *(role.name for role in ROLES))


def _topic(principal: str, topics: Topics, spec: TopicSpec, op: Operation) -> Acl:
    return Acl(principal, Resource.TOPIC, topics.name(spec), Pattern.LITERAL, op)


def _prefixed(user: str, resource: Resource, name: str, *ops: Operation) -> list[Acl]:
    return [Acl(user, resource, name, Pattern.PREFIXED, op) for op in ops]


def role_acls(role: Role, prefix: str) -> list[Acl]:
    """The ALLOW rules of ``role`` on the topics, groups and ids of ``prefix``."""
    user, topics, every = f"User:{role.name}", Topics(prefix), f"{prefix}."
    acls = [_topic(user, topics, s, Operation.WRITE) for s in role.writes]
    acls += [_topic(user, topics, s, Operation.READ) for s in role.reads]
    acls += _prefixed(user, Resource.TOPIC, every, Operation.DESCRIBE_CONFIGS)
    if role.name == "orchestrator":  # creates the topics; its group and transactional id
        acls += _prefixed(user, Resource.TOPIC, every, Operation.CREATE, Operation.DESCRIBE)
        acls += _prefixed(user, Resource.GROUP, every, Operation.READ)
        tid = (Operation.WRITE, Operation.DESCRIBE)
        acls += _prefixed(user, Resource.TRANSACTIONAL_ID, every, *tid)
        # no ALTER_CONFIGS: the snapshots topic is created with its record size and segments
        # (events.topics); a snapshot store set for bigger ones names the command to run
    if role.name == "projector":  # Faust's app id, group and changelogs: <prefix>-projector*
        own = f"{prefix}-projector"
        acls += _prefixed(user, Resource.TOPIC, own, Operation.ALL)
        acls += _prefixed(user, Resource.GROUP, own, Operation.ALL)
    if role.name == "operator":  # `check` reads the projector's table changelogs
        acls += _prefixed(user, Resource.TOPIC, f"{prefix}-projector", Operation.READ)
    if role.name == "monitor":  # the projector group's offset on the log (its lag)
        acls += _prefixed(user, Resource.GROUP, prefix, Operation.DESCRIBE)
        # the monitors' group and transactional id: one of them publishes at a time
        # (control_plane.monitor.leadership)
        own = f"{prefix}.monitor"
        acls.append(Acl(user, Resource.GROUP, own, Pattern.LITERAL, Operation.READ))
        for op in (Operation.WRITE, Operation.DESCRIBE):
            acls.append(Acl(user, Resource.TRANSACTIONAL_ID, own, Pattern.LITERAL, op))
    return acls


def all_acls(prefix: str) -> list[Acl]:
    """Every rule of every role for ``prefix``."""
    return [acl for role in ROLES for acl in role_acls(role, prefix)]
