"""The outcomes of a guarded call (SPEC §4), and how usage counts them.

The client library reports one per run, the server stores and sums them, stats and the
rollout guards read them: one vocabulary for all of them, importable anywhere.
"""

OK = "ok"
FALLBACK = "fallback"  # a later model of the chain answered
DEGRADED = "degraded"  # every model failed: the policy's degraded message was served
REJECTED = "rejected"  # over budget: no model was called
TIMEOUT = "timeout"  # the deadline passed
ERROR = "error"  # a stream broke after its first chunk
OUTCOMES = (OK, ERROR, TIMEOUT, FALLBACK, DEGRADED, REJECTED)

ERROR_OUTCOMES = (ERROR, TIMEOUT, DEGRADED)  # the user got no model answer
ANSWERED = (OK, FALLBACK)  # a model answered: its input tokens were really counted
NO_CALL = REJECTED  # no model was called: no latency, no tokens to compare
