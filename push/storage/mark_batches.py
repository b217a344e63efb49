"""Delivered marks and acks of many users in one round trip: the marks' flush.

On one Redis the commands are packed here and sent on a pooled connection as they
are: a redis-py pipeline of scripts asks SCRIPT EXISTS first (a round trip more) and
packs each command in Python. A mark and an ack are idempotent (they only move
forward), so after a NOSCRIPT (Redis restarted) the whole batch goes again once both
scripts are loaded. On a cluster, a pipeline (it routes each command to its node)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError, ResponseError

from push.model.entries import Entry
from push.model.keys import UserKeys
from push.storage.clients import queue_script
from push.storage.resp3 import pack

log = logging.getLogger(__name__)


def send_marks(
    client: redis.Redis,
    cluster: bool,
    mark_script: Script,
    acknowledge_script: Script,
    marks: list[tuple[UserKeys, Entry]],
    ttl_s: int,
    acks: Sequence[tuple[UserKeys, str]] = (),
) -> None:
    """Run lua/mark_delivered.lua for each of `marks`, then lua/acknowledge.lua for each
    of `acks`: an ack goes after its user's mark, so an entry written and acknowledged
    before the same flush is within the mark. A mark's error is raised (its flush is
    retried); an ack's is logged and dropped."""
    if cluster:
        with client.pipeline(transaction=False) as pipe:
            for keys, entry in marks:
                queue_script(pipe, mark_script, [keys.state], [entry.id, entry.n, ttl_s])
            for keys, event_id in acks:
                queue_script(
                    pipe, acknowledge_script, [keys.state, keys.history], [event_id, ttl_s]
                )
            answers = pipe.execute(raise_on_error=False)
        _raise_for_marks(
            [(i, a) for i, a in enumerate(answers) if isinstance(a, Exception)], len(marks)
        )
        return
    mark, acknowledge = mark_script.sha, acknowledge_script.sha
    data = b"".join(
        [
            *(
                pack(("EVALSHA", mark, 1, keys.state, entry.id, entry.n, ttl_s))
                for keys, entry in marks
            ),
            *(
                pack(("EVALSHA", acknowledge, 2, keys.state, keys.history, event_id, ttl_s))
                for keys, event_id in acks
            ),
        ]
    )
    count = len(marks) + len(acks)
    missing, failures = _send_packed(client, data, count)
    if missing:
        client.script_load(mark_script.script)
        client.script_load(acknowledge_script.script)
        missing, failures = _send_packed(client, data, count)
    _raise_for_marks(failures, len(marks))


def _raise_for_marks(failures: Sequence[tuple[int, Exception]], mark_count: int) -> None:
    """A batch's error answers: a mark's is raised (its flush is retried); an ack's is
    logged and dropped, so one bad ack can hold back neither the marks nor flow control."""
    for index, error in failures:
        if index < mark_count:
            raise error
    for _, error in failures:
        log.warning("ack not recorded error=%s", error)


def _send_packed(
    client: redis.Redis, data: bytes, count: int
) -> tuple[bool, list[tuple[int, ResponseError]]]:
    """Send `count` packed commands on a pooled connection and read their answers:
    (a script was missing, the other error answers with their command's index)."""
    pool = client.connection_pool
    connection = pool.get_connection()
    missing, failures = False, []
    try:
        connection.send_packed_command([data])
        for index in range(count):
            try:
                connection.read_response()
            except NoScriptError:
                missing = True
            except ResponseError as error:
                failures.append((index, error))
    except BaseException:
        connection.disconnect()
        raise
    finally:
        pool.release(connection)
    return missing, failures
