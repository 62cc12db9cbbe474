"""What a replica serves, cached in process and dropped the moment anything changes.

Resolved versions are kept as pre-encoded JSON with their ETag, compiled templates and
catalogs beside them, and recent render results per version; tokens are kept by hash.
A background thread reads the store's generation counter every `poll_s` seconds (one
primary-key read); when it moved — a label was moved or a token changed through any
replica or the CLI — every cached answer is dropped. A cached resolve is then a dict
lookup; a stale one lives at most one poll interval.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlmodel import Session

from registry import labels
from registry.api.schemas import ResolvedVersion
from registry.definitions.content import FeatureDefinition, VersionContent
from registry.rollouts.arms import CANDIDATE, STABLE
from registry.store import crud
from registry.store.models import Feature, Label, Version
from registry.tokens import Catalog

log = logging.getLogger("promptreg.api")
VERSION_CACHE_SIZE = 4096
_GENERATION = text("SELECT value FROM generation WHERE id = 1")


@dataclass
class Principal:
    """Who is calling: a token's name and role."""

    name: str
    role: str


@dataclass
class Served:
    """One resolved version, ready to answer with; `split` when its label is rolling out."""

    feature: FeatureDefinition
    version: int
    content_hash: str
    etag: str
    body: bytes
    catalog: Catalog
    split: Split | None = None


@dataclass
class Split:
    """A label under a rollout: both arms, and the answer each gets.

    Its ETag names the split (both versions and the percent), not one version, so a cache
    revalidating the label sees every step of the rollout.
    """

    percent: int
    arms: dict[str, Served]  # "stable" / "candidate" -> that version, served plainly
    bodies: dict[str, bytes]  # arm -> the label's answer with its `rollout` block
    etag: str

    def rollout(self, arm: str) -> dict[str, Any]:
        """The `rollout` block of an answer served from `arm`."""
        return {
            "candidate": self.arms[CANDIDATE].version,
            "stable": self.arms[STABLE].version,
            "percent": self.percent,
            "arm": arm,
        }


@dataclass(frozen=True)
class RenderAnswer:
    """A finished render answer: its bytes, its budget verdict, the version's ETag."""

    body: bytes
    allowed: bool
    etag: str


def encode(data: Any) -> bytes:
    """Compact JSON bytes, as every API answer is sent."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


class Serving:
    """The replica's cache of resolved versions and tokens, invalidated by the generation."""

    def __init__(self, engine: Engine, *, poll_s: float = 0.05) -> None:
        self.engine = engine
        self.poll_s = poll_s
        self.generation = -1
        self._lock = threading.Lock()
        self._served: dict[tuple[str, str, int | None], Served] = {}
        self._tokens: dict[str, Principal | None] = {}
        self._renders: dict[tuple[Any, ...], RenderAnswer] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- invalidation ------------------------------------------------------------------
    def start(self) -> None:
        """Read the generation now and keep watching it in the background."""
        self.check()
        self._thread = threading.Thread(target=self._watch, name="promptreg-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _watch(self) -> None:
        conn: Connection | None = None
        while not self._stop.wait(self.poll_s):
            try:
                if conn is None:
                    conn = self.engine.connect()
                value = conn.execute(_GENERATION).scalar_one()
                conn.rollback()  # end the read so the next poll sees new commits
                if value != self.generation:
                    self.clear(value)
            except Exception as exc:  # a database hiccup must not kill the watcher
                log.warning("cannot read the change marker: %s", exc)
                self.clear(-1)
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def check(self) -> int:
        """Read the generation now; drop every cached answer when it moved."""
        with self.engine.connect() as conn:
            value = conn.execute(_GENERATION).scalar_one()
        if value != self.generation:
            self.clear(value)
        return int(value)

    def clear(self, generation: int) -> None:
        """Forget everything cached and remember the generation it is valid for."""
        with self._lock:
            self.generation = generation
            self._served.clear()
            self._tokens.clear()
            self._renders.clear()

    def _keep(self, seen: int, store: dict[Any, Any], key: Any, value: Any) -> None:
        # Only keep what was read while the generation stood still: a value read before a
        # change that the watcher has just processed would otherwise outlive it.
        with self._lock:
            if self.generation == seen and seen >= 0:
                if len(store) >= VERSION_CACHE_SIZE:
                    store.pop(next(iter(store)))
                store[key] = value

    # -- lookups -----------------------------------------------------------------------
    def cached_principal(self, token: str) -> tuple[bool, Principal | None]:
        """(known, principal) from the cache alone: no I/O, for the event loop."""
        if token in self._tokens:
            return True, self._tokens[token]
        return False, None

    def cached(self, name: str, label: str, version: int | None) -> Served | None:
        """A resolved version from the cache alone, or None."""
        return self._served.get((name, label, version))

    def cached_render(self, key: tuple[Any, ...]) -> RenderAnswer | None:
        """A render answer for the same feature and request body, or None."""
        return self._renders.get(key)

    def keep_render(self, seen: int, key: tuple[Any, ...], answer: RenderAnswer) -> None:
        """Remember a render answer read at generation `seen`."""
        self._keep(seen, self._renders, key, answer)

    def principal(self, token: str) -> Principal | None:
        """The token's owner, or None for an unknown or revoked token."""
        # Keyed by the presented token itself: this process already holds it in memory
        # for the request, and the dict lookup saves a sha256 per request.
        if token in self._tokens:
            return self._tokens[token]
        seen = self.generation
        with Session(self.engine) as session:
            row = crud.get_token(session=session, plaintext=token)
            found = Principal(row.name, row.role) if row is not None else None
        self._keep(seen, self._tokens, token, found)
        return found

    def resolve(self, name: str, label: str, version: int | None) -> Served:
        """The served form of a feature's version (raises NotFound / Retired)."""
        key = (name, label, version)
        hit = self._served.get(key)
        if hit is not None:
            return hit
        seen = self.generation
        with Session(self.engine) as session:
            feature, row, label_row = labels.resolve(session, name, label=label, version=version)
            served = _served(feature, row, label, label_row)
            active = (
                crud.active_rollout(session=session, feature=feature, label=label)
                if version is None
                else None
            )
            if active is not None:
                candidate_row = crud.version_by_id(
                    session=session, version_id=active.candidate_version_id
                )
                candidate = _served(feature, candidate_row, label, label_row)
                served.split = _split(served, candidate, active.percent)
        self._keep(seen, self._served, key, served)
        return served


def _served(feature: Feature, row: Version, label: str, label_row: Label | None) -> Served:
    """A version as `label` serves it, parsed and encoded once."""
    content = VersionContent.from_json(row.content)
    resolved = ResolvedVersion.of(feature, row, label, label_row, content)
    return Served(
        feature=content.definition(),
        version=resolved.version,
        content_hash=resolved.content_hash,
        etag=f'"{resolved.content_hash}"',
        body=encode(resolved.model_dump(mode="json")),
        catalog=Catalog.from_snapshot(resolved.snapshot["models"]),
    )


def _split(stable: Served, candidate: Served, percent: int) -> Split:
    arms = {STABLE: stable, CANDIDATE: candidate}
    tag = hashlib.sha256(
        f"{stable.content_hash}:{candidate.content_hash}:{percent}".encode()
    ).hexdigest()
    split = Split(percent, arms, {}, f'"{tag}"')
    for arm, served in arms.items():
        answer = json.loads(served.body)
        answer["rollout"] = split.rollout(arm)
        split.bodies[arm] = encode(answer)
    return split
