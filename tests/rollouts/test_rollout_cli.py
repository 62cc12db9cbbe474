"""`promptreg rollout status|start|pause|resume|abort|complete` against the database and
against a server print the same thing; `rollout simulate` says where a rollout would abort."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Engine
from support.cli import cli
from support.git import GitRepo

from .scenario import FEATURE, Rollouts, policy, prompt


def test_rollout_commands_print_the_same_through_the_database_and_a_server(
    reg: Rollouts, cli_engines: list[Engine]
) -> None:
    reg.release("v1")
    reg.release("v1", interval="2s")  # the rollout section alone: v2 at once
    with reg.server() as server:
        modes = {
            "database": ("--database-url", reg.db_url),
            "remote": ("--url", server.url, "--token", reg.admin_token),
        }

        def everywhere(*args: str) -> tuple[int, str, str]:
            """Run a read-only command in both modes; they must answer the same."""
            db, remote = (cli("rollout", *args, *mode) for mode in modes.values())
            assert db == remote, f"rollout {' '.join(args)}: {db} != {remote}"
            return db

        assert everywhere("status") == (0, "no rollouts on label production\n", "")
        code, out, err = everywhere("status", FEATURE)
        assert code == 1 and out == ""
        assert err == "error: feature 'support.reply' never had a rollout on label 'production'\n"

        steps = ("--to-version", "1", "--steps", "30,100", "--interval", "2m")
        code, started, _ = cli("rollout", "start", FEATURE, *steps, *modes["database"])
        assert code == 0, started
        assert " ".join(started.split()) == (  # rich wraps at the terminal's width
            "support.reply production: running, v2 → v1 at 30% (step 1 of 2: 30% → 100%) "
            "every 2m, at least 20 requests per arm; guards: error_rate_pp 5, "
            "p95_latency_ratio 1.5, cost_ratio 1.3"
        )
        assert everywhere("status", FEATURE) == (0, started, "")
        table = everywhere("status")[1]
        assert "support.reply" in table and "v2 → v1" in table and "30%" in table

        # Each action prints the rollout as `status FEATURE` then shows it, in either mode.
        for action, mode, state in (
            ("pause", "remote", "paused"),
            ("resume", "database", "running"),
            ("abort", "remote", "aborted"),
        ):
            code, out, err = cli("rollout", action, FEATURE, "--reason", "drill", *modes[mode])
            assert code == 0, err
            assert f": {state}, v2 → v1" in out.splitlines()[0]
            assert everywhere("status", FEATURE) == (0, out, "")
        assert "reason: aborted by oncall: drill" in out
        assert reg.label() == (2, True)

        code, out, _ = cli("rollout", "start", FEATURE, "--to-version", "1", *modes["remote"])
        assert code == 0 and "running, v2 → v1 at 20%" in out  # the candidate's own plan
        code, out, _ = cli("rollout", "complete", FEATURE, *modes["database"])
        assert code == 0 and ": completed, v2 → v1 at 100%" in out
        assert everywhere("status", FEATURE)[1] == out
        assert reg.label() == (1, False)

        code, out, _ = everywhere("status", "--json")
        rows = json.loads(out)
        assert [(r["state"], r["stable"], r["candidate"]) for r in rows] == [("completed", 2, 1)]
        for mode in modes.values():  # nothing left to act on
            assert cli("rollout", "pause", FEATURE, *mode) == (
                1,
                "",
                "error: feature 'support.reply' has no running or paused rollout "
                "on label 'production'\n",
            )


def test_rollout_simulate_prints_the_step_and_minute_it_would_abort_at(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")  # the working tree's policy: no database, no server
    repo.write(
        {
            "policies/support/reply.yaml": policy(
                steps=(5, 25, 50, 100), interval="10m", min_requests=200
            ),
            "prompts/support/reply.jinja": prompt("v1"),
        }
    )

    code, out, err = cli("rollout", "simulate", FEATURE, "--candidate-errors", "8%", "--repo", repo)

    assert code == 0, err
    flat = " ".join(out.split())
    assert flat.startswith("At 200 requests/s with the candidate at 8% errors (stable 1%)")
    assert "the rollout aborts at step 1 (5%) after 10 min (1 interval, 0 waiting)" in flat
    assert "error_rate_pp: candidate 8.0% (" in flat
    code, out, _ = cli("rollout", "simulate", FEATURE, "--json", "--repo", repo)
    assert code == 0 and json.loads(out)["outcome"] == "completed"  # identical arms
    code, _, err = cli("rollout", "simulate", "support.nope", "--repo", repo)
    assert (code, err.strip()) == (
        1,
        "error: unknown feature 'support.nope' (features: support.reply)",
    )
    repo.write({"policies/support/reply.yaml": policy(steps=(50, 25), interval="10m")})
    code, _, err = cli("rollout", "simulate", FEATURE, "--repo", repo)
    assert code == 1 and err.startswith(f"error: feature '{FEATURE}' is invalid:\n"), err
    assert "steps must increase" in err
