"""The reports of `promptreg eval`: text for a terminal, markdown for the pull request,
JSON for scripts, JUnit XML for CI test views — all from the same `FeatureResult`s.

Per feature: the pass rate (before → after with `--base`) against the threshold, the
failing cases, and per case the tokens, cost and latency on each side. Means per case
are over the runs of that side (a skipped base case is not a run).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from registry.client.result import DEGRADED, ERROR, TIMEOUT
from registry.evals.results import HEAD, CaseResult, FeatureResult, SideResult, percent


@dataclass(frozen=True)
class Context:
    """What was compared: the base ref and commit (None without --base), the repeat count."""

    base: str | None = None
    base_commit: str | None = None
    repeat: int = 1

    def title(self) -> str:
        """`working tree against main (1a2b3c4d5e6f)`, or `working tree`."""
        if self.base is None:
            return HEAD
        return f"{HEAD} against {self.base} ({(self.base_commit or '')[:12]})"


def case_label(case: CaseResult, context: Context) -> str:
    """The case's name, with its repeat number when cases ran more than once."""
    return case.name if context.repeat == 1 else f"{case.name} [{case.repeat}]"


def paired(result: FeatureResult) -> list[tuple[CaseResult, CaseResult | None]]:
    """Each head case with the same case (and repeat) on the base side."""
    base = {(c.name, c.repeat): c for c in result.base.cases} if result.base else {}
    return [(c, base.get((c.name, c.repeat))) for c in result.head.cases]


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


@dataclass(frozen=True)
class Means:
    """Per-case means of one side."""

    tokens: float | None
    cost_usd: float | None
    latency_ms: float | None

    @classmethod
    def of(cls, side: SideResult | None) -> Means:
        """Means over the runs that got an answer (a rejected case costs nothing)."""
        runs = [c for c in side.runs if c.model is not None] if side is not None else []
        costs = [c.cost_usd for c in runs if c.cost_usd is not None]
        return cls(
            _mean([c.input_tokens + c.output_tokens for c in runs]),
            _mean(costs) if len(costs) == len(runs) else None,
            _mean([c.latency_ms for c in runs]),
        )


def _num(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _usd(value: float | None) -> str:
    return "n/a" if value is None else f"${value:.6f}"


def _arrow(before: str | None, after: str) -> str:
    """`before → after`; just `after` when there is no before or it is the same."""
    return after if before is None or before == after else f"{before} → {after}"


def _rate(side: SideResult | None) -> str:
    if side is None:
        return "n/a"
    if side.state != "ok":
        return side.state
    return f"{percent(side.pass_rate)} ({side.passed}/{side.total})"


def _tokens(case: CaseResult | None) -> str:
    if case is None or case.model is None:
        return "–"
    return str(case.input_tokens + case.output_tokens)


def _case_cost(case: CaseResult | None) -> str:
    return "–" if case is None or case.model is None else _usd(case.cost_usd)


def _latency(case: CaseResult | None) -> str:
    return "–" if case is None or case.model is None else f"{case.latency_ms:,.0f}"


def _verdict(case: CaseResult | None) -> str:
    if case is None:
        return "–"
    if case.outcome == "skipped":
        return "skip"
    return "pass" if case.passed else "FAIL"


# -- text -----------------------------------------------------------------------------------


def text(results: list[FeatureResult], context: Context) -> str:
    """The terminal report."""
    out = [f"promptreg eval: {context.title()}", ""]
    for result in results:
        with_base = result.base is not None
        verdict = "PASS" if result.ok else "FAIL"
        rate = _rate(result.head)
        if with_base:
            rate = f"{_rate(result.base)} → {rate}"
        line = f"{verdict} {result.feature}: {rate}, threshold {percent(result.threshold)}"
        if result.reasons:
            line += f": {'; '.join(result.reasons)}"
        out.append(line)
        for side, note in (("", result.head.note), ("base: ", result.base and result.base.note)):
            if note:
                out.append(f"    {side}{note}")
        for head, base in paired(result):
            mark = "✓" if head.passed else "✗"
            parts = [f"  {mark} {case_label(head, context)}"]
            if with_base:
                parts.append(f"[{_verdict(base)} → {_verdict(head)}]")
            parts.append(f"{head.outcome}" + (f" on {head.model}" if head.model else ""))
            before = base if with_base and base is not None and base.model else None
            if head.model is not None:
                parts.append(
                    f"{_arrow(_tokens(before) if before else None, _tokens(head))} tokens, "
                    f"{_arrow(_case_cost(before) if before else None, _case_cost(head))}, "
                    f"{_arrow(_latency(before) if before else None, _latency(head))} ms"
                )
            if head.cached:
                parts.append("(cached)")
            out.append("  ".join(parts))
            out.extend(f"      {failure}" for failure in head.failures)
            if base is not None and base.failures and not base.passed:
                out.extend(f"      before: {failure}" for failure in base.failures)
        out.append("")
    out.append(summary(results))
    return "\n".join(out) + "\n"


def summary(results: list[FeatureResult]) -> str:
    """One line: features passed/failed, runs, requests, cache hits, money spent."""
    failed = sum(not r.ok for r in results)
    sides = [s for r in results for s in (r.head, r.base) if s is not None]
    runs = [c for s in sides for c in s.cases]
    requests = sum(c.requests for c in runs)
    cached = sum(c.cached for c in runs)
    spent = sum((c.cost_usd or 0.0) + (c.judge_cost_usd or 0.0) for c in runs if not c.cached)
    return (
        f"{len(results)} feature(s): {len(results) - failed} passed, {failed} failed; "
        f"{len(runs)} case run(s), {requests} request(s), {cached} from the cache, "
        f"${spent:.6f} spent"
    )


# -- markdown -------------------------------------------------------------------------------


def _cell(value: str) -> str:
    return value.replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")


def markdown(results: list[FeatureResult], context: Context) -> str:
    """The pull-request comment: a summary table, then each feature's cases folded."""
    title = "### promptreg eval: cases on the " + (
        HEAD
        if context.base is None
        else f"{HEAD} against `{context.base}` (`{(context.base_commit or '')[:12]}`)"
    )
    out = [title, ""]
    if not results:
        return "\n".join([*out, "No feature has eval cases.", ""])
    with_base = context.base is not None
    out += [
        "| | feature | pass rate | threshold | tokens / case | cost / case | latency / case |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        head, base = Means.of(r.head), Means.of(r.base) if with_base else None
        rate = f"**{_rate(r.head)}**"
        if with_base:
            rate = f"{_rate(r.base)} → {rate}"
        tokens = _arrow(_num(base.tokens) if base else None, _num(head.tokens))
        cost = _arrow(_usd(base.cost_usd) if base else None, _usd(head.cost_usd))
        latency = _arrow(_num(base.latency_ms) if base else None, _num(head.latency_ms))
        out.append(
            f"| {'✅' if r.ok else '❌'} | `{r.feature}` | {rate} | {percent(r.threshold)} | "
            f"{tokens} | {cost} | {latency} ms |"
        )
    out.append("")
    for r in results:
        if r.reasons:
            out.append(f"**❌ `{r.feature}`**: {'; '.join(r.reasons)}.")
    if any(r.reasons for r in results):
        out.append("")
    for r in results:
        failing = [h for h in r.head.cases if not h.passed]
        what = f"{len(failing)} failing of {len(r.head.cases)}" if failing else "all pass"
        out += [f"<details><summary><code>{r.feature}</code>: {what}</summary>", ""]
        if r.base is not None and r.base.note:
            out += [f"Base: {_cell(r.base.note)}", ""]
        header = "| case | before | after |" if with_base else "| case | result |"
        align = "|---|:-:|:-:|" if with_base else "|---|:-:|"
        out += [
            f"{header} outcome | tokens | cost (USD) | latency (ms) |",
            f"{align}---|---:|---:|---:|",
        ]
        for h, b in paired(r):
            marks = f"{_mark(b)} | {_mark(h)}" if with_base else _mark(h)
            prior = b if with_base and b is not None and b.model else None
            out.append(
                f"| {_cell(case_label(h, context))} | {marks} | {h.outcome} | "
                f"{_arrow(_tokens(prior) if prior else None, _tokens(h))} | "
                f"{_arrow(_case_cost(prior) if prior else None, _case_cost(h))} | "
                f"{_arrow(_latency(prior) if prior else None, _latency(h))} |"
            )
        if failing:
            out += ["", "Failing:", ""]
            for h in failing:
                out.append(
                    f"- **{_cell(case_label(h, context))}**: "
                    + "; ".join(f"`{_code(f)}`" for f in h.failures)
                )
        out += ["", "</details>", ""]
    out.append(summary(results))
    out.append("")
    return "\n".join(out)


def _code(text: str) -> str:
    return text.replace("`", "'").replace("\n", " ")


def _mark(case: CaseResult | None) -> str:
    if case is None or case.outcome == "skipped":
        return "–"
    return "✅" if case.passed else "❌"


# -- json -----------------------------------------------------------------------------------


def case_json(case: CaseResult) -> dict[str, Any]:
    """One case run as JSON."""
    return {
        "name": case.name,
        "repeat": case.repeat,
        "passed": case.passed,
        "answer": case.answer,
        "failures": case.failures,
        "outcome": case.outcome,
        "model": case.model,
        "tokens": {
            "input": case.input_tokens,
            "output": case.output_tokens,
            "total": case.input_tokens + case.output_tokens,
        },
        "cost_usd": case.cost_usd,
        "latency_ms": round(case.latency_ms, 1),
        "cached": case.cached,
        "requests": case.requests,
        "judge_cost_usd": case.judge_cost_usd,
    }


def as_json(results: list[FeatureResult], context: Context) -> dict[str, Any]:
    """The machine report: `{"features": [{feature, pass_rate, passed, total, threshold,
    base_pass_rate?, cases: [{name, passed, answer, failures, outcome, tokens, cost_usd,
    latency_ms, …}]}]}`."""
    features = []
    for r in results:
        entry: dict[str, Any] = {
            "feature": r.feature,
            "path": r.path,
            "pass_rate": r.head.pass_rate,
            "passed": r.head.passed,
            "total": r.head.total,
            "threshold": r.threshold,
            "ok": r.ok,
            "reasons": r.reasons,
            "content_hash": r.head.content_hash,
        }
        if r.base is not None:
            entry.update(
                base_pass_rate=r.base.pass_rate,
                base_passed=r.base.passed,
                base_total=r.base.total,
                base_state=r.base.state,
                base_content_hash=r.base.content_hash,
                base_note=r.base.note,
            )
        cases = []
        for head, base in paired(r):
            item = case_json(head)
            if r.base is not None:
                item["base"] = None if base is None else case_json(base)
            cases.append(item)
        entry["cases"] = cases
        features.append(entry)
    return {
        "ok": all(r.ok for r in results),
        "base": context.base,
        "base_commit": context.base_commit,
        "repeat": context.repeat,
        "features": features,
    }


# -- junit ----------------------------------------------------------------------------------


def junit(results: list[FeatureResult], context: Context) -> str:
    """JUnit XML: a testsuite per feature, a testcase per case (per repeat) of the working
    tree. A wrong answer — or a case the budget rejected — is a `<failure>`; no answer
    at all (every model failed, the deadline passed) is an `<error>`."""
    from xml.etree import ElementTree as ET

    root = ET.Element("testsuites", name="promptreg eval")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    seconds = 0.0
    for r in results:
        suite = ET.SubElement(root, "testsuite", name=r.feature, file=r.path)
        properties = ET.SubElement(suite, "properties")
        facts = {
            "pass_rate": r.head.pass_rate,
            "threshold": r.threshold,
            "ok": r.ok,
            "reasons": "; ".join(r.reasons),
        }
        if r.base is not None:
            facts.update(base=context.base, base_pass_rate=r.base.pass_rate)
        for name, value in facts.items():
            shown = (
                ""
                if value is None
                else str(value).lower()
                if isinstance(value, bool)
                else str(value)
            )
            ET.SubElement(properties, "property", name=name, value=shown)
        counts = {"tests": 0, "failures": 0, "errors": 0}
        took = 0.0
        for case in r.head.cases:
            counts["tests"] += 1
            took += case.latency_ms / 1000
            node = ET.SubElement(
                suite,
                "testcase",
                classname=r.feature,
                name=case_label(case, context),
                time=f"{case.latency_ms / 1000:.3f}",
            )
            if not case.passed:
                kind = "error" if case.outcome in (DEGRADED, TIMEOUT, ERROR) else "failure"
                counts["failures" if kind == "failure" else "errors"] += 1
                problem = ET.SubElement(
                    node, kind, message=_xml_text(case.failures[0]), type=case.outcome
                )
                problem.text = _xml_text("\n".join(case.failures))
            if case.answer is not None:
                ET.SubElement(node, "system-out").text = _xml_text(case.answer)
        suite.set("tests", str(counts["tests"]))
        suite.set("failures", str(counts["failures"]))
        suite.set("errors", str(counts["errors"]))
        suite.set("skipped", "0")
        suite.set("time", f"{took:.3f}")
        for key in totals:
            totals[key] += counts[key]
        seconds += took
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{seconds:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(value: str) -> str:
    """`value` without the characters XML 1.0 cannot carry (a model may answer them)."""
    return _NOT_XML.sub("\ufffd", value)
