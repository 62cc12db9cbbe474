"""The demo registry's cases (evals/ at the repository root) validate and pass against the
rule-based provider, the way the README shows them."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import cli

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_cases_validate():
    result = cli("validate", ROOT)
    assert result.exit_code == 0, result.stdout
    assert "6 feature(s) valid, " in result.stdout and " eval case(s) checked, ok" in result.stdout


def test_every_demo_feature_has_cases_that_pass(provider):
    result = cli("eval", "--repo", ROOT, "--provider", provider.base_url, "--format", "json")
    data = json.loads(result.stdout)
    failing = {f["feature"]: f["reasons"] for f in data["features"] if not f["ok"]}
    assert failing == {}, result.stdout
    assert result.exit_code == 0
    assert len(data["features"]) == 6
    judged = [c for f in data["features"] for c in f["cases"] if c["judge_cost_usd"]]
    assert judged, "the demo shows the judge"
