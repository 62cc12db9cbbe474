"""`_models.yaml`: the registry's own additions and overrides to the model catalog.

The catalog itself (prices, context windows, tokenizers) comes from a maintained
library (see `registry.tokens`); this file lets a team price a private deployment or
correct an entry, in the same pull-request flow as the prompts.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from registry.definitions.prompt import PromptFileError, validate_model
from registry.definitions.yamlpos import load_yaml
from registry.errors import Problem


class ModelEntry(BaseModel):
    """One model's overrides; unset fields fall back to the library's catalog."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)

    input_usd_per_mtok: float | None = Field(default=None, ge=0)
    output_usd_per_mtok: float | None = Field(default=None, ge=0)
    context_window: int | None = Field(default=None, gt=0)
    max_output_tokens: int | None = Field(default=None, gt=0)
    tokenizer: str | None = Field(
        default=None,
        description="count tokens as this catalog model (e.g. gpt-4o) or encoding (o200k_base)",
    )


class ModelsFile(BaseModel):
    """The whole `_models.yaml` file."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)

    models: dict[str, ModelEntry] = Field(default_factory=dict)


def parse_models_file(text: str, path: str) -> dict[str, ModelEntry]:
    """Parse `_models.yaml`; raises PromptFileError/YamlProblem with file:line."""
    located = load_yaml(text, path)
    if located.data is None:
        return {}
    models = dict(validate_model(ModelsFile, located).models)
    from registry.tokens import encodings

    unknown = [
        Problem(
            path,
            located.line_of(("models", name, "tokenizer")),
            f"models.{name}.tokenizer: {entry.tokenizer!r} is neither an encoding "
            f"({', '.join(sorted(encodings.SPECS))}) nor a model the catalog knows",
        )
        for name, entry in models.items()
        if entry.tokenizer is not None and not encodings.known(entry.tokenizer)
    ]
    if unknown:
        raise PromptFileError(unknown)
    return models
