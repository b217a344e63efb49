"""`flask --app wsgi push ...`: send, watch and inspect users' messages from a terminal."""

from __future__ import annotations

import json

import click
from flask import current_app

from push.delivery.mover import drain
from push.edge.parts import parts
from push.model.keys import InvalidEventId, UserKeys, parse_event_id, user_keys
from push.model.settings import DeliverySettings
from push.publishing import PublishError, disconnect, publish
from push.storage.presence import Presence
from push.storage.store import Store

#: Seconds `tail` waits for a wake before it looks at the mailbox again.
TAIL_POLL_S = 1.0
#: Presence keys `stats` reads at most when it ranks users.
STATS_SCAN_LIMIT = 100_000


def _store() -> Store:
    return parts().store


def _keys(user_id: str) -> UserKeys:
    try:
        return user_keys(user_id, current_app.config["PUSH_MAILBOX_KEY"])
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="USER_ID") from None


@click.group("push")
def push() -> None:
    """Send, watch and inspect users' messages."""


@push.command()
@click.argument("user_id")
@click.argument("message", required=False)
@click.option("--json", "json_text", metavar="JSON", help="Send this JSON value, compacted.")
def send(user_id: str, message: str | None, json_text: str | None) -> None:
    """Queue MESSAGE (or --json) for USER_ID, as `LPUSH user_<id>_messages` does."""
    if (message is None) == (json_text is None):
        raise click.UsageError("give a MESSAGE or --json, not both")
    if json_text is not None:
        try:
            data: object = json.loads(json_text)
        except ValueError as error:
            raise click.BadParameter(f"not JSON: {error}", param_hint="--json") from None
    else:
        data = message
    try:
        connections = publish(
            _store().redis,
            user_id,
            data,
            mailbox_key=current_app.config["PUSH_MAILBOX_KEY"],
            max_bytes=current_app.config["PUSH_MAX_MESSAGE_BYTES"],
            mailbox_max=current_app.config["PUSH_MAILBOX_MAX"],
            mailbox_ttl_s=current_app.config["PUSH_MAILBOX_TTL_S"],
        )
    except PublishError as error:
        raise click.ClickException(f"{error.code}: {error.detail}") from None
    click.echo(f"queued for {user_id}; {connections} connection(s) open")


@push.command()
@click.argument("user_id")
@click.option("--after", "cursor", metavar="EVENT_ID", help="Start after this event id.")
@click.option("--count", type=int, help="Exit after this many messages.")
def tail(user_id: str, cursor: str | None, count: int | None) -> None:
    """Print USER_ID's messages as they arrive, one `<event id> <payload>` line each.

    Like a connection without a cursor, it starts after the user's delivered mark,
    moves mail into the history and advances the mark."""
    store = _store()
    keys = _keys(user_id)
    settings: DeliverySettings = parts().delivery
    if cursor is not None:
        try:
            parse_event_id(cursor)
        except InvalidEventId as error:
            raise click.BadParameter(str(error), param_hint="--after") from None
    cursor = cursor or store.delivered_mark(keys) or "0-0"
    wakes = store.user_wakes(keys)
    printed = 0
    try:
        while count is None or printed < count:
            drain(store, keys, settings)
            entries, _ = store.read_after(keys, cursor, settings.drain_batch)
            for entry in entries[: None if count is None else count - printed]:
                click.echo(f"{entry.id} {entry.data}")
                store.mark_delivered(keys, entry, settings.history_ttl_s)
                cursor = entry.id
                printed += 1
            if not entries:
                wakes.get_message(timeout=TAIL_POLL_S)
    finally:
        wakes.close()


@push.command("disconnect")
@click.argument("user_id")
@click.option("--reason", default="", help="Told to the user's clients.")
def disconnect_command(user_id: str, reason: str) -> None:
    """Close every open connection of USER_ID and refuse its tokens issued before now."""
    try:
        closed = disconnect(
            _store().redis,
            user_id,
            reason,
            mailbox_key=current_app.config["PUSH_MAILBOX_KEY"],
            ttl_s=current_app.config["PUSH_REVOCATION_TTL_S"],
        )
    except PublishError as error:
        raise click.ClickException(f"{error.code}: {error.detail}") from None
    click.echo(f"{user_id} disconnected; {closed} connection(s) were open")


@push.command()
@click.argument("user_id", required=False)
@click.option("--top", default=10, show_default=True, help="How many users to rank.")
def stats(user_id: str | None, top: int) -> None:
    """Mailbox, history, dead letters and connections of USER_ID, or the busiest users."""
    store = _store()
    presence: Presence = parts().presence
    if user_id is not None:
        keys = _keys(user_id)
        with store.redis.pipeline(transaction=False) as pipe:
            pipe.llen(keys.mailbox)
            pipe.llen(keys.pending)
            pipe.xlen(keys.history)
            pipe.llen(keys.dead)
            waiting, pending, history, dead = pipe.execute()
        count = presence.count(keys)
        rows = [
            ("waiting in the mailbox", waiting),
            ("moving (pending)", pending),
            ("in the history", history),
            ("dead letters", dead),
            ("open connections", count.connections),
            ("delivered mark", store.delivered_mark(keys) or "-"),
            ("last seen", count.last_seen.isoformat() if count.last_seen else "-"),
        ]
        for label, value in rows:
            click.echo(f"{label:<24}{value}")
        return
    template = current_app.config["PUSH_MAILBOX_KEY"]
    prefix, _, suffix = template.partition("{user_id}")
    ranked = []
    for scanned, key in enumerate(store.redis.scan_iter(match="{*}:presence", count=1000)):
        if scanned >= STATS_SCAN_LIMIT:
            break
        mailbox = key.decode()[1 : -len("}:presence")]
        if not (mailbox.startswith(prefix) and mailbox.endswith(suffix)):
            continue
        candidate = mailbox[len(prefix) : len(mailbox) - len(suffix)]
        connections = presence.count(_keys(candidate)).connections
        if connections:
            ranked.append((connections, candidate))
    ranked.sort(reverse=True)
    click.echo(f"{len(ranked)} user(s) online, {sum(n for n, _ in ranked)} connection(s)")
    for connections, candidate in ranked[:top]:
        click.echo(f"{connections:>6}  {candidate}")
