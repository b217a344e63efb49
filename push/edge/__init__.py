"""The HTTP edge: every view (`*_view.py`) and what they check before delivery starts.

Views: `sse_view.py` (GET /stream), `ws_view.py` (GET /ws), `api_view.py` (/api),
`ticket_view.py` (POST /ticket), `ack_view.py` (POST /ack), `health_view.py` (/metrics,
/healthz, /readyz), `demo_view.py` (the demo page). Around them: admission, origins,
request bodies, errors, SSE framing, the WebSocket reader, the OpenAPI document."""
