"""Loading a registry: prompt files, includes, symlinks, samples (SPEC §1.1, §8).

Each bad input is checked through `RegistryLoader` and through `promptreg validate`
(text, github and json formats), naming the file and line of the problem.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from support.features import BASE_PROMPT as PROMPT
from typer.testing import CliRunner

from registry.cli import app
from registry.definitions.load import Layout, RegistryLoader
from registry.definitions.tree import DirTree
from registry.errors import RenderError

# Lines of PROMPT: 1 "---", 2 inputs, 3 question, 4 sample, 5 its value, 6 "---",
# 7 system:, 8-9 text, 10 user:, 11 {{ question }}; appended text starts at line 12.
ASK = "prompts/demo/ask.jinja"
SAMPLE_LINE = 4
NO_SAMPLE = PROMPT.replace("sample:\n  question: What is up?\n", "")


def with_body(extra: str, *, sample: bool = True) -> str:
    """PROMPT (or the one without a sample) with `extra` appended from line 12 (10 without)."""
    return (PROMPT if sample else NO_SAMPLE) + extra


# -- the prompt file ----------------------------------------------------------------


def test_malformed_frontmatter_yaml(registry, check):
    checked = check(registry({ASK: PROMPT.replace("sample:\n", "sample: [\n")}))
    checked.has(ASK, 6, "invalid YAML")
    assert checked.loaded.features == {}


def test_frontmatter_not_closed(registry, check):
    checked = check(registry({ASK: "---\ninputs:\n  question: {type: string}\n{{ question }}\n"}))
    checked.has(ASK, 1, "frontmatter opened with '---' on line 1 is never closed")


def test_unknown_frontmatter_key(registry, check):
    checked = check(registry({ASK: PROMPT.replace("sample:\n", "colour: 1\nsample:\n")}))
    checked.has(ASK, 4, "unknown key 'colour'")


def test_unknown_input_type(registry, check):
    checked = check(registry({ASK: PROMPT.replace("{type: string}", "{type: text}")}))
    checked.has(ASK, 3, "inputs.question.type: Input should be 'string'")


@pytest.mark.parametrize(
    ("declared", "problem"),
    [
        (
            "{type: string, enum: [a, b], default: c}",
            "the default must be one of 'a', 'b', got 'c'",
        ),
        ("{type: integer, default: many}", "the default must be of type integer, got string"),
        ("{type: string, max_length: 3, default: long}", "the default is 4 long, over its max"),
    ],
)
def test_a_default_its_own_input_would_refuse(registry, check, declared, problem):
    prompt = PROMPT.replace("sample:\n", f"  tone: {declared}\nsample:\n")
    checked = check(registry({ASK: prompt}))
    checked.has(ASK, 4, f"inputs.tone: {problem}")


def test_template_syntax_error(registry, check):
    checked = check(registry({ASK: PROMPT.replace("{{ question }}", "{{ question }")}))
    checked.has(ASK, 11, "template syntax error")


def test_invalid_utf8(registry, check):
    checked = check(registry({ASK: PROMPT.encode() + b"Caf\xe9 menu\n"}))
    checked.has(ASK, 12, "not valid UTF-8 (byte 0xe9)")


def test_empty_prompt_file(registry, check):
    check(registry({ASK: ""})).has(ASK, 1, "empty prompt file")


def test_empty_body_after_frontmatter(registry, check):
    check(registry({ASK: "---\ninputs: {}\n---\n\n  \n"})).has(ASK, 4, "the prompt body is empty")


def test_bom_and_crlf_are_accepted(registry, load):
    loaded = load(registry({ASK: "\ufeff" + PROMPT.replace("\n", "\r\n")}))
    assert loaded.problems == []
    assert sorted(loaded.features) == ["demo.ask"]


# -- variables and includes ---------------------------------------------------------


def test_undeclared_variable(registry, check):
    checked = check(registry({ASK: with_body("Reply in {{ language }}.\n")}))
    checked.has(ASK, 12, "variable 'language' is used but not declared in inputs")


def test_undeclared_variable_in_a_partial_names_the_partial(registry, check):
    root = registry(
        {
            ASK: with_body('{% include "partials/tone.jinja" %}\n'),
            "prompts/partials/tone.jinja": "Be kind.\nUse a {{ tone }} tone.\n",
        }
    )
    check(root).has("prompts/partials/tone.jinja", 2, "variable 'tone' is used but not declared")


def test_include_of_a_missing_partial(registry, check):
    checked = check(registry({ASK: with_body('{% include "partials/missing.jinja" %}\n')}))
    checked.has(ASK, 12, "included template 'partials/missing.jinja' not found under prompts/")


def test_import_of_a_missing_partial(registry, check):
    text = with_body('{% import "partials/macros.jinja" as m %}{{ m.hello() }}\n')
    check(registry({ASK: text})).has(ASK, 12, "'partials/macros.jinja' not found")


def test_include_name_must_be_literal(registry, check):
    checked = check(registry({ASK: with_body("{% include question %}\n")}))
    checked.has(ASK, 12, "include/import names must be literal strings")


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("../secret.jinja", "'../secret.jinja' leaves the repository"),
        ("../../../etc/hostname", "'../../../etc/hostname' leaves the repository"),
        ("/etc/hostname", "'/etc/hostname' is an absolute path"),
    ],
)
def test_include_outside_prompts_is_refused(registry, check, name, fragment):
    root = registry({ASK: with_body(f'{{% include "{name}" %}}\n'), "secret.jinja": "TOP-SECRET"})
    checked = check(root)
    checked.has(ASK, 12, f"include refused: {fragment}")
    assert "TOP-SECRET" not in checked.text


def test_nested_and_relative_includes_load(registry, load):
    root = registry(
        {
            ASK: with_body('{% include "partials/a.jinja" %}\n'),
            "prompts/partials/a.jinja": 'A {% include "partials/b.jinja" %}\n',
            "prompts/partials/b.jinja": 'B {% include "./c.jinja" %}',
            "prompts/partials/c.jinja": "C",
        }
    )
    loaded = load(root)
    assert loaded.problems == []
    feature = loaded.features["demo.ask"]
    assert sorted(feature.partials) == ["partials/a.jinja", "partials/b.jinja", "partials/c.jinja"]


# -- symlinks -----------------------------------------------------------------------


@pytest.mark.parametrize("target", ["/etc/hostname", "outside"])
@pytest.mark.parametrize("file", [ASK, "policies/demo/ask.yaml"])
def test_prompt_or_policy_symlinked_out_of_the_repo(registry, check, outside, file, target):
    root = registry()
    (root / file).unlink()
    os.symlink(outside / Path(file).name if target == "outside" else target, root / file)
    checked = check(root)
    checked.has(file, 1, "points outside the repository")
    assert checked.loaded.features == {}
    assert Path("/etc/hostname").read_text().strip() not in checked.text


def test_prompt_folder_symlinked_out_of_the_repo(registry, check, outside, base_policy):
    root = registry({"policies/ext/ask.yaml": base_policy})
    os.symlink(outside, root / "prompts" / "ext")
    checked = check(root)
    checked.has("prompts/ext", 1, "points outside the repository")
    assert sorted(checked.loaded.features) == ["demo.ask"]


def test_partial_symlinked_out_of_the_repo(registry, load, outside):
    root = registry({ASK: with_body('{% include "demo/host.jinja" %}\n')})
    os.symlink(outside / "ask.jinja", root / "prompts" / "demo" / "host.jinja")
    loaded = load(root)
    assert any(
        p.file == ASK and p.line == 12 and "outside the repository" in p.message
        for p in loaded.problems
    )


def test_a_symlink_is_reported_once(registry, load):
    root = registry()
    (root / ASK).unlink()
    os.symlink("/etc/hostname", root / ASK)
    assert len([p for p in load(root).problems if p.file == ASK]) == 1


# -- samples: rendered by validate, sandboxed, limited, budgeted --------------------


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("{{ ''.__class__.__mro__ }}", "access to attribute '__class__' of 'str' object is unsafe"),
        ("{{ cycler.__init__.__globals__ }}", "access to attribute '__init__'"),
    ],
    ids=["mro", "globals"],
)
def test_ssti_in_a_sampled_prompt_fails_validation(registry, check, expression, fragment):
    checked = check(registry({ASK: with_body(expression + "\n")}))
    checked.has(ASK, SAMPLE_LINE, "sample does not render: demo.ask: refused by the sandbox")
    checked.has(ASK, SAMPLE_LINE, fragment)


def test_ssti_without_a_sample_is_caught_at_render_time(registry, load):
    loaded = load(registry({ASK: with_body("{{ ''.__class__.__mro__ }}\n", sample=False)}))
    feature = loaded.features["demo.ask"]  # nothing renders it at load time
    with pytest.raises(RenderError, match="refused by the sandbox"):
        feature.compiled().render({"question": "q"})


def test_huge_range_is_stopped_by_the_loop_limit(registry, check):
    checked = check(registry({ASK: with_body("{% for i in range(10**9) %}x{% endfor %}\n")}))
    checked.has(ASK, SAMPLE_LINE, "loops exceed 100000 iterations")


def test_output_size_limit(registry, check):
    text = with_body("{% for i in range(50000) %}0123456789{% endfor %}\n")
    check(registry({ASK: text})).has(ASK, SAMPLE_LINE, "render output exceeds 200000 characters")


def test_sample_that_fails_its_input_types(registry, check):
    root = registry({ASK: PROMPT.replace("question: What is up?", "question: 5")})
    check(root).has(ASK, SAMPLE_LINE, "input 'question' must be of type string, got integer")


def test_sample_over_budget_fails_with_the_numbers(registry, check, base_policy):
    long_sample = PROMPT.replace("What is up?", "hello " * 500)
    root = registry(
        {ASK: long_sample, "policies/demo/ask.yaml": base_policy.replace("4000", "600")}
    )
    checked = check(root)
    problem = next(p for p in checked.loaded.problems if p.file == ASK)
    assert problem.line == SAMPLE_LINE
    found = re.search(
        r"estimated request of (\d+) tokens \((\d+) input \+ (\d+) max output on gpt-4o\) "
        r"exceeds budget.max_request_tokens (\d+)",
        problem.message,
    )
    assert found, problem.message
    total, input_tokens, max_output, limit = map(int, found.groups())
    assert (max_output, limit) == (200, 600)
    assert total == input_tokens + max_output > limit
    checked.has(ASK, SAMPLE_LINE, "exceeds budget.max_request_tokens 600")


def test_sample_is_not_rendered_when_samples_are_off(registry):
    root = registry({ASK: with_body("{{ ''.__class__ }}\n")})
    loaded = RegistryLoader(DirTree(root), samples=False).load()
    assert loaded.problems == []


# -- layout and side effects --------------------------------------------------------


def test_custom_folders(registry, base_policy, base_prompt):
    root = registry(
        {"ai/policies/x.yaml": base_policy, "ai/prompts/x.jinja": base_prompt}, base=False
    )
    loaded = RegistryLoader(DirTree(root), Layout("ai/prompts", "ai/policies")).load()
    assert loaded.problems == []
    assert sorted(loaded.features) == ["x"]
    result = CliRunner().invoke(
        app,
        ["validate", str(root), "--prompts-dir", "ai/prompts", "--policies-dir", "ai/policies"],
    )
    assert result.exit_code == 0, result.output


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            stat = path.lstat()
            out[str(path.relative_to(root))] = (
                path.read_bytes() if path.is_file() else b"",
                stat.st_mtime_ns,
            )
    return out


@pytest.mark.parametrize("broken", [False, True], ids=["valid", "invalid"])
def test_validate_writes_nothing(registry, broken):
    extra = {ASK: with_body("{{ nope }}\n")} if broken else {}
    root = registry({**extra, "prompts/partials/tone.jinja": "Be kind.\n"})
    before = _snapshot(root.parent)  # the repository and the working directory around it
    for fmt in ("text", "github", "json"):
        result = CliRunner().invoke(app, ["validate", str(root), "--format", fmt])
        assert result.exit_code == (1 if broken else 0), result.output
    assert _snapshot(root.parent) == before
