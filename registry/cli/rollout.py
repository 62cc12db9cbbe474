"""`promptreg rollout status|start|pause|resume|abort|complete|simulate` (SPEC §10).

Like the label commands, these work against the database or a server (`--url`); the
controller inside `serve` makes the decisions, these commands show and steer them.
`simulate` reads the policy from the working tree and needs neither.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from registry.cli.backend import JsonOption, ReasonOption, Target, backend_options
from registry.cli.files import PoliciesDirOption, PromptsDirOption, RepoOption
from registry.cli.output import console, fail, print_json

app = typer.Typer(help="Guarded rollouts: a new version a slice at a time.", no_args_is_help=True)

FeatureArgument = Annotated[str, typer.Argument(help="Feature name, e.g. support.reply.")]


def _when(value: str | None) -> str:
    return (value or "").replace("T", " ")[5:16]


def _arms(row: dict[str, Any]) -> str:
    return f"v{row['stable']} → v{row['candidate']}"


@app.command()
@backend_options()
def status(
    feature: Annotated[
        str | None, typer.Argument(help="One feature (default: every rollout).", show_default=False)
    ] = None,
    *,
    target: Target,
) -> None:
    """Each feature's latest rollout: state, versions, percent, step; one feature's decisions."""
    label = target.label
    backend = target.backend()
    if feature is not None:
        _done(backend.rollout(feature, label), target.as_json)
        return
    rows = backend.rollouts(label)
    if target.as_json:
        print_json(rows)
        return
    if not rows:
        console.print(f"no rollouts on label {label}")
        return
    from rich.table import Table

    table = Table(title=f"rollouts ({label})")
    for column in ("feature", "state", "versions", "percent", "step", "started", "decided"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["feature"],
            row["state"],
            _arms(row),
            f"{row['percent']}%",
            f"{row['step'] + 1}/{len(row['steps'])}",
            _when(row["started_at"]),
            _when(row["decided_at"]),
        )
    console.print(table)


def _print_one(row: dict[str, Any]) -> None:
    steps = " → ".join(f"{s}%" for s in row["steps"])
    console.print(
        f"[bold]{row['feature']}[/bold] {row['label']}: {row['state']}, {_arms(row)} at "
        f"{row['percent']}% (step {row['step'] + 1} of {len(row['steps'])}: {steps})",
        highlight=False,
    )
    guards = ", ".join(f"{k} {v:g}" for k, v in row["guards"].items() if v is not None)
    console.print(
        f"every {_duration(row['interval_s'])}, at least {row['min_requests']} requests per arm; "
        f"guards: {guards or 'none'}",
        highlight=False,
    )
    if row.get("reason") and row["state"] != "running":
        console.print(f"reason: {row['reason']}", markup=False, highlight=False)
    for decision in row["decisions"][-8:]:
        what = decision.get("decision", "?")
        if what == "step":
            what = f"step → {decision.get('percent')}%"
        numbers = decision.get("numbers")
        detail = _arms_line(numbers) if numbers else decision.get("reason") or ""
        console.print(f"  {_when(decision.get('at'))}  {what:<12} {detail}", markup=False)


def _arms_line(numbers: dict[str, Any]) -> str:
    """Both arms' figures of one decision, side by side."""

    def arm(name: str) -> str:
        figures = numbers.get(name) or {}
        parts = [f"{figures.get('requests', 0):,} req", f"{figures.get('error_pct') or 0:.1f}% err"]
        if figures.get("p95_ms") is not None:
            parts.append(f"p95 {figures['p95_ms']:,.0f} ms")
        if figures.get("mean_cost_usd") is not None:
            parts.append(f"${figures['mean_cost_usd']:.6f}")
        return f"{name} " + ", ".join(parts)

    return f"{arm('candidate')} | {arm('stable')}"


def _duration(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


@app.command()
@backend_options()
def start(
    feature: FeatureArgument,
    to_version: Annotated[int, typer.Option("--to-version", help="The candidate version.")],
    steps: Annotated[
        str | None, typer.Option("--steps", help="Percents, e.g. 5,25,50,100 (default: policy).")
    ] = None,
    interval: Annotated[
        str | None, typer.Option("--interval", help="Time per step, e.g. 10m (default: policy).")
    ] = None,
    reason: ReasonOption = None,
    *,
    target: Target,
) -> None:
    """Roll a version out on the label, a slice at a time (replaces an active rollout)."""
    label = target.label
    percents = None
    if steps is not None:
        try:
            percents = [int(part) for part in steps.split(",") if part.strip()]
        except ValueError:
            fail(f"--steps takes percents separated by commas, like 5,25,50,100; not {steps!r}", 2)
    backend = target.backend()
    row = backend.rollout_start(feature, label, to_version, percents, interval, reason)
    _done(row, target.as_json)


def _done(row: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(row)
    else:
        _print_one(row)


def _action(action: str, summary: str) -> None:
    @backend_options()
    def command(feature: FeatureArgument, reason: ReasonOption = None, *, target: Target) -> None:
        row = target.backend().rollout_act(feature, action, target.label, reason)
        _done(row, target.as_json)

    command.__doc__ = summary
    app.command(action)(command)


_action("pause", "Hold a rollout at its current split.")
_action("resume", "Continue a paused rollout (its step starts a fresh interval).")
_action("abort", "Take the candidate back: the label stays on stable, pinned.")
_action("complete", "Promote the candidate to the label now.")


@app.command()
def simulate(
    feature: FeatureArgument,
    candidate_errors: Annotated[
        str, typer.Option("--candidate-errors", help="Candidate error rate, e.g. 4%.")
    ] = "1%",
    stable_errors: Annotated[
        str, typer.Option("--stable-errors", help="Stable error rate, e.g. 1%.")
    ] = "1%",
    candidate_latency: Annotated[
        str, typer.Option("--candidate-latency", help="Candidate latency vs stable, e.g. 1.5x.")
    ] = "1x",
    candidate_cost: Annotated[
        str, typer.Option("--candidate-cost", help="Candidate cost per request vs stable.")
    ] = "1x",
    candidate_drift: Annotated[
        str, typer.Option("--candidate-drift", help="Candidate input tokens over estimate.")
    ] = "0%",
    rps: Annotated[float, typer.Option("--rps", help="Requests per second, both arms.")] = 200.0,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same run).")] = 1,
    as_json: JsonOption = False,
    repo: RepoOption = Path("."),
    prompts_dir: PromptsDirOption = None,
    policies_dir: PoliciesDirOption = None,
) -> None:
    """Replay the feature's rollout guards on synthetic traffic: where would it abort?"""
    from registry.cli.files import feature_in_tree, layout_of
    from registry.definitions.policy import RolloutPlan
    from registry.rollouts.guards import GuardConfig
    from registry.rollouts.simulate import ArmProfile, Plan, Traffic
    from registry.rollouts.simulate import simulate as replay

    _, found = feature_in_tree(repo, layout_of(prompts_dir, policies_dir), feature)
    plan = found.policy.rollout or RolloutPlan()
    stable = ArmProfile(error_rate=_share(stable_errors, "--stable-errors"))
    candidate = stable.regressed(
        error_rate=_share(candidate_errors, "--candidate-errors"),
        latency=_factor(candidate_latency, "--candidate-latency"),
        cost=_factor(candidate_cost, "--candidate-cost"),
        drift_pct=_share(candidate_drift, "--candidate-drift") * 100,
    )
    result = replay(
        Plan(
            guards=GuardConfig(**plan.guards.model_dump()),
            steps=tuple(plan.steps),
            interval_s=plan.interval_s,
            min_requests=plan.min_requests,
        ),
        Traffic(rps=rps, stable=stable, candidate=candidate),
        seed,
    )
    if as_json:
        print_json(result.as_dict())
    else:
        console.print(result.describe(), markup=False, highlight=False)


def _share(text: str, option: str) -> float:
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        fail(f"{option} takes a percent like 4%, not {text!r}", 2)
    if not 0 <= value <= 100:
        fail(f"{option} must be between 0% and 100%, not {text!r}", 2)
    return value / 100


def _factor(text: str, option: str) -> float:
    try:
        value = float(text.strip().lower().removesuffix("x"))
    except ValueError:
        fail(f"{option} takes a factor like 1.5x, not {text!r}", 2)
    if value <= 0:
        fail(f"{option} must be more than 0x, not {text!r}", 2)
    return value


def register(root: typer.Typer) -> None:
    """Add the `rollout` group to the app."""
    root.add_typer(app, name="rollout")
