"""The in-process cache of resolved versions: fetch once, revalidate by ETag, outlive outages.

The first use of a feature fetches it (blocking, with a short timeout of its own). After
that the request path never waits on the registry: an entry older than `refresh_s` is
served as it is while one background thread revalidates it with `If-None-Match` (304:
nothing to do; 200: a new version, compiled off the request path). When the registry is
down or slow the last good copy keeps being served; the failure is logged once per
outage and counted (`registry_errors`, `served_stale`). Entries can also be loaded from a
snapshot file, so a process restarting during an outage starts with everything it needs.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.client.snapshot import check_resolved, read_snapshot, write_snapshot
from registry.definitions.content import VersionContent
from registry.definitions.policy import Policy
from registry.errors import (
    ClientError,
    NotFound,
    PromptregError,
    RegistryUnavailable,
    SnapshotError,
    from_status,
)
from registry.render import CompiledPrompt, Message
from registry.rollouts import arms
from registry.tokens import Catalog, ModelInfo

if TYPE_CHECKING:
    import httpx

    from registry.definitions.content import FeatureDefinition

log = logging.getLogger("promptreg.client")
COUNT_CACHE_SIZE = 256


class CachedVersion:
    """One resolved version, ready to run: compiled template, pinned catalog, token counts."""

    def __init__(self, data: dict[str, Any], *, checked_at: float) -> None:
        self.data = data
        self.name: str = data["feature"]
        self.version: int = data["version"]
        self.content_hash: str = data["content_hash"]
        self.etag = f'"{self.content_hash}"'
        try:
            content = VersionContent.model_validate(data["snapshot"])
        except ValueError as exc:  # pydantic's ValidationError names every bad field
            raise SnapshotError(f"feature {self.name}: unusable snapshot: {exc}") from None
        self.feature = content.definition()
        self.policy: Policy = self.feature.policy
        self.compiled: CompiledPrompt = self.feature.compiled()
        self.catalog = Catalog.from_snapshot(data["snapshot"]["models"])
        self.models: dict[str, ModelInfo] = {
            ref.model: self.catalog.require(ref.model) for ref in self.policy.models
        }
        self.checked_at = checked_at
        self.failing = False  # the last revalidation failed: this copy may be stale
        self._counts: dict[tuple[Any, ...], int] = {}
        # While the label rolls a new version out: its percent and both arms' versions.
        self.split: tuple[int, dict[str, CachedVersion]] | None = None

    def pick(self, key: str | None) -> CachedVersion:
        """The version a request with `key` gets: this one, or an arm of the rollout (decided
        here, from the cached split, with the server's hash: no request is made)."""
        if self.split is None:
            return self
        percent, arms_by_name = self.split
        return arms_by_name[arms.choose(self.name, key, percent)]

    @classmethod
    def from_feature(cls, feature: FeatureDefinition, *, version: int = 0) -> CachedVersion:
        """A feature loaded from files (a working tree, a git ref), ready to run without a
        server: `promptreg eval` runs cases through it. `version` 0: not a synced version."""
        data = {
            "feature": feature.name,
            "version": version,
            "content_hash": feature.content_hash,
            "snapshot": feature.content.as_dict(),
        }
        return cls(data, checked_at=time.monotonic())

    def count(self, model: str, messages: Sequence[Message]) -> int:
        """Input tokens of `messages` on `model`; the same text is counted once."""
        key = (model, *[(m.role, m.content, m.name) for m in messages])
        hit = self._counts.get(key)
        if hit is None:
            if len(self._counts) >= COUNT_CACHE_SIZE:
                self._counts.clear()
            hit = self._counts[key] = self.catalog.count(model, [m.as_dict() for m in messages])
        return hit

    def count_text(self, model: str, text: str) -> int:
        """Tokens of an answer's text on `model` (a message's count less an empty one's)."""
        reply, empty = Message("assistant", text), Message("assistant", "")
        return max(self.count(model, [reply]) - self.count(model, [empty]), 0)


class FeatureCache:
    """Resolved versions by feature name, for one registry URL, token and label."""

    def __init__(
        self,
        url: str | None,
        token: str | None,
        *,
        label: str = "production",
        refresh_s: float = 5.0,
        timeout_s: float = 2.0,
        snapshot: str | Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url.rstrip("/") if url else None
        self.label = label
        self.refresh_s = refresh_s
        self.clock = clock
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if self.url:
            import httpx  # not before a registry URL needs it: snapshot-only clients skip it
        self.http = (
            httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)
            if self.url
            else None
        )
        self._entries: dict[str, CachedVersion] = {}
        self._loading: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._pending: set[str] = set()
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._closed = False
        self.counts = {"fetched": 0, "not_modified": 0, "registry_errors": 0, "served_stale": 0}
        # A snapshot's features, checked against their hashes now, built when first used:
        # a service that runs one feature does not compile the templates of all the others.
        self._stored = read_snapshot(snapshot, label=label) if snapshot is not None else {}

    # -- the request path ----------------------------------------------------------------
    def get_nowait(self, name: str) -> CachedVersion | None:
        """The cached entry (revalidated in the background when due), or None if never fetched."""
        entry = self._entries.get(name) or self._from_snapshot(name)
        if entry is None:
            return None
        if self.http is not None and self.clock() - entry.checked_at >= self.refresh_s:
            self._schedule(name)
        if entry.failing:
            self._count("served_stale")
        return entry

    def _from_snapshot(self, name: str) -> CachedVersion | None:
        data = self._stored.get(name)
        if data is None:
            return None
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                entry = self._entries[name] = CachedVersion(data, checked_at=float("-inf"))
            self._stored.pop(name, None)
        return entry

    def put(self, entry: CachedVersion) -> None:
        """Serve `entry` under its name (a version built locally, e.g. from files)."""
        with self._lock:
            self._entries[entry.name] = entry

    def get(self, name: str) -> CachedVersion:
        """The entry, fetched now (blocking) if this process never had it."""
        return self.get_nowait(name) or self.load(name)

    def load(self, name: str) -> CachedVersion:
        """Fetch a feature not cached yet (once, however many callers ask at the same time)."""
        with self._lock:
            gate = self._loading.setdefault(name, threading.Lock())
        with gate:
            entry = self._entries.get(name) or self._from_snapshot(name)
            if entry is not None:
                return entry
            if self.http is None:
                raise NotFound(f"feature {name!r} is not in the snapshot, and no registry URL")
            return self._fetch(name, None)

    def refresh(self, name: str) -> CachedVersion | None:
        """Revalidate one entry now; on failure keep the old copy, log once, count it."""
        entry = self._entries.get(name) or self._from_snapshot(name)
        try:
            return self._fetch(name, entry)
        except PromptregError as exc:
            self._count("registry_errors")
            if entry is None:
                return None
            entry.checked_at = self.clock()
            if not entry.failing:
                log.warning(
                    "registry unavailable for %s (%s); serving the cached version %s",
                    name,
                    exc,
                    entry.version,
                )
            entry.failing = True
            return entry

    # -- fetching ------------------------------------------------------------------------
    def _get(self, name: str, params: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        """GET a feature's resolved version (RegistryUnavailable when unreachable)."""
        import httpx

        assert self.http is not None
        try:
            return self.http.get(f"/v1/features/{name}", params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise RegistryUnavailable(f"cannot reach {self.url}: {exc!r}") from None

    def _resolved(self, response: httpx.Response, name: str, where: str) -> dict[str, Any]:
        """A 200 answer's resolved version, checked against its hash; any other answer
        raised as the error it means."""
        status = response.status_code
        if status == 200:
            try:
                return check_resolved(response.json(), where=where)
            except ValueError:
                raise RegistryUnavailable(f"{self.url}: {name}: not JSON") from None
        detail = _detail(response)
        if status in (401, 403):
            raise ClientError(f"{self.url}: HTTP {status}: {detail} (check the token)")
        if status in (404, 410):
            raise from_status(status, detail) or RegistryUnavailable(detail)
        raise RegistryUnavailable(f"{self.url}: HTTP {status}: {detail}")

    def _fetch(self, name: str, entry: CachedVersion | None) -> CachedVersion:
        headers = {"If-None-Match": entry.etag} if entry is not None else {}
        response = self._get(name, {"label": self.label}, headers)
        if response.status_code == 304 and entry is not None:
            self._count("not_modified")
            return self._fresh(entry)
        data = self._resolved(response, name, f"{self.url} {name}")
        unchanged = entry is not None and data["content_hash"] == entry.content_hash
        if data.get("rollout"):
            fresh = self._split(name, data, response.headers.get("etag"))
        elif entry is not None and entry.split is None and unchanged:
            return self._fresh(entry)
        else:
            fresh = CachedVersion(data, checked_at=self.clock())
        self._count("fetched")
        with self._lock:
            self._entries[name] = fresh
        if entry is not None:
            log.info("%s: now serving version %s (was %s)", name, fresh.version, entry.version)
        return fresh

    def _split(self, name: str, data: dict[str, Any], etag: str | None) -> CachedVersion:
        """The label's entry during a rollout: the arm the server sent, the other fetched by
        version number (immutable), and the split the client then decides from."""
        rollout = data["rollout"]
        served = CachedVersion(data, checked_at=self.clock())
        other_arm = arms.STABLE if rollout["arm"] == arms.CANDIDATE else arms.CANDIDATE
        other = self._version(name, int(rollout[other_arm]))
        by_arm = {rollout["arm"]: served, other_arm: other}
        entry = by_arm[arms.STABLE]
        entry.split = (int(rollout["percent"]), by_arm)
        entry.etag = etag or entry.etag
        entry.checked_at = self.clock()
        return entry

    def _version(self, name: str, number: int) -> CachedVersion:
        response = self._get(name, {"version": number}, {})
        data = self._resolved(response, name, f"{self.url} {name} v{number}")
        return CachedVersion(data, checked_at=self.clock())

    def _fresh(self, entry: CachedVersion) -> CachedVersion:
        entry.checked_at = self.clock()
        if entry.failing:
            log.info("registry reachable again; %s is current", entry.name)
        entry.failing = False
        return entry

    # -- background revalidation ---------------------------------------------------------
    def _schedule(self, name: str) -> None:
        with self._lock:
            if name in self._pending or self._closed:
                return
            self._pending.add(name)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(
                    target=self._revalidate, name="promptreg-refresh", daemon=True
                )
                self._worker.start()
        self._queue.put(name)

    def _revalidate(self) -> None:
        while (name := self._queue.get()) is not None:
            try:
                self.refresh(name)
            except Exception:  # a bad answer must not kill the thread
                log.exception("revalidating %s failed", name)
            finally:
                with self._lock:
                    self._pending.discard(name)

    # -- the rest ------------------------------------------------------------------------
    def _count(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1

    def names(self) -> list[str]:
        """The features cached now."""
        return sorted({*self._entries, *self._stored})

    def save_snapshot(self, path: str | Path) -> int:
        """Write every cached version to a snapshot file; how many were written."""
        versions = [e.data for e in list(self._entries.values())] + list(self._stored.values())
        return write_snapshot(path, versions, label=self.label, source=self.url or "snapshot")

    def close(self) -> None:
        """Stop the revalidation thread and close the HTTP connection pool."""
        with self._lock:
            self._closed = True
        worker = self._worker
        if worker is not None and worker.is_alive():
            self._queue.put(None)
            worker.join(timeout=2)
        if self.http is not None:
            self.http.close()


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return str(detail) if detail else (response.text.strip()[:200] or response.reason_phrase)
