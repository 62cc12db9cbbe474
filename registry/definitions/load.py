"""Loading a whole registry snapshot: policies + defaults + prompts + partials + catalog.

`RegistryLoader` reads one `Tree` (a working folder or a git commit) and produces the
features it defines, each fully resolved and checked, plus every problem found, each
with `file:line`. A feature with a problem is left out; the others load. Parsed files
are cached by content, so loading many commits of one repository stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from registry.definitions.content import FeatureDefinition, Layout
from registry.definitions.files import TreeFiles
from registry.definitions.policy import (
    DEFAULTS_FILE,
    FEATURE_NAME,
    MODELS_FILE,
    Policy,
    deep_merge,
    defaults_chain,
    feature_name,
    is_policy_file,
    origin_of,
)
from registry.definitions.prompt import (
    PROMPT_SUFFIXES,
    PromptTemplate,
    describe_error,
)
from registry.definitions.tree import TreeEscape, clean_path
from registry.definitions.yamlpos import Located
from registry.errors import CatalogError, Problem, RenderError
from registry.render import Analysis, analyze
from registry.tokens import Catalog


@dataclass
class LoadedRegistry:
    """The result of loading a tree: valid features and all problems."""

    features: dict[str, FeatureDefinition]
    problems: list[Problem]
    catalog: Catalog
    layout: Layout
    broken: set[str] = field(default_factory=set)  # feature names that failed to load


class RegistryLoader(TreeFiles):
    """Loads features from a tree: every policy with its defaults, prompt and partials."""

    # -- features ----------------------------------------------------------------
    def policy_files(self) -> dict[str, str]:
        """Feature name -> policy path, for every policy file (names not yet validated)."""
        root = self.layout.policies_dir
        out: dict[str, str] = {}
        for path in self.tree.walk(root):
            rel = path[len(root) + 1 :]
            if is_policy_file(rel):
                name = feature_name(rel)
                assert name is not None
                out.setdefault(name, path)
        return out

    def load(self) -> LoadedRegistry:
        """Load every feature of the tree."""
        root = self.layout.policies_dir
        problems: list[Problem] = []
        seen: dict[str, str] = {}
        features: dict[str, FeatureDefinition] = {}
        broken: set[str] = set()
        for path in self.tree.walk(root):
            rel = path[len(root) + 1 :]
            if not is_policy_file(rel):
                continue
            name = feature_name(rel)
            assert name is not None
            if name in seen:
                problems.append(
                    Problem(path, None, f"defines feature {name!r} again (also {seen[name]})", name)
                )
                broken.add(name)
                features.pop(name, None)
                continue
            seen[name] = path
            result = self.load_feature(name, path)
            if isinstance(result, FeatureDefinition):
                features[name] = result
            else:
                problems.extend(result)
                broken.add(name)
        self._check_defaults(problems)
        problems.extend(
            self.check_links([*self.tree.walk(self.layout.prompts_dir), *self.tree.walk(root)])
        )
        catalog = self.catalog
        problems.extend(self.catalog_problems())
        unique: dict[tuple[str, int | None, str], Problem] = {}
        for problem in problems:
            unique.setdefault((problem.file, problem.line, problem.message), problem)
        ordered = sorted(unique.values(), key=Problem.sort_key)
        return LoadedRegistry(features, ordered, catalog, self.layout, broken)

    def check_links(self, paths: list[str]) -> list[Problem]:
        """A problem for each of `paths` that is a symlink leading outside the repository."""
        out = []
        for path in paths:
            try:
                self.tree.read(path)
            except TreeEscape as exc:
                out.append(Problem(path, None, str(exc)))
            except FileNotFoundError:
                pass
        return out

    def _check_defaults(self, problems: list[Problem]) -> None:
        for path in self.tree.walk(self.layout.policies_dir):
            if path.rsplit("/", 1)[-1] == DEFAULTS_FILE:
                parsed = self._policy_yaml(path)
                if isinstance(parsed, Problem):
                    problems.append(parsed)

    def load_feature(self, name: str, policy_path: str) -> FeatureDefinition | list[Problem]:
        """Load and check one feature; its problems when it is invalid."""
        problems = self._load_feature(name, policy_path)
        if isinstance(problems, FeatureDefinition):
            return problems
        return [Problem(p.file, p.line, p.message, name) for p in problems]

    def _load_feature(self, name: str, policy_path: str) -> FeatureDefinition | list[Problem]:
        root = self.layout.policies_dir
        if not FEATURE_NAME.match(name):
            return [
                Problem(
                    policy_path,
                    None,
                    f"feature name {name!r} is invalid: use lowercase letters, digits, '_' "
                    "and '-', with '.' (folders) between parts",
                )
            ]
        layers: list[Located] = []
        for rel in defaults_chain(policy_path[len(root) + 1 :]):
            parsed = self._policy_yaml(f"{root}/{rel}")
            if isinstance(parsed, Problem):
                return [parsed]
            if parsed is not None:
                layers.append(parsed)
        own = self._policy_yaml(policy_path)
        if isinstance(own, Problem):
            return [own]
        if own is None:
            return [Problem(policy_path, None, "policy file not found")]
        layers.append(own)
        data, origins = deep_merge(layers)
        try:
            policy = Policy.model_validate(data)
        except ValidationError as exc:
            out = []
            for err in exc.errors():
                file, line = origin_of(origins, tuple(err["loc"]), (policy_path, 1))
                message = describe_error(err)
                if err["type"] == "missing":
                    message += " (not set in the policy nor in any _defaults.yaml above it)"
                out.append(Problem(file, line, message))
            return out
        prompt_line = own.lines.get(("prompt",)) or 1
        prompt = self._find_prompt(policy.prompt, policy_path)
        if isinstance(prompt, Problem):
            return [Problem(policy_path, prompt_line if policy.prompt else 1, prompt.message)]
        if isinstance(prompt, list):
            return prompt
        analysis = self._analysis(prompt)
        problems = list(analysis.problems)
        for var, (file, line) in analysis.variables.items():
            if var not in prompt.inputs:
                problems.append(
                    Problem(file, line, f"variable {var!r} is used but not declared in inputs")
                )
        models, model_problems = self._check_models(policy, own, origins, policy_path)
        problems.extend(model_problems)
        if problems:
            return problems
        feature = FeatureDefinition(
            name=name,
            policy_path=policy_path,
            policy=policy,
            policy_data=data,
            prompt=prompt,
            partials=analysis.partials,
            models=models,
            layout=self.layout,
        )
        if self.samples and prompt.sample is not None:
            return self._check_sample(feature) or feature
        return feature

    def _analysis(self, prompt: PromptTemplate) -> Analysis:
        """Analyze a prompt, reusing an earlier analysis while its partials are unchanged."""
        key = ("analysis", prompt.path, prompt.body, prompt.dialect)
        hit: Analysis | None = self.shared.get(key)
        if hit is not None and all(
            self._template_source(name) == source for name, source in hit.partials.items()
        ):
            return hit
        analysis = analyze(
            prompt, self._template_source, file_of=self._file_of, first_line_of=self._first_line
        )
        if not analysis.problems:
            self.shared[key] = analysis
        return analysis

    def _first_line(self, name: str) -> int:
        if name.endswith(".prompty"):
            parsed = self.prompt(self._file_of(name))
            if isinstance(parsed, PromptTemplate):
                return parsed.body_line
        return 1

    def _file_of(self, name: str) -> str:
        return f"{self.layout.prompts_dir}/{name}"

    def _find_prompt(
        self, ref: str | None, policy_path: str
    ) -> PromptTemplate | list[Problem] | Problem:
        root = self.layout.policies_dir
        if ref is None:
            rel = policy_path[len(root) + 1 :]
            ref = rel.rsplit(".", 1)[0]
        try:
            ref = clean_path(ref)
        except TreeEscape as exc:
            return Problem(policy_path, None, f"prompt: {exc}")
        base = f"{self.layout.prompts_dir}/{ref}"
        candidates = (
            [base] if base.endswith(PROMPT_SUFFIXES) else [base + s for s in PROMPT_SUFFIXES]
        )
        for path in candidates:
            parsed = self.prompt(path)
            if parsed is not None:
                return parsed
        return Problem(policy_path, None, f"prompt file not found: {' or '.join(candidates)}")

    def _check_models(
        self, policy: Policy, own: Located, origins: Any, policy_path: str
    ) -> tuple[dict[str, dict[str, Any]], list[Problem]]:
        problems: list[Problem] = []
        models: dict[str, dict[str, Any]] = {}
        for i, ref in enumerate(policy.models):
            file, line = origin_of(origins, ("models", i), (policy_path, 1))
            info = self.catalog.lookup(ref.model)
            if info is None:
                problems.append(
                    Problem(
                        file,
                        line,
                        f"unknown model {ref.model!r}: not in the catalog; declare it in "
                        f"{self.layout.policies_dir}/{MODELS_FILE}",
                    )
                )
                continue
            window = info.context_window
            if window is not None and policy.budget.max_request_tokens > window:
                bfile, bline = origin_of(
                    origins, ("budget", "max_request_tokens"), (policy_path, 1)
                )
                problems.append(
                    Problem(
                        bfile,
                        bline,
                        f"budget.max_request_tokens {policy.budget.max_request_tokens} exceeds "
                        f"the context window of {ref.model} ({window} tokens)",
                    )
                )
            models[ref.model] = info.as_dict()
        return models, problems

    def _check_sample(self, feature: FeatureDefinition) -> list[Problem]:
        key = ("sample", feature.content_hash)
        if key not in self.shared:
            self.shared[key] = self._sample_problems(feature)
        problems: list[Problem] = self.shared[key]
        return problems

    def _sample_problems(self, feature: FeatureDefinition) -> list[Problem]:
        prompt = feature.prompt
        line = prompt.sample_line
        try:
            messages = feature.compiled().render(prompt.sample or {})
            estimate = self.catalog.estimate(feature.policy, [m.as_dict() for m in messages])[0]
        except (RenderError, CatalogError) as exc:
            return [Problem(prompt.path, line, f"sample does not render: {exc}", feature.name)]
        limit = feature.policy.budget.max_request_tokens
        if estimate.total_tokens > limit:
            return [
                Problem(
                    prompt.path,
                    line,
                    f"sample's estimated request of {estimate.total_tokens} tokens "
                    f"({estimate.input_tokens} input + {estimate.max_output_tokens} max output "
                    f"on {estimate.model}) exceeds budget.max_request_tokens {limit}: the "
                    "prompt outgrew its budget",
                    feature.name,
                )
            ]
        return []
