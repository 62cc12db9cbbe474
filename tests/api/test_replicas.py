"""Two real `promptreg serve` processes on one database: a label move made through one is
served by the other within one second (SPEC §4), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from support.server import replicas

from .harness import Registry

REPLY = "/v1/features/support.reply"
LIMIT_S = 1.0


def etag_of(client: httpx.Client, base: str) -> str:
    response = client.get(f"{base}{REPLY}")
    assert response.status_code == 200, response.text
    return response.headers["etag"]


def propagation(client: httpx.Client, base: str, expected: str) -> float:
    """Seconds until `base` serves the ETag `expected` (polled every 5 ms, up to 3 s)."""
    start = time.monotonic()
    while True:
        elapsed = time.monotonic() - start
        if etag_of(client, base) == expected:
            return elapsed
        assert elapsed < 3.0, f"{base} still serves the old version after {elapsed:.2f} s"
        time.sleep(0.005)


def test_a_label_move_through_one_replica_is_served_by_the_other(
    registry: Registry, tmp_path: Path, record_property
):
    # Both replicas start (and load the token counter on a first resolve) side by side.
    with (
        replicas(registry.db_url, tmp_path) as (a, b),
        httpx.Client(headers=registry.admin, timeout=30) as http,
    ):
        with ThreadPoolExecutor(2) as pool:
            warm = list(pool.map(lambda server: etag_of(http, server.url), (a, b)))
        hashes = {v: http.get(f"{a.url}{REPLY}?version={v}").headers["etag"] for v in (2, 3)}
        assert warm == [hashes[3], hashes[3]]
        assert etag_of(http, b.url) == hashes[3]  # B serves version 3 (from its cache)

        moved = http.post(f"{a.url}{REPLY}/rollback", json={"reason": "replica test"})
        assert moved.status_code == 200, moved.text
        assert moved.json()["to_version"] == 2
        back = propagation(http, b.url, hashes[2])
        own_back = propagation(http, a.url, hashes[2])  # A now caches version 2

        moved = http.post(f"{b.url}{REPLY}/promote", json={})
        assert moved.status_code == 200, moved.text
        forward = propagation(http, a.url, hashes[3])
        own_forward = propagation(http, b.url, hashes[3])

        print(
            f"\nreplica propagation on {registry.engine.dialect.name}: "
            f"rollback via A seen by B in {back * 1000:.0f} ms (A itself {own_back * 1000:.0f}"
            f" ms); promote via B seen by A in {forward * 1000:.0f} ms (B itself "
            f"{own_forward * 1000:.0f} ms)"
        )
        record_property("propagation_ms", round(max(back, forward) * 1000))
        assert max(back, own_back, forward, own_forward) < LIMIT_S
        body = http.get(f"{b.url}{REPLY}").json()
        assert (body["version"], body["pinned"]) == (3, False)
