"""`promptreg export --out F`: a snapshot file of every feature's active version.

Applications start from it (`Registry(..., snapshot=F)`) when the registry is down as
they restart. It reads the database, or a server through its API (`--url`/`--token`), in
the same resolved-version shape either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from registry.cli.backend import Target, backend_options
from registry.cli.output import console, print_json


@backend_options()
def export(
    out: Annotated[Path, typer.Option("--out", help="Snapshot file to write (replaced whole).")],
    *,
    target: Target,
) -> None:
    """Write every live feature's labelled version to a snapshot file for the client library."""
    label = target.label
    from registry.client.snapshot import write_snapshot

    backend = target.backend()
    rows = backend.features(label)
    live = [row for row in rows if row["version"] is not None and not row["retired"]]
    versions = [backend.show(row["name"], label, None) for row in live]
    source = target.url or "database"
    count = write_snapshot(out, versions, label=label, source=source)
    if target.as_json:
        print_json({"out": str(out), "label": label, "features": count})
        return
    console.print(f"exported {count} feature(s) labelled {label} to {out}")


def register(app: typer.Typer) -> None:
    """Add this module's command to the app."""
    app.command()(export)
