"""Valid registry files for a feature, for tests that describe repositories as file dicts.

Line numbers matter: tests name the line a problem must point at. `policy()` is six
lines, so `extra` starts on line 7; `prompt(include=...)` has its `{% include %}` on
line 7. `BASE_POLICY` and `BASE_PROMPT` are the base feature `demo.ask` of the
definitions tests (tests/definitions/conftest.py).
"""

from __future__ import annotations


def policy(
    max_output_tokens: int = 200,
    *,
    model: str = "gpt-4o",
    max_request_tokens: int = 4000,
    degraded: str = "Unavailable right now.",
    extra: str = "",
) -> str:
    """A valid policy file (one model, the required keys), plus `extra` lines."""
    return (
        "models:\n"
        f"  - model: {model}\n"
        f"max_output_tokens: {max_output_tokens}\n"
        "budget:\n"
        f"  max_request_tokens: {max_request_tokens}\n"
        f"degraded_message: {degraded}\n"
    ) + extra


def prompt(text: str = "Be helpful.", *, include: str | None = None) -> str:
    """A valid prompt; with `include`, its `{% include %}` is on line 7."""
    lines = ["---", "inputs:", "  question: {type: string}", "---", "system:", text]
    if include:
        lines.append(f'{{% include "{include}" %}}')
    lines += ["user:", "{{ question }}", ""]
    return "\n".join(lines)


def feature_files(name: str, max_output_tokens: int = 200, **prompt_kw: str) -> dict[str, str]:
    """The policy and prompt files of feature `name` (`a.x` -> policies/a/x.yaml …)."""
    rel = name.replace(".", "/")
    return {
        f"policies/{rel}.yaml": policy(max_output_tokens),
        f"prompts/{rel}.jinja": prompt(**prompt_kw),
    }


BASE_POLICY = policy()

# Lines: 1 "---", 2 inputs, 3 question, 4 sample, 5 its value, 6 "---", 7 system:,
# 8-9 text, 10 user:, 11 {{ question }}; appended text starts at line 12.
BASE_PROMPT = """\
---
inputs:
  question: {type: string}
sample:
  question: What is up?
---
system:
You are helpful.

user:
{{ question }}
"""
