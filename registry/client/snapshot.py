"""Snapshot files: every feature's active version in one JSON file (`promptreg export`).

A process that starts while the registry is down loads its features from the file and
works; once the registry answers again it revalidates them by `ETag` as usual.

    {"format": "promptreg.snapshot/1", "label": "production", "exported_at": "...",
     "source": "https://prompts.internal", "features": {NAME: RESOLVED_VERSION, ...}}

Each entry is the API's resolved-version JSON (`GET /v1/features/{name}`), which carries
the stored `snapshot` of the version; `check_resolved` verifies that its canonical form
hashes to `content_hash`, so a hand-edited or truncated file is refused, not served.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from registry.definitions.content import digest
from registry.errors import SnapshotError

FORMAT = "promptreg.snapshot/1"


def check_resolved(data: Any, *, where: str) -> dict[str, Any]:
    """A resolved-version dict whose snapshot matches its content hash (SnapshotError if not)."""
    if not isinstance(data, dict):
        raise SnapshotError(f"{where}: a resolved version must be a JSON object")
    missing = [k for k in ("feature", "version", "content_hash", "snapshot") if k not in data]
    if missing:
        hint = " (a server older than the client library?)" if missing == ["snapshot"] else ""
        raise SnapshotError(f"{where}: missing {', '.join(missing)}{hint}")
    snapshot = data["snapshot"]
    if not isinstance(snapshot, dict) or digest(snapshot) != data["content_hash"]:
        raise SnapshotError(
            f"{where}: the snapshot of {data['feature']} v{data['version']} does not match "
            f"its content hash {str(data['content_hash'])[:12]}"
        )
    return data


def write_snapshot(
    path: str | Path, versions: Iterable[Mapping[str, Any]], *, label: str, source: str
) -> int:
    """Write resolved versions to `path` atomically (a reader never sees half a file)."""
    features = {str(v["feature"]): dict(v) for v in versions}
    for name, data in features.items():
        check_resolved(data, where=f"feature {name}")
    document = {
        "format": FORMAT,
        "label": label,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": source,
        "features": dict(sorted(features.items())),
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with tmp.open("x", encoding="utf-8") as out:  # the umask's mode, like any new file
            json.dump(document, out, ensure_ascii=False, separators=(",", ":"))
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return len(features)


def read_snapshot(path: str | Path, *, label: str | None = None) -> dict[str, dict[str, Any]]:
    """Feature name -> resolved version, from a snapshot file (checked; SnapshotError if bad)."""
    where = str(path)
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SnapshotError(
            f"{where}: no such snapshot file (write one: promptreg export)"
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SnapshotError(f"{where}: unreadable snapshot: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise SnapshotError(f"{where}: not a promptreg snapshot (expected format {FORMAT})")
    if label is not None and document.get("label") != label:
        raise SnapshotError(
            f"{where}: snapshot of label {document.get('label')!r}, but this client serves "
            f"label {label!r}"
        )
    features = document.get("features")
    if not isinstance(features, dict):
        raise SnapshotError(f"{where}: `features` must be an object")
    return {
        name: check_resolved(data, where=f"{where}: feature {name}")
        for name, data in features.items()
    }
