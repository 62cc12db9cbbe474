"""JSON shapes that the API and the CLI's `--json` answer alike (the CLI prints the API's)."""

# GET /v1/features/{name} and `promptreg show --json`: a resolved version has at least these
RESOLVED_VERSION_KEYS = frozenset(
    {"feature", "version", "label", "content_hash", "commit", "pinned", "prompt", "policy"}
)
