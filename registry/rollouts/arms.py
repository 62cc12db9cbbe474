"""Which arm of a rollout a request gets: the same answer on the server and in the client.

With a key (a user id, a session), the arm is a stable hash of (feature, key): the same
user stays on one arm, and as the percent grows, users only ever move from stable to
candidate. Without a key, the arm is drawn at random. Imported by the client library:
nothing here touches the database.
"""

from __future__ import annotations

import hashlib
import random

CANDIDATE = "candidate"
STABLE = "stable"


def position(feature: str, key: str) -> float:
    """Where `key` falls for `feature`, uniformly in [0, 100)."""
    digest = hashlib.sha256(f"{feature}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def choose(feature: str, key: str | None, percent: float) -> str:
    """`candidate` for `percent` % of keys (or of requests, without a key), else `stable`."""
    where = random.random() * 100 if key is None else position(feature, key)
    return CANDIDATE if where < percent else STABLE
