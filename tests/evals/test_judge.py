"""The `judge` assertion: the registry's judge prompt, run through the guarded call against
the provider, its score read robustly; and the score parser on its own."""

from __future__ import annotations

import pytest

from registry.evals.judge import Grade, parse_score

from .conftest import LABELS, cases_of, eval_json, prompt

JUDGED = """\
cases:
  - name: refund
    vars: {{message: I want a refund}}
    expect:
      - judge: {judge}
"""


def judged(judge: str) -> dict[str, str]:
    return {"evals/triage.yaml": JUDGED.format(judge=judge)}


def test_a_judge_that_scores_at_the_minimum_passes(repo, provider):
    repo.write(judged("""'The answer is "billing"'"""))
    data = eval_json(repo, provider, code=0)
    case = cases_of(data)["refund"]
    assert case["passed"] is True and case["answer"] == "billing"
    assert case["judge_cost_usd"] > 0
    # the feature's call, then the judge's, on the feature's first model by default
    assert provider.requests == {"gpt-4o-mini": 2}
    judge_request = provider.bodies[-1]
    assert judge_request["temperature"] == 0 and judge_request["max_completion_tokens"] == 300
    user = judge_request["messages"][-1]["content"]
    assert 'The answer is "billing"' in user and "<answer>\nbilling\n</answer>" in user


def test_a_low_score_fails_with_the_judge_reason(repo, provider):
    repo.write(judged("""{rubric: 'Offers a "refund"', model: gpt-4o, min_score: 3}"""))
    data = eval_json(repo, provider, code=1)
    case = cases_of(data)["refund"]
    assert case["failures"] == [
        "judge: 1/5 from gpt-4o, needs 3: \"The answer does not mention ['refund'].\""
    ]
    assert provider.requests == {"gpt-4o-mini": 1, "gpt-4o": 1}


def test_the_judge_is_cached_like_any_answer(repo, provider):
    repo.write(judged("""'The answer is "billing"'"""))
    eval_json(repo, provider, code=0)
    eval_json(repo, provider, code=0)
    assert provider.total == 2


def test_both_sides_are_graded_by_the_working_tree_judge(repo, provider):
    repo.commit("judged", judged("""'The answer is "billing"'"""))
    repo.write({"prompts/triage.jinja": prompt(LABELS.replace("refunds", "returns"))})
    data = eval_json(repo, provider, "--base", "main", code=1)
    case = cases_of(data)["refund"]
    assert case["base"]["passed"] is True and case["passed"] is False
    assert case["failures"][0].startswith("judge: 1/5 from gpt-4o-mini, needs 4")


def test_an_unavailable_judge_fails_the_case_without_a_grade(repo, provider):
    repo.write(judged("""{rubric: 'Says "billing"', model: gpt-4o}"""))
    provider.fail("gpt-4o", 500)
    data = eval_json(repo, provider, code=1)
    (failure,) = cases_of(data)["refund"]["failures"]
    assert failure.startswith("judge: no grade (degraded: every model failed (gpt-4o: ")


def test_a_judge_answer_without_a_score_fails_the_case(repo, provider):
    repo.write(judged("""'Says "billing"'"""))
    # no "rubric" in its system message: the provider's echo rule answers instead
    repo.write({"prompts/partials/judge.jinja": "system:\nGrade it.\nuser:\n{{ answer }}\n"})
    data = eval_json(repo, provider, code=1)
    (failure,) = cases_of(data)["refund"]["failures"]
    assert failure == "judge: no score from 1 to 5 in gpt-4o-mini's answer 'echo: billing'"


@pytest.mark.parametrize(
    ("text", "score", "reason"),
    [
        ('{"score": 4, "reason": "Cites the article."}', 4, "Cites the article."),
        ('```json\n{"score": "5/5", "reason": "ok"}\n```', 5, "ok"),
        ('{"score": 3.5}', 3.5, ""),
        ("Score: 8/10\nClear and correct.", 4, "Score: 8/10 Clear and correct."),
        ("The score is 2 out of 5.", 2, "The score is 2 out of 5."),
        ("**Score**: 5", 5, "**Score**: 5"),
        ("4", 4, "4"),
        ("3/5 - misses the menu path", 3, "3/5 - misses the menu path"),
        ("2024 was a good year", None, None),
        ("I cannot grade this.", None, None),
        ('{"score": 9}', None, None),
        ('{"score": true}', None, None),
        ('{"grade": 4}', None, None),
        ("", None, None),
    ],
)
def test_parse_score(text, score, reason):
    found = parse_score(text)
    if score is None:
        assert found is None
    else:
        assert found == Grade(score, reason)
