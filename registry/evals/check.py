"""What `promptreg validate` checks of the eval files — everything that needs no model.

Per feature with cases: the file's schema (`registry.definitions.evals`), each case's
variables against the prompt's declared inputs, each case rendered, every `render`
assertion run, and each `judge`'s prompt and model. Failures read `file:line: case:
message`, like every other problem `validate` reports.
"""

from __future__ import annotations

from dataclasses import dataclass

from registry.definitions.content import FeatureDefinition
from registry.definitions.evals import EvalSuite, check_case_vars, load_evals
from registry.definitions.load import LoadedRegistry
from registry.definitions.tree import Tree
from registry.errors import CatalogError, Problem, RenderError
from registry.evals.assertions import check_render
from registry.evals.judge import check_judges


@dataclass
class EvalCheck:
    """The eval files of a tree, the problems found in them, and the render assertions
    that fail (problems for `validate`; for `eval`, failures of those cases)."""

    suites: dict[str, EvalSuite]
    problems: list[Problem]
    render_failures: list[Problem]

    @property
    def all_problems(self) -> list[Problem]:
        """Everything `validate` reports, in file order."""
        return sorted([*self.problems, *self.render_failures], key=Problem.sort_key)

    @property
    def cases(self) -> int:
        """How many cases the files hold."""
        return sum(len(s.cases) for s in self.suites.values())


def check_evals(tree: Tree, loaded: LoadedRegistry, evals_dir: str) -> EvalCheck:
    """Load every eval file of `tree` and check it against the loaded registry."""
    names = set(loaded.features) | loaded.broken
    suites, problems = load_evals(tree, evals_dir, names, policies_dir=loaded.layout.policies_dir)
    failures: list[Problem] = []
    for name, suite in sorted(suites.items()):
        feature = loaded.features.get(name)
        if feature is not None:  # a broken feature's own problems are reported already
            found, failed = check_suite(suite, feature, tree, loaded)
            problems.extend(found)
            failures.extend(failed)
    return EvalCheck(suites, sorted(problems, key=Problem.sort_key), failures)


def check_suite(
    suite: EvalSuite, feature: FeatureDefinition, tree: Tree, loaded: LoadedRegistry
) -> tuple[list[Problem], list[Problem]]:
    """Variables, renders and judges of one feature's cases (problems), and its render
    assertions (failures)."""
    problems: list[Problem] = []
    failures: list[Problem] = []
    compiled = feature.compiled()
    first = feature.policy.models[0].model
    for i, case in enumerate(suite.cases):
        unfit = check_case_vars(suite, i, feature.prompt.inputs)
        if unfit:
            problems.extend(unfit)  # rendering would only repeat these
            continue
        try:
            messages = [m.as_dict() for m in compiled.render(case.vars)]
        except RenderError as exc:
            why = str(exc).removeprefix(f"{feature.name}: ")
            problems.append(suite.problem(("cases", i), f"{case.name}: does not render: {why}"))
            continue

        def count(wire: list[dict[str, str]] = messages) -> int:
            return loaded.catalog.count(first, wire)

        for j, check in enumerate(case.render):
            try:
                failed = check_render(check, messages, count=count)
            except CatalogError as exc:
                failed = str(exc)
            if failed:
                failures.append(suite.problem(("cases", i, "render", j), f"{case.name}: {failed}"))
    problems.extend(check_judges(suite, tree, loaded, first))
    return problems, failures
