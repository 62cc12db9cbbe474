"""Usage: ingestion of client-reported model calls, rollups, stats, alarms, metrics.

events.py   one posted event: fields, limits, the reason it is refused
ingest.py   a batch into the database in one transaction, duplicates skipped
rollup.py   sums per (feature, hour, version, model) and per (feature, minute, version)
latency.py  latency histograms: buckets and percentiles (no database)
stats.py    a feature's usage over a window, per day/version/model, and its alarms
metrics.py  Prometheus counters and the active-version gauge (imported on its own:
            the CLI never needs prometheus_client)

Importing this package imports none of them: the rollout guards read `latency` without
the database layer. The names below load their module on first use.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from registry.errors import BadWindow
    from registry.outcomes import ERROR_OUTCOMES
    from registry.usage.events import Invalid, UsageEventIn, parse_event
    from registry.usage.ingest import MAX_BATCH, Ingestor, IngestResult
    from registry.usage.stats import feature_stats, parse_window

_HOMES = {
    "BadWindow": "registry.errors",
    "ERROR_OUTCOMES": "registry.outcomes",
    "Invalid": "registry.usage.events",
    "UsageEventIn": "registry.usage.events",
    "parse_event": "registry.usage.events",
    "MAX_BATCH": "registry.usage.ingest",
    "Ingestor": "registry.usage.ingest",
    "IngestResult": "registry.usage.ingest",
    "feature_stats": "registry.usage.stats",
    "parse_window": "registry.usage.stats",
}
__all__ = [
    "ERROR_OUTCOMES",
    "MAX_BATCH",
    "BadWindow",
    "IngestResult",
    "Ingestor",
    "Invalid",
    "UsageEventIn",
    "feature_stats",
    "parse_event",
    "parse_window",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'registry.usage' has no attribute {name!r}")
    return getattr(import_module(_HOMES[name]), name)
