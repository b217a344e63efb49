"""Properties, checked on generated inputs: framing round-trips, ids keep keys in shape."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sseclient import SSEClient

from push.edge.ack_view import ack_key
from push.edge.bodies import message_body_limit
from push.edge.origins import DEFAULT_PORTS, foreign_origin, same_origin
from push.edge.sse import encode_event
from push.edge.ws_view import Ack, Renewal, check_client_frame
from push.model.errors import Refusal
from push.model.keys import (
    MAX_EVENT_ID_PART,
    InvalidEventId,
    InvalidUserId,
    event_id_text,
    history_key,
    parse_event_id,
    user_keys,
    validate_user_id,
)
from push.model.settings import DEFAULT_MAX_MESSAGE_BYTES

EVENT_IDS = st.builds(lambda ms, seq: f"{ms}-{seq}", st.integers(0, 2**63), st.integers(0, 2**63))


def parse_with_a_standard_client(stream: bytes):
    return list(SSEClient(iter([stream])).events())


@given(payloads=st.lists(st.text(), min_size=1, max_size=5), ids=st.lists(EVENT_IDS, min_size=5))
def test_any_text_round_trips_through_our_framing_and_a_standard_parser(payloads, ids):
    stream = b"".join(encode_event(p, event_id=i) for p, i in zip(payloads, ids, strict=False))
    events = parse_with_a_standard_client(stream)
    # SSE's one change to a payload: every line break arrives as \n.
    assert [event.data for event in events] == [re.sub(r"\r\n|\r", "\n", p) for p in payloads]
    assert [event.id for event in events] == ids[: len(payloads)]


@given(EVENT_IDS)
def test_the_delivery_paths_id_parser_agrees_with_the_checked_one(event_id):
    assert history_key(event_id) == parse_event_id(event_id)


@given(st.text(max_size=80))
def test_no_accepted_user_id_can_change_the_shape_of_a_key(candidate):
    try:
        user_id = validate_user_id(candidate)
    except InvalidUserId:
        return
    keys = user_keys(user_id, "user_{user_id}_messages")
    assert keys.mailbox == f"user_{user_id}_messages"
    assert not set("{}*?[] \t\r\n\0/") & set(keys.mailbox)
    for key in (keys.pending, keys.history, keys.state, keys.dead, keys.wake, keys.presence):
        tag, _, suffix = key.partition("}")
        assert tag == "{" + keys.mailbox  # the hash tag is the whole mailbox name
        assert suffix in {":pending", ":history", ":state", ":dead", ":wake", ":presence"}


@given(st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True))
def test_every_id_of_the_documented_alphabet_is_accepted_except_dot_segments(user_id):
    if user_id in {".", ".."}:
        return
    assert validate_user_id(user_id) == user_id


ID_PARTS = st.one_of(
    st.integers(0, 2**64 - 1),
    st.integers(2**64 - 3, 10**20 - 1),  # both sides of the bound, up to 20 digits
    st.integers(0, 10**25),
)
ID_LIKE = st.one_of(
    st.builds(lambda ms, seq: f"{ms}-{seq}", ID_PARTS, ID_PARTS),
    st.builds(
        lambda ms, seq, zeros: f"{'0' * zeros}{ms}-{seq}", ID_PARTS, ID_PARTS, st.integers(0, 3)
    ),
    st.text(alphabet="0123456789-", max_size=45),
    st.text(max_size=45),
)


@given(ID_LIKE)
def test_any_id_string_is_refused_or_accepted_within_redis_range_by_both_parsers(candidate):
    try:
        key = parse_event_id(candidate)
    except InvalidEventId:
        return
    assert 0 <= key[0] <= MAX_EVENT_ID_PART and 0 <= key[1] <= MAX_EVENT_ID_PART
    assert history_key(candidate) == key
    assert parse_event_id(event_id_text(key)) == key


#: JSON of any shape and depth, as text, and text that is almost JSON.
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
CLIENT_TEXT = st.one_of(
    JSON_VALUES.map(json.dumps),
    st.builds(lambda value: json.dumps({"ack": value}), JSON_VALUES | ID_LIKE),
    st.builds(lambda value: json.dumps({"id": value}), JSON_VALUES | ID_LIKE),
    st.builds(lambda value: json.dumps({"token": value}), JSON_VALUES),
    st.integers(0, 5000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(0, 5000).map(lambda depth: '{"ack": ' + '{"a": ' * depth + "1" + "}" * depth + "}"),
    st.text(max_size=200),
)


@given(st.one_of(CLIENT_TEXT, CLIENT_TEXT.map(str.encode), st.binary(max_size=50)))
def test_no_client_frame_raises_out_of_its_check(frame):
    checked = check_client_frame(frame)
    if isinstance(checked, Ack):
        assert max(checked.key) <= MAX_EVENT_ID_PART
    elif not isinstance(checked, Renewal):
        code, reason = checked
        assert code in {4400, 4413, 4415} and reason and len(reason.encode()) <= 123


@given(st.one_of(CLIENT_TEXT.map(str.encode), st.binary(max_size=50)))
def test_no_ack_body_raises_anything_but_a_400(body):
    try:
        key = ack_key(body)
    except Refusal as refusal:
        assert (refusal.status, refusal.error) == (400, "invalid_ack")
        return
    assert max(key) <= MAX_EVENT_ID_PART


SCHEMES = st.sampled_from(["http", "https"])
HOSTS = st.sampled_from(["push.example", "PUSH.example", "app.example", "127.0.0.1", "[::1]"])
PORTS = st.one_of(st.none(), st.sampled_from([80, 443, 8000, 8443]))


def _netloc(host: str, port: int | None) -> str:
    return host if port is None else f"{host}:{port}"


def _origin(scheme: str, host: str, port: int | None) -> tuple[str, str, int]:
    return scheme, host.lower(), DEFAULT_PORTS[scheme] if port is None else port


@given(SCHEMES, HOSTS, PORTS, SCHEMES, HOSTS, PORTS, st.booleans())
def test_an_origin_passes_unlisted_only_when_scheme_host_and_port_are_the_requests(
    scheme, host, port, page_scheme, page_host, page_port, listed
):
    """Behind a proxy that ends TLS an https page and an http request share a host: only
    the scheme tells them apart, and a foreign scheme is a foreign origin."""
    origin = f"{page_scheme}://{_netloc(page_host, page_port)}"
    allowed = (origin,) if listed else ()
    same = _origin(scheme, host, port) == _origin(page_scheme, page_host, page_port)
    assert same_origin(origin, scheme, _netloc(host, port)) == same
    try:
        answer = foreign_origin(origin, scheme, _netloc(host, port), allowed)
    except Refusal as refusal:
        assert (refusal.status, refusal.error) == (403, "origin_not_allowed")
        assert not same and not listed
    else:
        assert answer == (None if same else origin)
        assert same or listed


@pytest.mark.parametrize("fetch_site", ["cross-site", "same-site", "Cross-Site"])
def test_a_cookie_a_foreign_page_attached_without_origin_is_refused(fetch_site):
    with pytest.raises(Refusal) as refused:
        foreign_origin(None, "https", "push.example", (), fetch_site=fetch_site, by_cookie=True)
    assert refused.value.error == "origin_not_allowed"
    assert foreign_origin(None, "https", "push.example", (), fetch_site=fetch_site) is None


@pytest.mark.parametrize("fetch_site", [None, "same-origin", "none"])
def test_a_cookie_of_the_own_origin_or_an_older_client_passes(fetch_site):
    assert (
        foreign_origin(None, "https", "push.example", (), fetch_site=fetch_site, by_cookie=True)
        is None
    )


@given(st.text(min_size=1, max_size=4), st.booleans())
def test_every_message_the_api_takes_fits_in_its_body_limit(unit, ascii_only):
    """A publish of the largest message, of any characters, to the most users, with JSON's
    widest escapes (`\\u0001` for one byte), is within the body limit."""
    width = len(unit.encode("utf-8", "surrogatepass"))
    data = unit * (DEFAULT_MAX_MESSAGE_BYTES // width)
    body = json.dumps({"user_ids": ["u" * 64] * 1000, "data": data}, ensure_ascii=ascii_only)
    assert len(body.encode("utf-8", "surrogatepass")) <= message_body_limit(
        DEFAULT_MAX_MESSAGE_BYTES
    )
