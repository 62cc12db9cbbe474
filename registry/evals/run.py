"""Running cases through the client library's guarded call, on the working tree and a base.

Each side of an evaluation (the working tree; with `--base`, the registry at REF) is a
`registry.client.Registry` without a server, holding that side's features built from
files (`CachedVersion.from_feature`): every case runs through `Registry.run`, so the
feature's own chain, timeouts, retries, circuit breakers, deadline and budget apply as
in production — an over-budget case is rejected without a call, and counts as failed.
`--model M` replaces the chain with M alone. Usage is not reported anywhere.

The cases, thresholds and judge prompt always come from the working tree: both sides
are measured with the same instrument. A case whose variables the base prompt does not
accept (an input it does not declare, or lacks one it requires) is not run on the base
side and is left out of the base pass rate (outcome `skipped`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from registry.client import CachedVersion, Registry
from registry.client.result import DEGRADED, ERROR, REJECTED, TIMEOUT, ModelCall
from registry.definitions.content import FeatureDefinition
from registry.definitions.evals import JUDGE_SCALE, Case, EvalSuite, JudgeSpec
from registry.definitions.load import LoadedRegistry
from registry.definitions.policy import Policy
from registry.definitions.tree import Tree
from registry.errors import PromptregError, RenderError
from registry.evals.assertions import check_answer, check_render, shown
from registry.evals.cache import AnswerCache, Trace
from registry.evals.judge import (
    JudgePrompt,
    judge_feature,
    judge_name,
    parse_score,
    read_judge_prompt,
)
from registry.evals.results import HEAD, SKIPPED, CaseResult, FeatureResult, SideResult
from registry.render import Message
from registry.tokens import Catalog, Estimate

NO_ANSWER = (REJECTED, DEGRADED, TIMEOUT, ERROR)


def with_model(feature: FeatureDefinition, catalog: Catalog, model: str) -> FeatureDefinition:
    """`feature` with its chain replaced by `model` alone (timeout and retries of the first)."""
    first = feature.policy.models[0]
    data = {
        **feature.policy_data,
        "models": [
            {"model": model, "timeout_s": first.timeout_s, "max_retries": first.max_retries}
        ],
    }
    return dataclasses.replace(
        feature,
        policy=Policy.model_validate(data),
        policy_data=data,
        models={model: catalog.require(model).as_dict()},
    )


def warm_up(entry: CachedVersion) -> None:
    """Load the tokenizer of every model of the chain now: a case's latency should not
    carry a first load (a served process has them loaded)."""
    for ref in entry.policy.models:
        entry.count(ref.model, [Message("user", "warm up")])


class Side:
    """One registry snapshot under evaluation, as a server-less client library."""

    def __init__(
        self, ref: str, loaded: LoadedRegistry, names: list[str], model: str | None
    ) -> None:
        self.ref = ref
        self.loaded = loaded
        self.client = Registry(None, report_usage=False)
        self.entries: dict[str, CachedVersion] = {}
        self.states: dict[str, SideResult] = {}
        for name in names:
            feature = loaded.features.get(name)
            if feature is None:
                broken = name in loaded.broken
                problems = [str(p) for p in loaded.problems if p.feature == name]
                self.states[name] = SideResult(
                    ref,
                    "invalid" if broken else "missing",
                    note="; ".join(problems[:3]) if broken else f"no feature {name} at {ref}",
                )
                continue
            try:
                if model is not None:
                    feature = with_model(feature, loaded.catalog, model)
                entry = CachedVersion.from_feature(feature)
                warm_up(entry)
            except PromptregError as exc:
                self.states[name] = SideResult(ref, "invalid", note=str(exc))
                continue
            self.client.cache.put(entry)
            self.entries[name] = entry
            self.states[name] = SideResult(ref, content_hash=feature.content_hash)

    def close(self) -> None:
        """Stop the client's background machinery."""
        self.client.close()


@dataclass(frozen=True)
class Job:
    """One case, one repeat, one side."""

    side: Side
    suite: EvalSuite
    index: int
    repeat: int


class Evaluation:
    """One `promptreg eval` run: sides, judges, the answer cache and the provider's call."""

    def __init__(
        self,
        head: LoadedRegistry,
        head_tree: Tree,
        suites: dict[str, EvalSuite],
        *,
        call: ModelCall,
        cache: AnswerCache,
        base: LoadedRegistry | None = None,
        base_ref: str | None = None,
        model: str | None = None,
        repeat: int = 1,
    ) -> None:
        self.suites = suites
        self.call = call
        self.cache = cache
        self.repeat = repeat
        names = sorted(suites)
        self.head = Side(HEAD, head, names, model)
        self.base = Side(base_ref or "base", base, names, model) if base is not None else None
        self.judges = Registry(None, report_usage=False)
        self._prepare_judges(head, head_tree)
        if any(
            a.json_schema is not None for s in suites.values() for c in s.cases for a in c.expect
        ):
            import jsonschema.validators  # noqa: F401  # not inside the first timed cases

    def _prepare_judges(self, loaded: LoadedRegistry, tree: Tree) -> None:
        prompts: dict[str, JudgePrompt] = {}
        for name, suite in self.suites.items():
            if name not in self.head.entries:
                continue  # not runnable on the working tree: no case of it runs
            for case in suite.cases:
                for assertion in case.expect:
                    if assertion.judge is None:
                        continue
                    model = self.judge_model(name, assertion.judge)
                    prompt_name = suite.spec.judge_prompt
                    if judge_name(model, prompt_name) in self.judges.cache.names():
                        continue
                    if prompt_name not in prompts:
                        found = read_judge_prompt(tree, loaded.layout, prompt_name)
                        if isinstance(found, list):
                            raise PromptregError("; ".join(map(str, found)))
                        prompts[prompt_name] = found
                    feature = judge_feature(prompts[prompt_name], loaded, model)
                    entry = CachedVersion.from_feature(feature)
                    warm_up(entry)
                    self.judges.cache.put(entry)

    def judge_model(self, feature: str, spec: JudgeSpec) -> str:
        """The judge's model: its own, else the working tree's (effective) first model."""
        entry = self.head.entries[feature]
        return spec.model or entry.policy.models[0].model

    def jobs(self) -> list[Job]:
        """Every case × repeat × side, in report order."""
        sides = [s for s in (self.head, self.base) if s is not None]
        return [
            Job(side, suite, index, repeat)
            for name, suite in sorted(self.suites.items())
            for side in sides
            if name in side.entries
            for index in range(len(suite.cases))
            for repeat in range(1, self.repeat + 1)
        ]

    def run(
        self, *, concurrency: int = 4, progress: Callable[[], None] | None = None
    ) -> list[FeatureResult]:
        """Run every job (`concurrency` at a time) and gather the results per feature."""
        jobs = self.jobs()

        def one(job: Job) -> CaseResult:
            try:
                return self.run_case(job)
            finally:
                if progress is not None:
                    progress()

        # The first job runs alone: it pays the provider client's start-up (connection pool,
        # lazy SDK imports), which would otherwise slow every case in flight beside it.
        done = [one(job) for job in jobs[:1]]
        with ThreadPoolExecutor(max_workers=max(concurrency, 1)) as pool:
            done += pool.map(one, jobs[1:])
        for job, result in zip(jobs, done, strict=True):
            job.side.states[job.suite.feature].cases.append(result)
        return [
            FeatureResult(
                name,
                suite.path,
                suite.spec.threshold,
                self.head.states[name],
                self.base.states[name] if self.base is not None else None,
            )
            for name, suite in sorted(self.suites.items())
        ]

    def run_case(self, job: Job) -> CaseResult:
        """Render, check the render assertions, run the guarded call, check the answer."""
        feature = job.suite.feature
        case: Case = job.suite.cases[job.index]
        entry = job.side.entries[feature]
        try:
            messages = entry.compiled.render(case.vars)
        except RenderError as exc:
            why = str(exc).removeprefix(f"{feature}: ")
            return CaseResult(case.name, job.repeat, False, SKIPPED, None, [f"not run: {why}"])
        wire = [m.as_dict() for m in messages]
        first = entry.policy.models[0].model
        failures = []
        for rendered in case.render:
            failed = check_render(rendered, wire, count=lambda: entry.count(first, messages))
            if failed:
                failures.append(f"render {failed}")
        trace, judged = Trace(), Trace()
        costs: list[float] = []
        call = self.cache.wrap(self.call, trace, sample=job.repeat - 1)
        result = job.side.client.run(feature, case.vars, call=call)
        answer = None if result.outcome in NO_ANSWER else result.text
        if answer is None:
            failures.insert(0, f"{result.outcome}: {result.reason}")
        else:

            def judge(spec: JudgeSpec) -> str | None:
                return self._judge(spec, feature, wire, answer, judged, costs, job.repeat)

            for check in case.expect:
                failed = check_answer(
                    check, answer, count=lambda text: entry.count_text(first, text), judge=judge
                )
                if failed:
                    failures.append(failed)
        usage = result.usage
        cost = None
        if result.model is not None:
            info = entry.models[result.model]
            cost = Estimate.of(info, usage.input_tokens, usage.output_tokens).cost_usd
        requests = trace.requests + judged.requests
        return CaseResult(
            name=case.name,
            repeat=job.repeat,
            passed=not failures,
            outcome=result.outcome,
            answer=answer,
            failures=failures,
            model=result.model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=cost,
            latency_ms=max(result.latency_s + trace.latency_adjust_s, 0.0) * 1000,
            cached=requests == 0 and trace.hits > 0,
            requests=requests,
            judge_cost_usd=sum(costs) if costs else None,
        )

    def _judge(
        self,
        spec: JudgeSpec,
        feature: str,
        conversation: list[dict[str, str]],
        answer: str,
        trace: Trace,
        costs: list[float],
        repeat: int,
    ) -> str | None:
        model = self.judge_model(feature, spec)
        name = judge_name(model, self.suites[feature].spec.judge_prompt)
        variables = {
            "rubric": spec.rubric,
            "answer": answer,
            "conversation": conversation,
            "feature": feature,
        }
        call = self.cache.wrap(self.call, trace, sample=repeat - 1)
        result = self.judges.run(name, variables, call=call)
        if result.model is not None:
            info = self.judges.resolve(name).models[result.model]
            usage = result.usage
            cost = Estimate.of(info, usage.input_tokens, usage.output_tokens).cost_usd
            if cost is not None:
                costs.append(cost)
        if result.outcome in NO_ANSWER:
            return f"judge: no grade ({result.outcome}: {result.reason})"
        grade = parse_score(result.text)
        if grade is None:
            return f"judge: no score from 1 to 5 in {model}'s answer {shown(result.text)}"
        if grade.score >= spec.min_score:
            return None
        return (
            f"judge: {grade.score:g}/{JUDGE_SCALE[1]} from {model}, needs {spec.min_score:g}: "
            f"{shown(grade.reason, 160)}"
        )

    def close(self) -> None:
        """Stop every client."""
        self.head.close()
        if self.base is not None:
            self.base.close()
        self.judges.close()
