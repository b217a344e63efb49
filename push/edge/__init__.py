"""The HTTP edge: every view (`*_view.py`) and what they check before delivery starts.

Views: `sse_view.py` (GET /stream), `ws_view.py` (GET /ws), `api_view.py` (/api),
`ticket_view.py` (POST /ticket), `ack_view.py` (POST /ack), `health_view.py` (/metrics,
/healthz, /readyz), `demo_view.py` (the demo page). Around them: admission, who is asking
(`who.py`), origins, request bodies, errors (one answer for Redis being away), SSE
framing, the OpenAPI document, for GET /ws its client frames (`ws_client_frames.py`),
close codes (`ws_close.py`) and the one module that reaches into simple-websocket and
flask-sock (`websocket.py`), and `parts.py`: the typed settings and parts every view
reads, made once by `create_app`."""
