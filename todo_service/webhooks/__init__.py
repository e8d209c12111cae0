"""Webhooks: a user's HTTPS endpoints that receive the user's task events, signed, retried
for a bounded time, never sent to a private address (docs/webhooks.md).

- ``api``: ``/api/webhooks`` (register, list, read, delete, deliveries);
- ``targets``: what a URL may point at (the SSRF checks) and the pinned address;
- ``signing``: secrets and Standard Webhooks signatures;
- ``fanout``: the worker's ``webhooks`` consumer group on the tasks stream, one delivery
  row per matching webhook;
- ``delivery``: the worker's delivery loop (claims due rows with ``SKIP LOCKED``);
- ``keys``: the sealing of secrets at rest, and ``python -m todo_service.webhooks reseal``.
"""
