"""Prometheus metrics: usage counters, render budget rejections, the active versions.

Several server processes (`promptreg serve --workers N`) share one port, so a scrape
reaches one of them at random: each process must report the totals of all. We use
prometheus_client's multiprocess mode for that. When `PROMETHEUS_MULTIPROC_DIR` is set
before the workers start (`prepare_processes` does it for `serve`), every process writes
its counters to memory-mapped files in that folder and `/metrics` sums them all. Several
replicas (hosts) are separate scrape targets, summed in PromQL as usual, so nothing here
is counted twice. Without the variable (one process) the counters live in memory.

The active version per feature and label is not a counter but a fact of the database,
so it is read from the database at scrape time: every process and replica agrees on it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    values,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlmodel import Session

from registry.store import usage_crud

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS_S = (0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, float("inf"))
# The render route's answer for a request over budget (compact JSON, keys in this order;
# quotes inside variable values are escaped, so no value can imitate it).

# `*_created` series double the output and no promptreg alert uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]
REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter(
    "promptreg_requests",
    "Model requests reported by usage events, by feature, model and outcome.",
    ["feature", "model", "outcome"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "promptreg_request_latency_seconds",
    "Latency of model requests reported by usage events (budget rejections excluded).",
    ["feature"],
    buckets=LATENCY_BUCKETS_S,
    registry=REGISTRY,
)
TOKENS = Counter(
    "promptreg_tokens",
    "Tokens reported by usage events, by feature, model and direction (input, output).",
    ["feature", "model", "direction"],
    registry=REGISTRY,
)
COST = Counter(
    "promptreg_cost_usd",
    "Cost in USD of reported usage (reported, or at the version's catalog prices).",
    ["feature", "model"],
    registry=REGISTRY,
)
BUDGET_REJECTIONS = Counter(
    "promptreg_budget_rejections",
    "Renders answered with budget.allowed=false (cached answers included).",
    ["feature"],
    registry=REGISTRY,
)
USAGE_EVENTS = Counter(
    "promptreg_usage_events",
    "Usage events posted, by result (accepted, duplicate, rejected).",
    ["result"],
    registry=REGISTRY,
)


def multiprocess() -> bool:
    """True when counters are shared between processes through PROMETHEUS_MULTIPROC_DIR."""
    # prometheus_client chose where values live when it was first imported (from the
    # variable then); follow that choice, not the variable now.
    return values.ValueClass is not values.MutexValue


def prepare_processes(workers: int) -> str | None:
    """Before starting `workers` server processes: a fresh multiprocess folder, or None.

    Call in the parent, before the workers import anything. An operator's own
    PROMETHEUS_MULTIPROC_DIR is emptied (stale files would count again); otherwise a new
    temporary folder is made when there is more than one worker.
    """
    folder = os.environ.get(MULTIPROC_ENV)
    if folder:
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
        return folder
    if workers <= 1:
        return None
    folder = tempfile.mkdtemp(prefix="promptreg-metrics-")
    os.environ[MULTIPROC_ENV] = folder
    return folder


def cleanup_processes(folder: str | None) -> None:
    """Remove a folder made by `prepare_processes` (after the workers stopped)."""
    if folder and Path(folder).name.startswith("promptreg-metrics-"):
        shutil.rmtree(folder, ignore_errors=True)


def record_usage(stored: Iterable[tuple[str, dict[str, Any]]]) -> None:
    """Count stored usage events (call after their transaction committed)."""
    # Summed per label set first: one counter update per (feature, model, outcome), not per event.
    requests: dict[tuple[str, str, str], int] = {}
    tokens: dict[tuple[str, str], list[float]] = {}
    for feature, row in stored:
        key = (feature, row["model"])
        requests[(*key, row["outcome"])] = requests.get((*key, row["outcome"]), 0) + 1
        sums = tokens.setdefault(key, [0, 0, 0.0])
        sums[0] += row["input_tokens"]
        sums[1] += row["output_tokens"]
        sums[2] += row["cost_usd"] or 0.0
        if row["outcome"] != "rejected":
            LATENCY.labels(feature).observe(row["latency_ms"] / 1000)
    for labels, count in requests.items():
        REQUESTS.labels(*labels).inc(count)
    for (feature, model), (tokens_in, tokens_out, cost) in tokens.items():
        TOKENS.labels(feature, model, "input").inc(tokens_in)
        TOKENS.labels(feature, model, "output").inc(tokens_out)
        if cost:
            COST.labels(feature, model).inc(cost)


def record_batch(accepted: int, duplicates: int, rejected: int) -> None:
    """Count what happened to the events of one posted batch."""
    for result, count in (
        ("accepted", accepted),
        ("duplicate", duplicates),
        ("rejected", rejected),
    ):
        if count:
            USAGE_EVENTS.labels(result).inc(count)


def count_budget_rejection(feature: str) -> None:
    """Count a render answer that refused the request for its budget."""
    BUDGET_REJECTIONS.labels(feature).inc()


class ActiveVersions(Collector):
    """`promptreg_active_version{feature, label}`, read from the database at each scrape."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "promptreg_active_version",
            "The version each label points each (not retired) feature at.",
            labels=["feature", "label"],
        )
        with Session(self.engine) as session:
            for feature, label, version in usage_crud.active_versions(session=session):
                gauge.add_metric([feature, label], version)
        yield gauge


class Rollouts(Collector):
    """`promptreg_rollout_percent{feature}` and `promptreg_rollout_aborts_total{feature,guard}`
    for one label, read from the database at each scrape (like the active versions)."""

    def __init__(self, engine: Engine, label: str) -> None:
        self.engine = engine
        self.label = label

    def collect(self) -> Iterator[Metric]:
        percent = GaugeMetricFamily(
            "promptreg_rollout_percent",
            "Percent of requests on the candidate of each running or paused rollout.",
            labels=["feature"],
        )
        aborts = CounterMetricFamily(
            "promptreg_rollout_aborts",
            "Rollouts taken back, by the guard (or person) that aborted them.",
            labels=["feature", "guard"],
        )
        with Session(self.engine) as session:
            for feature, value in usage_crud.rollout_percents(session=session, label=self.label):
                percent.add_metric([feature], value)
            for (feature, guard), count in usage_crud.rollout_aborts(
                session=session, label=self.label
            ).items():
                aborts.add_metric([feature, guard], count)
        yield percent
        yield aborts


def exposition(engine: Engine, label: str) -> bytes:
    """The Prometheus text of every metric: this process's, or all processes' in multiprocess."""
    if multiprocess():
        counters = CollectorRegistry()
        MultiProcessCollector(counters)  # type: ignore[no-untyped-call]
        body = generate_latest(counters)
    else:
        body = generate_latest(REGISTRY)
    database = CollectorRegistry()
    database.register(ActiveVersions(engine))
    database.register(Rollouts(engine, label))
    return body + generate_latest(database)
