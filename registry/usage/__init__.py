"""Usage: ingestion of client-reported model calls, hourly rollups, stats, alarms, metrics.

events.py   one posted event: fields, limits, the reason it is refused
ingest.py   a batch into the database in one transaction, duplicates skipped
rollup.py   sums per (feature, hour, version, model) and latency histograms
stats.py    a feature's usage over a window, per day/version/model, and its alarms
metrics.py  Prometheus counters and the active-version gauge (imported on its own:
            the CLI never needs prometheus_client)
"""

from registry.errors import BadWindow
from registry.usage.events import ERROR_OUTCOMES, Invalid, UsageEventIn, parse_event
from registry.usage.ingest import MAX_BATCH, Ingestor, IngestResult
from registry.usage.stats import feature_stats, parse_window

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
