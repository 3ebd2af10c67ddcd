"""Prometheus metrics served at /metrics (one registry per process)."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, generate_latest

from storage.metrics import registry

inbound = Counter("kefu_inbound_messages", "Customer messages accepted into the stream",
                  ["channel"], registry=registry)
inbound_duplicates = Counter("kefu_inbound_duplicates", "Repeated platform messages ignored",
                             ["channel"], registry=registry)
routed = Gauge("kefu_router_processed", "Inbound events processed by this router", registry=registry)
delivered = Gauge("kefu_outbound_delivered", "Replies handed to their platform", ["channel"], registry=registry)
delivery_failures = Gauge("kefu_outbound_failures", "Failed delivery attempts", ["channel"], registry=registry)
connector_up = Gauge("kefu_connector_up", "1 while the connector runs", ["channel", "kind"], registry=registry)
stream_length = Gauge("kefu_stream_length", "Entries in a stream", ["stream"], registry=registry)
queue_length = Gauge("kefu_queue_length", "Conversations waiting for an agent", registry=registry)
open_conversations = Gauge("kefu_open_conversations", "Open conversations", registry=registry)
agents_online = Gauge("kefu_agents_online", "Agents online", registry=registry)


def render() -> bytes:
    return generate_latest(registry)
