"""The Prometheus metrics kefu counts, in the lowest layer so that storage,
routing and connectors count where things happen without importing upward;
aggregator/metrics.py adds the gauges read at scrape time and renders /metrics.

Counters and histograms count what this process did: with several processes
on one Redis, Prometheus sums them.  Names follow prometheus_client's
conventions (a Counter "x" is exposed as "x_total").
"""
from __future__ import annotations

from prometheus_client import (GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR, CollectorRegistry,
                               Counter, Histogram, disable_created_metrics)

disable_created_metrics()  # no *_created series: dashboards use rate() of the totals

registry = CollectorRegistry(auto_describe=True)
for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    registry.register(collector)

inbound_messages = Counter("kefu_inbound_messages", "Customer messages accepted into the inbound stream",
                           ["channel"], registry=registry)
inbound_duplicates = Counter("kefu_inbound_duplicates", "Repeated platform messages accepted and ignored",
                             ["channel"], registry=registry)
outbound_delivered = Counter("kefu_outbound_delivered", "Replies and automatic messages handed to their platform",
                             ["channel"], registry=registry)
outbound_failed = Counter("kefu_outbound_failed", "Delivery attempts that failed (retried later, or parked)",
                          ["channel"], registry=registry)
router_processed = Counter("kefu_router_processed", "Customer messages the router processed into their conversation",
                           registry=registry)
rate_limited = Counter("kefu_rate_limited", "Requests refused by an abuse limit, by the limit's config key",
                       ["kind"], registry=registry)
logins_refused = Counter("kefu_logins_refused", "Agent logins refused: wrong_password or locked_out",
                         ["reason"], registry=registry)
sla_breaches = Counter("kefu_sla_breaches", "SLA targets missed, by priority and target (first_response, resolution)",
                       ["priority", "target"], registry=registry)
config_reload_failures = Counter("kefu_config_reload_failures", "SIGHUP reloads refused (the old config stayed)",
                                 registry=registry)
http_requests = Counter("kefu_http_requests", "HTTP requests by route pattern, method and status",
                        ["route", "method", "status"], registry=registry)
parked = Counter("kefu_parked", "Entries parked because they could not be processed (see `kefu parked`)",
                 ["stage"], registry=registry)

first_response = Histogram(
    "kefu_first_response_seconds",
    "From a conversation's first customer message to the first reply of a human agent, by role",
    ["role"], registry=registry,
    buckets=(10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800, 86400))
inbound_to_agent = Histogram(
    "kefu_inbound_to_agent_seconds",
    "From a customer message's ts (kefu accepted it) to the router pushing it to agents' consoles",
    registry=registry,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
