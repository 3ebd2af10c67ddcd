"""The Prometheus counters kefu counts where things happen, in the lowest layer so
that storage, routing and connectors count without importing upward;
aggregator/metrics.py renders this registry at /metrics.

Names follow prometheus_client's conventions (a Counter "x" is exposed as "x_total").
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

registry = CollectorRegistry()

parked = Counter("kefu_parked", "Entries parked because they could not be processed (see `kefu parked`)",
                 ["stage"], registry=registry)
