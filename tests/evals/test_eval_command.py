"""`promptreg eval` (SPEC §12) against a real local provider, through the real openai SDK
adapter and the client library's guarded call: pass, fail, base vs head, the cache,
fallback, budget, repeats, --model, JUnit, and the errors that stop a run."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from .conftest import LABELS, POLICY, cases_of, cli, eval_json, files, prompt, run_eval

BETTER = LABELS.replace("bug: crashes, errors, broken pages", "bug: crashes, errors, freezes")
WORSE = LABELS.replace("billing: payments, refunds, invoices", "billing: invoices")


def test_every_case_passes(repo, provider):
    data = eval_json(repo, provider, code=0)
    (feature,) = data["features"]
    assert feature["feature"] == "triage"
    assert feature["pass_rate"] == 1.0
    assert (feature["passed"], feature["total"], feature["threshold"]) == (3, 3, 1.0)
    assert "base_pass_rate" not in feature
    cases = cases_of(data)
    refund = cases["refund is billing"]
    assert refund["passed"] is True and refund["answer"] == "billing"
    assert refund["failures"] == [] and refund["outcome"] == "ok"
    assert refund["model"] == "gpt-4o-mini"
    assert refund["tokens"]["input"] > 0 and refund["tokens"]["output"] == 1
    assert refund["cost_usd"] > 0 and refund["latency_ms"] > 0
    # one request per case, to the first model of the chain; no judge, no retries
    assert provider.requests == {"gpt-4o-mini": 3}


def test_text_report_is_the_default(repo, provider):
    result = run_eval(repo, provider, code=0)
    assert "PASS triage: 100% (3/3), threshold 100%" in result.stdout
    assert "✓ refund is billing" in result.stdout
    assert "1 feature(s): 1 passed, 0 failed" in result.stdout


def test_a_pass_rate_under_the_threshold_fails_the_run(repo, provider):
    repo.write({"prompts/triage.jinja": prompt(WORSE)})
    repo.write(
        {
            "evals/triage.yaml": files()["evals/triage.yaml"].replace(
                "threshold: 1", "threshold: 0.7"
            )
        }
    )
    data = eval_json(repo, provider, code=1)
    (feature,) = data["features"]
    assert feature["passed"] == 2 and feature["total"] == 3
    assert feature["pass_rate"] == pytest.approx(2 / 3)
    assert feature["ok"] is False and feature["reasons"] == ["under its threshold of 70%"]
    refund = cases_of(data)["refund is billing"]
    assert refund["passed"] is False
    assert refund["failures"] == ["equals: expected 'billing', got 'other'"]
    for output in ("text", "markdown", "junit"):
        assert run_eval(repo, provider, "--format", output).exit_code == 1


def test_a_pass_rate_equal_to_the_threshold_passes(repo, provider):
    repo.write({"prompts/triage.jinja": prompt(WORSE)})
    cases = files()["evals/triage.yaml"].replace("threshold: 1", "threshold: 0.6666666666666666")
    repo.write({"evals/triage.yaml": cases})
    assert eval_json(repo, provider, code=0)["features"][0]["ok"] is True
    repo.write({"evals/triage.yaml": cases.replace("0.6666666666666666", "0.67")})
    assert eval_json(repo, provider, code=1)["features"][0]["ok"] is False


def test_base_and_head_are_compared_and_a_better_prompt_passes(repo, provider):
    repo.write({"evals/triage.yaml": files()["evals/triage.yaml"] + FREEZE_CASE})
    repo.commit("a case the base prompt fails")
    repo.write({"prompts/triage.jinja": prompt(BETTER)})
    data = eval_json(repo, provider, "--base", "main", code=0)
    assert data["base"] == "main" and data["base_commit"] == repo.head
    (feature,) = data["features"]
    assert feature["base_pass_rate"] == 0.75 and feature["pass_rate"] == 1.0
    freeze = cases_of(data)["a freeze is a bug"]
    assert freeze["passed"] is True and freeze["answer"] == "bug"
    assert freeze["base"]["passed"] is False and freeze["base"]["answer"] == "other"
    assert freeze["base"]["tokens"]["input"] > 0

    text = run_eval(repo, provider, "--base", "main", code=0).stdout
    assert "PASS triage: 75% (3/4) → 100% (4/4), threshold 100%" in text
    assert "✓ a freeze is a bug  [FAIL → pass]" in text
    markdown = run_eval(repo, provider, "--base", "main", "--format", "markdown", code=0).stdout
    assert "| ✅ | `triage` | 75% (3/4) → **100% (4/4)** | 100% |" in markdown
    assert "| a freeze is a bug | ❌ | ✅ | ok |" in markdown


FREEZE_CASE = """\
  - name: a freeze is a bug
    vars: {message: The screen freezes after login}
    expect:
      - equals: bug
"""


def test_any_drop_against_the_base_fails_even_above_the_threshold(repo, provider):
    cases = files()["evals/triage.yaml"].replace("threshold: 1", "threshold: 0.5")
    repo.commit("a lower bar", {"evals/triage.yaml": cases})
    repo.write({"prompts/triage.jinja": prompt(WORSE)})
    data = eval_json(repo, provider, "--base", "main", code=1)
    (feature,) = data["features"]
    assert feature["pass_rate"] == pytest.approx(2 / 3) and feature["base_pass_rate"] == 1.0
    assert feature["reasons"] == ["pass rate dropped from 100%"]
    markdown = run_eval(repo, provider, "--base", "main", "--format", "markdown").stdout
    assert "**❌ `triage`**: pass rate dropped from 100%." in markdown
    assert "`equals: expected 'billing', got 'other'`" in markdown


def test_the_unchanged_base_side_costs_no_request(repo, provider):
    repo.write({"policies/triage.yaml": POLICY.replace("400", "500")})  # same messages
    data = eval_json(repo, provider, "--base", "main", code=0)
    assert data["features"][0]["base_pass_rate"] == 1.0
    assert provider.total == 3  # each distinct request once, for both sides


def test_a_second_run_is_answered_from_the_cache(repo, provider):
    provider.delay = 0.25  # far above a cache lookup: the latency a cached case shows is telling
    first = eval_json(repo, provider, code=0)
    assert provider.total == 3
    assert not any(c["cached"] for c in cases_of(first).values())
    second = eval_json(repo, provider, code=0)
    assert provider.total == 3  # no request at all
    again = cases_of(second)
    assert all(c["cached"] for c in again.values())
    for name, case in cases_of(first).items():
        assert again[name]["answer"] == case["answer"]
        assert again[name]["tokens"] == case["tokens"]
        assert again[name]["cost_usd"] == case["cost_usd"]
        # a cached answer keeps the latency the provider took (plus this run's overhead),
        # not the few milliseconds of reading it back
        assert case["latency_ms"] >= 250 and again[name]["latency_ms"] >= 250
    eval_json(repo, provider, "--no-cache", code=0)
    assert provider.total == 6


def test_a_prompt_change_misses_the_cache(repo, provider):
    eval_json(repo, provider, code=0)
    repo.write({"prompts/triage.jinja": prompt(BETTER)})
    eval_json(repo, provider, code=0)
    assert provider.total == 6


def test_the_chain_falls_back_when_the_first_model_answers_500(repo, provider):
    provider.fail("gpt-4o-mini", 500)
    data = eval_json(repo, provider, code=0)
    for case in cases_of(data).values():
        assert case["passed"] is True
        assert case["outcome"] == "fallback" and case["model"] == "gpt-4.1-mini"
    # max_retries 0: one failed try of the first model per case, then the second answers
    assert provider.requests == {"gpt-4o-mini": 3, "gpt-4.1-mini": 3}


def test_every_model_failing_is_a_failed_case_with_the_degraded_outcome(repo, provider):
    provider.fail("gpt-4o-mini", 500)
    provider.fail("gpt-4.1-mini", 503)
    result = run_eval(repo, provider, "--format", "json", "triage", code=1)
    assert "3 case run(s) got no answer from the provider" in result.stderr
    data = eval_json(repo, provider, code=1)
    hello = cases_of(data)["hello is other"]
    assert hello["passed"] is False and hello["outcome"] == "degraded"
    assert hello["answer"] is None  # the degraded message is not an answer to grade
    assert hello["failures"][0].startswith("degraded: every model failed")


def test_an_over_budget_case_is_reported_and_not_sent(repo, provider):
    long = " ".join(["refund"] * 600)
    repo.write(
        {"evals/triage.yaml": f"cases:\n  - name: too long\n    vars: {{message: {long}}}\n"}
    )
    data = eval_json(repo, provider, code=1)
    case = cases_of(data)["too long"]
    assert case["passed"] is False and case["outcome"] == "rejected"
    assert case["answer"] is None and case["cost_usd"] is None
    assert "exceeds budget.max_request_tokens of 400" in case["failures"][0]
    assert provider.total == 0


def test_repeat_runs_each_case_n_times_as_separate_samples(repo, provider):
    data = eval_json(repo, provider, "--repeat", "3", "--concurrency", "8", code=0)
    (feature,) = data["features"]
    assert feature["total"] == 9
    assert sorted(c["repeat"] for c in feature["cases"] if c["name"] == "crash is a bug") == [
        1,
        2,
        3,
    ]
    assert provider.total == 9
    eval_json(repo, provider, code=0)  # the first sample of each is cached already
    assert provider.total == 9


def test_model_replaces_the_chain(repo, provider):
    provider.fail("gpt-4o-mini", 500)
    data = eval_json(repo, provider, "--model", "gpt-4o", code=0)
    assert {c["model"] for c in cases_of(data).values()} == {"gpt-4o"}
    assert provider.requests == {"gpt-4o": 3}


def test_junit_is_valid_xml_with_one_testcase_per_case_and_repeat(repo, provider):
    repo.write({"prompts/triage.jinja": prompt(WORSE)})
    result = run_eval(repo, provider, "--format", "junit", "--repeat", "2", code=1)
    root = ET.fromstring(result.stdout)
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "triage" and suite.get("file") == "evals/triage.yaml"
    cases = suite.findall("testcase")
    assert len(cases) == 6 and suite.get("tests") == "6"
    assert {c.get("name") for c in cases} >= {"refund is billing [1]", "refund is billing [2]"}
    failed = [c for c in cases if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["refund is billing [1]", "refund is billing [2]"]
    assert suite.get("failures") == "2" and suite.get("errors") == "0"
    failure = failed[0].find("failure")
    assert failure is not None and "expected 'billing', got 'other'" in failure.get("message", "")
    assert all(float(c.get("time", "-1")) >= 0 for c in cases)


def test_a_failing_render_assertion_fails_its_case(repo, provider):
    cases = files()["evals/triage.yaml"].replace("text: exactly one label", "text: exactly two")
    repo.write({"evals/triage.yaml": cases})
    data = eval_json(repo, provider, code=1)
    refund = cases_of(data)["refund is billing"]
    assert refund["passed"] is False and refund["answer"] == "billing"
    assert refund["failures"] == ["render contains: no system message contains 'exactly two'"]


def test_without_features_every_feature_with_cases_runs_and_names_select(repo, provider):
    repo.write(
        {
            "prompts/other.jinja": "---\ninputs: {name: {type: string}}\n---\nHi {{ name }}\n",
            "policies/other.yaml": POLICY,
        }
    )
    data = eval_json(repo, provider, code=0)
    assert [f["feature"] for f in data["features"]] == ["triage"]  # `other` has no cases
    assert eval_json(repo, provider, "triage", code=0)["features"][0]["feature"] == "triage"
    missing = run_eval(repo, provider, "other", code=2)
    assert "feature 'other' has no cases: write them in evals/other.yaml" in missing.stderr
    unknown = run_eval(repo, provider, "nope", code=2)
    assert "unknown feature 'nope'" in unknown.stderr


def test_errors_are_one_line_and_stop_before_any_request(repo, provider):
    repo.write({"evals/triage.yaml": "cases:\n  - name: x\n    expect:\n      - equal: billing\n"})
    result = run_eval(repo, provider, code=2)
    assert "evals/triage.yaml:4: cases.0.expect.0: unknown assertion key 'equal'" in result.stderr
    assert provider.total == 0

    repo.write(files())
    bad = cli("eval", "--repo", repo.path, "--provider", "localhost:1234")
    assert bad.exit_code == 2 and "--provider must be an http(s) base URL" in bad.stderr
    keyless = cli("eval", "--repo", repo.path)
    assert keyless.exit_code == 2
    assert "set OPENAI_API_KEY, or pass --provider URL" in keyless.stderr
    model = run_eval(repo, provider, "--model", "no-such-model", code=2)
    assert "--model 'no-such-model' is not in the catalog" in model.stderr
    base = run_eval(repo, provider, "--base", "no-such-ref", code=2)
    assert "--base: ref 'no-such-ref' does not exist" in base.stderr
    fmt = run_eval(repo, provider, "--format", "yaml", code=2)
    assert "--format must be one of text, markdown, json, junit" in fmt.stderr
    assert provider.total == 0
    for result in (bad, keyless, model, base, fmt):
        assert "Traceback" not in result.stderr + result.stdout


def test_a_case_the_base_prompt_cannot_take_is_skipped_on_the_base_side(repo, provider):
    base_prompt = prompt().replace("  channel: {type: string, default: email}\n", "")
    base_prompt = base_prompt.replace("Channel: {{ channel }} | Ticket", "Ticket |")
    cases = files()["evals/triage.yaml"].replace(
        "{message: Hello there, channel: chat}", "{message: Hi}"
    )
    repo.commit("no channel yet", {"prompts/triage.jinja": base_prompt, "evals/triage.yaml": cases})
    repo.write(files())  # the pull request adds `channel`, and a case that sets it
    data = eval_json(repo, provider, "--base", "main", code=0)
    (feature,) = data["features"]
    assert (feature["base_passed"], feature["base_total"], feature["base_pass_rate"]) == (2, 2, 1.0)
    hello = cases_of(data)["hello is other"]
    assert hello["passed"] is True
    assert hello["base"]["outcome"] == "skipped" and hello["base"]["passed"] is False
    assert hello["base"]["failures"] == ["not run: unknown input(s) 'channel'"]
    text = run_eval(repo, provider, "--base", "main").stdout
    assert "✓ hello is other  [skip → pass]" in text
    assert "before: not run: unknown input(s) 'channel'" in text


def test_a_feature_new_in_the_pull_request_has_no_base_pass_rate(repo, provider):
    repo.rename("policies/triage.yaml", "policies/route.yaml")
    repo.rename("evals/triage.yaml", "evals/route.yaml")
    repo.write({"policies/route.yaml": "prompt: triage\n" + POLICY})
    data = eval_json(repo, provider, "--base", "main", code=0)
    (feature,) = data["features"]
    assert feature["feature"] == "route" and feature["pass_rate"] == 1.0
    assert feature["base_state"] == "missing" and feature["base_pass_rate"] is None
    assert feature["base_note"] == "no feature route at main"
    assert all(c["base"] is None for c in feature["cases"])
    markdown = run_eval(repo, provider, "--base", "main", "--format", "markdown").stdout
    assert "| ✅ | `route` | missing → **100% (3/3)** | 100% |" in markdown


def test_no_cases_anywhere_is_an_empty_report(repo, provider):
    repo.write({"evals/triage.yaml": None})
    assert eval_json(repo, provider, code=0) == {
        "ok": True,
        "base": None,
        "base_commit": None,
        "repeat": 1,
        "features": [],
    }
    assert "No feature has eval cases." in run_eval(repo, provider, "--format", "markdown").stdout
