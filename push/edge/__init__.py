"""The HTTP edge: every view (`*_view.py`) and what they check before delivery starts.

Views: `sse_view.py` (GET /stream), `ws_view.py` (GET /ws), `api_view.py` (/api),
`ticket_view.py` (POST /ticket), `ack_view.py` (POST /ack), `health_view.py` (/metrics,
/healthz, /readyz), `demo_view.py` (the demo page). Around them: admission, origins,
request bodies, errors, SSE framing, the OpenAPI document, and for GET /ws its client
frames (`ws_client_frames.py`), close codes (`ws_close.py`) and the one module that
reaches into simple-websocket and flask-sock (`websocket.py`)."""
