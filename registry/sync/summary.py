"""What one sync did: the `--json` summary, the API's answer, and the CLI's report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Progress = Callable[[int, int, str], None]  # (done, total, commit sha)


@dataclass
class SyncSummary:
    """What one sync did."""

    repo: str
    ref: str
    label: str
    from_commit: str | None
    to_commit: str
    commits: int = 0
    versions_created: int = 0
    labels_moved: int = 0
    retired: list[str] = field(default_factory=list)
    unretired: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    rewritten: bool = False
    pinned_skipped: list[str] = field(default_factory=list)
    rollouts_started: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when this run recorded no error."""
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        """The `--json` summary."""
        return {
            "repo": self.repo,
            "ref": self.ref,
            "label": self.label,
            "from_commit": self.from_commit,
            "to_commit": self.to_commit,
            "commits": self.commits,
            "versions_created": self.versions_created,
            "labels_moved": self.labels_moved,
            "retired": self.retired,
            "unretired": self.unretired,
            "pinned_skipped": self.pinned_skipped,
            "rollouts_started": self.rollouts_started,
            "rewritten_history": self.rewritten,
            "errors": self.errors,
            "ok": self.ok,
        }
