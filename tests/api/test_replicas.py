"""Two real `promptreg serve` processes on one database: a label move made through one is
served by the other (SPEC §4: within one second), on SQLite and on PostgreSQL.

The test waits up to `SERVED_WITHIN_S` for each replica; how fast a move really
propagates is measured by `bench/api.py` (target: one second), not asserted here.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from support.server import replicas
from support.wait import wait_for

from .harness import SERVED_WITHIN_S, Registry

REPLY = "/v1/features/support.reply"


def etag_of(client: httpx.Client, base: str) -> str:
    response = client.get(f"{base}{REPLY}")
    assert response.status_code == 200, response.text
    return response.headers["etag"]


def serves(client: httpx.Client, base: str, expected: str, what: str) -> None:
    """Wait until `base` serves the ETag `expected`."""
    wait_for(lambda: etag_of(client, base) == expected, SERVED_WITHIN_S, what)


@pytest.mark.slow
def test_a_label_move_through_one_replica_is_served_by_the_other(
    registry: Registry, tmp_path: Path
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
        serves(http, b.url, hashes[2], "B to serve the rollback made through A")
        serves(http, a.url, hashes[2], "A to serve its own rollback")  # A cached version 3

        moved = http.post(f"{b.url}{REPLY}/promote", json={})
        assert moved.status_code == 200, moved.text
        serves(http, a.url, hashes[3], "A to serve the promote made through B")
        serves(http, b.url, hashes[3], "B to serve its own promote")

        body = http.get(f"{b.url}{REPLY}").json()
        assert (body["version"], body["pinned"]) == (3, False)
