"""A feature's definition and the typed snapshot of it that a version stores.

`FeatureDefinition` is what the files of one commit define for one feature, fully
resolved: effective policy (defaults merged), prompt, included partials, the catalog
entries of its models. `VersionContent` is its stored form: written by the loader, kept
as canonical JSON in `versions.content`, served to clients inside resolved versions and
snapshot files, and read back typed everywhere. The version's `content_hash` is the
sha256 of that canonical JSON, so a renamed key fails here, at parse time, not later.

`format` versions the layout of the snapshot. Format 1 is written without the field,
which keeps the hashes of versions stored before it existed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from registry.definitions.policy import Policy
from registry.definitions.prompt import InputSpec, PromptTemplate

if TYPE_CHECKING:
    from registry.render import CompiledPrompt

FORMAT = 1


class _Content(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class PromptContent(_Content):
    """The prompt file of a version, as it was read."""

    path: str
    source: str
    name: str
    body: str
    body_line: int
    dialect: str
    description: str | None = None
    inputs: dict[str, dict[str, Any]]  # as declared: only the keys the file set
    sample: dict[str, Any] | None = None
    model: dict[str, Any] | None = None  # a Prompty file's own model section


class ModelContent(_Content):
    """The catalog entry of one model of the chain, pinned in the version."""

    model: str
    # int | float: a stored 0 stays 0 (a float would dump as 0.0 and change the hash)
    input_usd_per_token: int | float | None
    output_usd_per_token: int | float | None
    context_window: int | None
    max_output_tokens: int | None
    tokenizer: str


class VersionContent(_Content):
    """Everything that determines a version's behaviour, as stored."""

    format: int = FORMAT
    feature: str
    policy_path: str
    policy: dict[str, Any]  # the effective policy as written, defaults merged
    prompt: PromptContent
    prompts_dir: str
    policies_dir: str
    partials: dict[str, str]  # repository path -> source, the include closure
    models: dict[str, ModelContent]

    @classmethod
    def from_json(cls, text: str | bytes) -> VersionContent:
        """Parse a stored snapshot."""
        return cls.model_validate_json(text)

    def as_dict(self) -> dict[str, Any]:
        """The snapshot as plain JSON data (what clients receive and hash)."""
        return self.model_dump(mode="json", exclude={"format"} if self.format == FORMAT else None)

    def canonical_json(self) -> str:
        """Canonical JSON: sorted keys, no whitespace."""
        return canonical(self.as_dict())

    @cached_property
    def content_hash(self) -> str:
        """Lowercase hex sha256 of the canonical JSON."""
        return digest(self.as_dict())

    @cached_property
    def policy_model(self) -> Policy:
        """The effective policy, validated."""
        return Policy.model_validate(self.policy)

    def definition(self) -> FeatureDefinition:
        """The feature this snapshot defines (no files needed)."""
        return FeatureDefinition.from_content(self)


def canonical(data: Any) -> str:
    """JSON with sorted keys and no whitespace: the form a content hash covers."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def digest(data: Any) -> str:
    """sha256 (lowercase hex) of `data`'s canonical JSON."""
    return hashlib.sha256(canonical(data).encode()).hexdigest()


@dataclass(frozen=True)
class Layout:
    """Where prompts and policies live inside the repository."""

    prompts_dir: str = "prompts"
    policies_dir: str = "policies"


@dataclass(frozen=True)
class FeatureDefinition:
    """One feature as the files of a commit define it, fully resolved."""

    name: str
    policy_path: str
    policy: Policy
    policy_data: dict[str, Any]  # the effective policy as written, defaults merged
    prompt: PromptTemplate
    partials: dict[str, str]  # template name -> source, the include closure
    models: dict[str, dict[str, Any]]  # catalog entries of the chain's models
    layout: Layout = field(default_factory=Layout)

    @property
    def prompt_path(self) -> str:
        """Repository path of the prompt file."""
        return self.prompt.path

    @cached_property
    def content(self) -> VersionContent:
        """The stored form of this definition."""
        prompt, layout = self.prompt, self.layout
        return VersionContent(
            feature=self.name,
            policy_path=self.policy_path,
            policy=self.policy_data,
            prompt=PromptContent(
                path=prompt.path,
                source=prompt.source or prompt.body,
                name=prompt.name,
                body=prompt.body,
                body_line=prompt.body_line,
                dialect=prompt.dialect,
                description=prompt.description,
                inputs={
                    n: spec.model_dump(mode="json", exclude_unset=True)
                    for n, spec in prompt.inputs.items()
                },
                sample=prompt.sample,
                model=prompt.model,
            ),
            prompts_dir=layout.prompts_dir,
            policies_dir=layout.policies_dir,
            partials={f"{layout.prompts_dir}/{n}": s for n, s in sorted(self.partials.items())},
            models={n: ModelContent.model_validate(m) for n, m in self.models.items()},
        )

    @property
    def content_hash(self) -> str:
        """The content hash of the version this definition makes."""
        return self.content.content_hash

    @classmethod
    def from_content(cls, content: VersionContent) -> FeatureDefinition:
        """Rebuild the definition from a stored snapshot."""
        raw = content.prompt
        layout = Layout(content.prompts_dir, content.policies_dir)
        prompt = PromptTemplate(
            path=raw.path,
            name=raw.name,
            body=raw.body,
            body_line=raw.body_line,
            description=raw.description,
            inputs={n: InputSpec.model_validate(v) for n, v in raw.inputs.items()},
            sample=raw.sample,
            dialect="prompty" if raw.dialect == "prompty" else "jinja",
            model=raw.model,
            source=raw.source,
        )
        cut = len(layout.prompts_dir) + 1
        return cls(
            name=content.feature,
            policy_path=content.policy_path,
            policy=content.policy_model,
            policy_data=content.policy,
            prompt=prompt,
            partials={path[cut:]: text for path, text in content.partials.items()},
            models={n: m.model_dump(mode="json") for n, m in content.models.items()},
            layout=layout,
        )

    def compiled(self) -> CompiledPrompt:
        """The compiled (cached) template of this feature."""
        from registry.render import compile_prompt

        return compile_prompt(self.prompt, self.partials, feature=self.name)
