"""How a worker learns of mail, end to end: the per-worker mailbox watcher
(PUSH_MAILBOX_WATCH=notify, what auto picks on these Redis servers) and the blocking
movers it falls back to (block).

The services here beat every 30 s, so their pumps re-read the history only every two
minutes: a message that reaches a tab within a second got there through the watcher (or
a mover) and a wake, not through the periodic re-read that heals a missed one.
"""

from __future__ import annotations

import time

import pytest
import redis
from clients import (
    DEADLINE_S,
    drainer_pids,
    mover_pids,
    open_concurrently,
    open_on_both_workers,
    open_sse,
    open_ws,
    redis_clients,
    tabs_receive,
    wait_until,
    ws_frames,
)
from servers import Gunicorn, service_env

pytestmark = pytest.mark.e2e

#: What "live" means here: every tab has the message within this many seconds of its LPUSH.
LIVE_S = 1.0


@pytest.fixture(params=["redis", "cluster"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=["notify", "block"])
def watch(request: pytest.FixtureRequest) -> str:
    return request.param


def mailbox(user_id: str) -> str:
    return f"user_{user_id}_messages"


def watcher_connections(r, server: Gunicorn) -> list[dict]:
    """The mailbox watchers' connections of `server`'s workers (named push:watch:<pid>)."""
    names = {f"push:watch:{pid}" for pid in server.worker_pids()}
    return [client for client in redis_clients(r) if client["name"] in names]


def test_each_message_reaches_every_tab_on_both_workers_within_a_second(quiet_service, r, user_id):
    clients = open_on_both_workers(quiet_service.base_url, r, user_id)
    try:
        wait_until(lambda: drainer_pids(r, user_id), what="a drainer")
        for n in range(5):
            r.lpush(mailbox(user_id), f"live {n}")
            tabs_receive(clients, [f"live {n}"], LIVE_S)
    finally:
        for client in clients:
            client.close()


def test_users_with_one_tab_each_get_each_message_within_a_second(quiet_service, r):
    """The shape production sees: one connection per user (push.js holds one per browser).
    With the watcher no wake is published for them (no other worker serves them)."""
    users = [f"solo{n}-{time.monotonic_ns()}" for n in range(10)]
    tabs = []
    try:
        for n, user in enumerate(users):
            if n % 2:
                tabs.append(open_ws(quiet_service.base_url, {"user_id": user}))
            else:
                tabs.append(open_sse(quiet_service.base_url, {"user_id": user}))
                tabs[-1].wait_for_comment("connected")
        wait_until(lambda: all(drainer_pids(r, user) for user in users), what="every drainer")
        for round_ in range(3):
            for user, tab in zip(users, tabs, strict=True):
                r.lpush(mailbox(user), f"{user} {round_}")
                tabs_receive([tab], [f"{user} {round_}"], LIVE_S)
    finally:
        for tab in tabs:
            tab.close()


@pytest.mark.parametrize("backend", ["redis"])
@pytest.mark.parametrize("watch", ["notify"])
def test_the_watcher_holds_no_blocked_connection_and_publishes_no_needless_wake(
    quiet_service, r, user_id
):
    """One tab: its worker drains the user through its watcher connection, so Redis holds
    no blocked connection for it, and no wake goes out (nobody else would hear it)."""
    with open_sse(quiet_service.base_url, {"user_id": user_id}) as stream:
        stream.wait_for_comment("connected")
        wait_until(lambda: drainer_pids(r, user_id), what="a drainer")
        published = r.info("commandstats").get("cmdstat_publish", {}).get("calls", 0)
        for n in range(5):
            r.lpush(mailbox(user_id), f"m{n}")
            assert stream.next_event(timeout=LIVE_S).data == f"m{n}"
        assert r.info("commandstats").get("cmdstat_publish", {}).get("calls", 0) == published
        assert mover_pids(r, user_id) == set()
        assert r.info("clients")["blocked_clients"] == 0
        # One per worker that has served a stream, whatever the number of users.
        assert 1 <= len(watcher_connections(r, quiet_service)) <= 2


@pytest.mark.parametrize("backend", ["redis"])
@pytest.mark.parametrize("watch", ["notify"])
def test_a_watcher_connection_cut_loses_nothing_and_hints_come_back(quiet_service, r, user_id):
    """Messages pushed while the watcher's connection is down (its hints lost with it)
    arrive when it is back, in order; after that, hints work again."""
    with open_ws(quiet_service.base_url, {"user_id": user_id}) as ws:
        wait_until(lambda: drainer_pids(r, user_id), what="a drainer")
        r.lpush(mailbox(user_id), "before")
        assert ws_frames(ws, 1, timeout=LIVE_S)[0]["data"] == "before"
        watchers = watcher_connections(r, quiet_service)
        for client in watchers:
            r.client_kill_filter(_id=client["id"])
        r.lpush(mailbox(user_id), *[f"while down {n}" for n in range(20)])
        got = [frame["data"] for frame in ws_frames(ws, 20, timeout=DEADLINE_S)]
        assert got == [f"while down {n}" for n in range(20)]
        wait_until(
            lambda: len(watcher_connections(r, quiet_service)) == len(watchers),
            what="the watchers back",
        )
        for n in range(3):
            r.lpush(mailbox(user_id), f"after {n}")
            assert ws_frames(ws, 1, timeout=LIVE_S)[0]["data"] == f"after {n}"


@pytest.mark.parametrize("setting", ["auto", "notify"])
def test_a_redis_that_will_not_track_keys_gets_blocking_movers(tmp_path, redis_server, setting):
    """A user whose ACL forbids CLIENT TRACKING (as a managed Redis or a proxy may): the
    service says why in one log line per worker and delivers with blocking movers."""
    admin = redis.Redis.from_url(redis_server.url, decode_responses=True)
    user = f"notrack{setting}"
    admin.acl_setuser(
        user,
        enabled=True,
        passwords=["+secret"],
        keys=["*"],
        channels=["*"],
        commands=["+@all", "-client|tracking"],
    )
    url = f"redis://{user}:secret@127.0.0.1:{redis_server.port}/0"
    env = service_env(url, PUSH_DEMO="1", PUSH_HEARTBEAT_S="30", PUSH_MAILBOX_WATCH=setting)
    server = Gunicorn(tmp_path / "gunicorn.log", env).start()
    user_id = f"refused-{setting}"
    try:
        clients = open_concurrently(server.base_url, user_id, 4)
        try:
            wait_until(lambda: mover_pids(admin, user_id), what="a blocking mover")
            admin.lpush(mailbox(user_id), "still delivered")
            tabs_receive(clients, ["still delivered"], LIVE_S)
        finally:
            for client in clients:
                client.close()
        level = "ERROR" if setting == "notify" else "WARNING"
        lines = [line for line in server.log().splitlines() if "falling back to block" in line]
        assert lines, server.log()
        assert all(f" {level} " in line and "client|tracking" in line for line in lines), lines
        assert len(lines) <= 2  # one per worker that served a stream
    finally:
        server.stop()
        admin.acl_deluser(user)
        admin.close()


@pytest.mark.parametrize("backend", ["redis"])
def test_dense_mail_keeps_flowing_to_many_users(quiet_service, r, watch):
    """Bursts to 20 users at once, as fast as the test can push: every message reaches
    every tab within seconds of the last push (a drain decision that undid a hint read in
    the same pipeline left users waiting for the 2-minute periodic check)."""
    users = [f"dense{n}-{time.monotonic_ns()}" for n in range(20)]
    tabs = [open_sse(quiet_service.base_url, {"user_id": user}) for user in users]
    try:
        for tab in tabs:
            tab.wait_for_comment("connected")
        wait_until(lambda: all(drainer_pids(r, user) for user in users), what="every drainer")
        rounds = 150
        for n in range(rounds):
            with r.pipeline(transaction=False) as pipe:
                for user in users:
                    pipe.lpush(mailbox(user), f"{n}a", f"{n}b")
                pipe.execute()
        expected = [f"{n}{part}" for n in range(rounds) for part in "ab"]
        for tab in tabs:
            assert [event.data for event in tab.events(len(expected), timeout=15)] == expected
    finally:
        for tab in tabs:
            tab.close()
