"""The publish API's OpenAPI 3.1 document, served at /api/openapi.json."""

from __future__ import annotations

from typing import Any

from push.model.keys import USER_ID_PATTERN

MAX_USERS_PER_CALL = 1000

_USER_ID = {"type": "string", "pattern": f"^{USER_ID_PATTERN.pattern}$"}
_ERROR = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


_COMMON_ERRORS = {
    "401": _error("No API key, or a wrong one"),
    "429": _error("Over PUSH_API_RATE calls a second for this key"),
    "503": _error("Redis did not answer"),
}


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "push publish API",
            "version": "1",
            "description": (
                "Queue messages for users' browser tabs. Each call LPUSHes to "
                "user_<id>_messages, exactly as any producer may do directly.\n\n"
                "Sessions end: a stream (GET /stream, GET /ws) lives no longer than the "
                "token it was opened with. At the token's exp plus PUSH_JWT_LEEWAY_S a "
                "WebSocket closes with 4401 'token expired' and an SSE stream gets "
                '`event: expired` (data {"error": "token_expired"}) and ends; the next '
                "connection resumes by id. A WebSocket refreshes in band with a frame "
                '{"token": "<jwt>"}: the same sub moves its deadline to that exp, another '
                "sub closes it with 4403, an invalid token with 4401 and the failed check "
                "as the reason. SSE refreshes by reconnecting with a fresh token. "
                "POST /api/users/{user_id}/disconnect revokes a user."
            ),
        },
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": _ERROR,
                "PublishOne": {
                    "type": "object",
                    "required": ["user_id", "data"],
                    "properties": {"user_id": _USER_ID, "data": {}},
                    "additionalProperties": False,
                },
                "PublishMany": {
                    "type": "object",
                    "required": ["user_ids", "data"],
                    "properties": {
                        "user_ids": {
                            "type": "array",
                            "items": _USER_ID,
                            "minItems": 1,
                            "maxItems": MAX_USERS_PER_CALL,
                        },
                        "data": {},
                    },
                    "additionalProperties": False,
                },
                "Queued": {
                    "type": "object",
                    "required": ["queued", "online"],
                    "properties": {
                        "queued": {"type": "integer", "minimum": 0},
                        "online": {
                            "type": "object",
                            "additionalProperties": {"type": "integer", "minimum": 0},
                        },
                    },
                },
                "Mark": {
                    "type": ["object", "null"],
                    "required": ["id", "at"],
                    "properties": {
                        "id": {"type": "string"},
                        "at": {"type": "string", "format": "date-time"},
                    },
                },
                "Receipts": {
                    "type": "object",
                    "required": ["waiting", "delivered", "acknowledged", "unacknowledged"],
                    "properties": {
                        "waiting": {"type": "integer", "minimum": 0},
                        "delivered": {"$ref": "#/components/schemas/Mark"},
                        "acknowledged": {"$ref": "#/components/schemas/Mark"},
                        "unacknowledged": {"type": "integer", "minimum": 0},
                    },
                },
                "Presence": {
                    "type": "object",
                    "required": ["online", "connections", "last_seen"],
                    "properties": {
                        "online": {"type": "boolean"},
                        "connections": {"type": "integer", "minimum": 0},
                        "last_seen": {"type": ["string", "null"], "format": "date-time"},
                    },
                },
            },
        },
        "security": [{"apiKey": []}],
        "paths": {
            "/api/publish": {
                "post": {
                    "summary": "Queue one message for one user or for many",
                    "description": (
                        "`data` is delivered verbatim if it is a string, else as compact "
                        "JSON. With an Idempotency-Key, a repeat within 24 h with the same "
                        "API key queues nothing and answers what the first call answered, "
                        "unless the key's record was forgotten: past "
                        "PUSH_IDEMPOTENCY_MAX_BYTES of records per API key the oldest go "
                        "(push_idempotency_evicted_total), and a retry of one queues again. "
                        "Each mailbox keeps its newest PUSH_MAILBOX_MAX messages."
                    ),
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": "#/components/schemas/PublishOne"},
                                        {"$ref": "#/components/schemas/PublishMany"},
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "202": {
                            "description": "Queued; `online` counts each user's connections",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Queued"}
                                }
                            },
                        },
                        "400": _error("Bad JSON, a bad user id or a bad Idempotency-Key"),
                        "409": _error("A call with this Idempotency-Key is still running"),
                        "408": _error("The body took longer than PUSH_BODY_TIMEOUT_S"),
                        "413": _error(
                            "The message is larger than PUSH_MAX_MESSAGE_BYTES (too_large), or "
                            "the body larger than the API's bound (body_too_large)"
                        ),
                        "415": _error("The body is not application/json"),
                        "422": _error("The body does not fit the schema, or the key was reused"),
                        **_COMMON_ERRORS,
                        "429": _error(
                            "Over PUSH_API_RATE calls a second for this key (see Retry-After)"
                        ),
                    },
                }
            },
            "/api/users/{user_id}/receipts": {
                "get": {
                    "summary": "How far the user's messages got",
                    "description": (
                        "waiting: still in the mailbox; delivered: the newest message written "
                        "to a connection; acknowledged: the newest a client showed; "
                        "unacknowledged: messages out of the mailbox and not acknowledged."
                    ),
                    "parameters": [
                        {"name": "user_id", "in": "path", "required": True, "schema": _USER_ID}
                    ],
                    "responses": {
                        "200": {
                            "description": "The user's receipts",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Receipts"}
                                }
                            },
                        },
                        "400": _error("Not a user id"),
                        "404": _error("No such path (a user id of dots is a path segment)"),
                        **_COMMON_ERRORS,
                    },
                }
            },
            "/api/users/{user_id}/presence": {
                "get": {
                    "summary": "Is the user online, on how many connections, seen when",
                    "parameters": [
                        {"name": "user_id", "in": "path", "required": True, "schema": _USER_ID}
                    ],
                    "responses": {
                        "200": {
                            "description": "The user's presence",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Presence"}
                                }
                            },
                        },
                        "400": _error("Not a user id"),
                        "404": _error("No such path (a user id of dots is a path segment)"),
                        **_COMMON_ERRORS,
                    },
                }
            },
            "/api/users/{user_id}/disconnect": {
                "post": {
                    "summary": "Close every open connection of the user and revoke its tokens",
                    "description": (
                        "Every open connection of the user, on every worker and host, closes "
                        "within a second (WebSocket 4403 'revoked', SSE `event: revoked`), and "
                        "tokens issued before now (their iat; a token without one counts as "
                        "before) are refused with 401 token_revoked for PUSH_REVOCATION_TTL_S."
                    ),
                    "parameters": [
                        {"name": "user_id", "in": "path", "required": True, "schema": _USER_ID}
                    ],
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "reason": {
                                            "type": "string",
                                            "maxLength": 200,
                                            "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",
                                            "description": "Told to the user's clients",
                                        }
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "How many connections were open",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["disconnected"],
                                        "properties": {
                                            "disconnected": {"type": "integer", "minimum": 0}
                                        },
                                    }
                                }
                            },
                        },
                        "400": _error("Not a user id"),
                        "404": _error("No such path (a user id of dots is a path segment)"),
                        "422": _error('The body is not {} or {"reason": "..."}'),
                        **_COMMON_ERRORS,
                    },
                }
            },
        },
    }
