"""The channel toolkit: what every connector needs and none should write again.

- `lease`: one owner of a platform connection across kefu processes.
- `pacing`: a send pacer shared through Redis (per chat, per bot, per group),
  honouring a platform's retry_after.
- `text`: splitting a long text the way a platform measures it.
- `parts`: resuming a partly sent long reply without repeating a part.
- `files`: platform files fetched and kept in kefu's one file store.
- `refs`: platform message ids ↔ kefu ids.
- `delivery`: `DeliveryError` and the retry policy the supervisor applies to it.

A connector gets these through its `ConnectorContext` (connectors/context.py).
"""
