"""Each assertion on an answer and on rendered messages, as SPEC §12 defines them."""

from __future__ import annotations

from typing import Any

import pytest

from registry.definitions.evals import Expect, RenderCheck
from registry.evals.assertions import check_answer, check_render


def answer_check(assertion: dict[str, Any], answer: str, tokens: int = 0) -> str | None:
    def no_judge(spec: Any) -> str | None:
        raise AssertionError("no judge here")

    return check_answer(
        Expect.model_validate(assertion), answer, count=lambda text: tokens, judge=no_judge
    )


@pytest.mark.parametrize(
    ("assertion", "answer", "failure"),
    [
        ({"equals": "billing"}, "  billing\n", None),  # exact after trimming whitespace
        ({"equals": "billing"}, "Billing", "equals: expected 'billing', got 'Billing'"),
        ({"equals": "billing"}, "billing.", "equals: expected 'billing', got 'billing.'"),
        ({"one_of": ["bug", "billing"]}, " billing ", None),
        (
            {"one_of": ["bug", "billing"]},
            "other",
            "one_of: got 'other', expected one of 'bug', 'billing'",
        ),
        ({"contains": "refund"}, "We will refund you", None),
        (
            {"contains": "Refund"},
            "We will refund you",
            "contains: 'Refund' not in the answer 'We will refund you'",
        ),
        ({"not_contains": "password"}, "Reset it in settings", None),
        (
            {"not_contains": "password"},
            "Send your password",
            "not_contains: 'password' found in the answer",
        ),
        ({"regex": r"\d{3}"}, "code 123 ok", None),  # searches, not a full match
        ({"regex": r"^\d+$"}, "code 123", "regex: /^\\d+$/ does not match the answer 'code 123'"),
        ({"json_schema": {"type": "object", "required": ["a"]}}, ' {"a": 1} ', None),
        ({"json_schema": {"type": "object"}}, "not json", "json_schema: the answer is not JSON"),
        (
            {"json_schema": {"properties": {"items": {"items": {"type": "number"}}}}},
            '{"items": [1, "two"]}',
            "json_schema: $.items[1]: 'two' is not of type 'number'",
        ),
    ],
)
def test_answer_assertions(assertion, answer, failure):
    found = answer_check(assertion, answer)
    if failure is None:
        assert found is None
    else:
        assert found is not None and found.startswith(failure), found


def test_max_tokens_counts_the_answer_with_the_given_tokenizer():
    assert answer_check({"max_tokens": 5}, "a b c", tokens=5) is None
    assert answer_check({"max_tokens": 5}, "a b c", tokens=6) == (
        "max_tokens: the answer is 6 tokens, over 5"
    )


def test_a_long_answer_is_cut_in_messages():
    failure = answer_check({"equals": "x"}, "word " * 100)
    assert failure is not None and failure.endswith("…'") and len(failure) < 140


MESSAGES = [
    {"role": "system", "content": "Answer with exactly one label."},
    {"role": "user", "content": "My invoice is wrong"},
    {"role": "assistant", "content": "Which invoice?"},
    {"role": "user", "content": "The March one"},
]


@pytest.mark.parametrize(
    ("assertion", "failure"),
    [
        ({"contains": "exactly one label"}, None),  # any role
        ({"contains": {"role": "system", "text": "exactly one label"}}, None),
        ({"contains": {"role": "user", "text": "exactly one label"}}, "contains: no user message"),
        ({"contains": {"role": "user", "text": "March"}}, None),  # any message of the role
        ({"not_contains": {"role": "system", "text": "invoice"}}, None),
        ({"not_contains": {"role": "user", "text": "invoice"}}, "not_contains: a user message"),
        ({"equals": {"role": "assistant", "text": " Which invoice? "}}, None),
        ({"equals": {"role": "user", "text": "March"}}, "equals: no user message equals 'March'"),
        ({"regex": {"role": "user", "text": "^The"}}, None),
        ({"regex": {"role": "system", "text": "^The"}}, "regex: no system message matches /^The/"),
    ],
)
def test_render_assertions_look_at_their_role_only(assertion, failure):
    found = check_render(RenderCheck.model_validate(assertion), MESSAGES, count=lambda: 0)
    if failure is None:
        assert found is None
    else:
        assert found is not None and found.startswith(failure), found


def test_a_render_max_tokens_counts_the_request():
    check = RenderCheck.model_validate({"max_tokens": 100})
    assert check_render(check, MESSAGES, count=lambda: 100) is None
    assert check_render(check, MESSAGES, count=lambda: 101) == (
        "max_tokens: the request is 101 input tokens, over 100"
    )
