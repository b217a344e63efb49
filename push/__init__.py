"""push: per-user messages from Redis lists to browser tabs over SSE and WebSocket.

This package's top level is what a producer needs (a Celery worker, a cron script): it
imports redis and the standard library only. The service itself is `push.service`."""

from push.publishing import PublishError, disconnect, publish, publish_many

__all__ = ["PublishError", "disconnect", "publish", "publish_many"]
