"""Always-valid one-sided bounds: the normal-mixture confidence sequence.

A guard looks at the same growing window at the end of every interval. A fixed-sample
bound checked at each look is a new chance to cross it by luck, so its error rate grows
with the number of looks. A confidence sequence holds at every look at once:
P(the true value ever leaves the bound) <= alpha, however often and whenever we look
(Ville's inequality on a nonnegative supermartingale).

The boundary is Robbins' normal mixture (Robbins 1970; Howard, Ramdas, McAuliffe &
Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence sequences", Ann. Statist.
2021), mixed over one side only since a guard only cares about the candidate being worse:
the likelihood ratio exp(λS - λ²V/2) averaged over λ ~ half-normal(ρ²) is

    M(z, r) = 2 / sqrt(1 + r) · exp(z² r / (2 (1 + r))) · Φ(z sqrt(r / (1 + r)))

for a standardised sum z = S / sqrt(V) at intrinsic time r = ρ² V. The bound is the z
where M reaches 1/alpha. With a plug-in variance this is the one-sided asymptotic confidence
sequence of Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas ("Time-uniform central limit
theory and asymptotic confidence sequences", Ann. Statist. 2024); it is also the mixture
SPRT of Johari, Pekelis & Walsh ("Always valid inference", 2017/2022) read as intervals.
LaunchDarkly's guarded rollouts decide the same way: a sequential confidence interval on
the candidate-minus-original difference, a regression when it lies wholly on the worse side.

ρ only decides at which sample size the boundary is tightest; it must not depend on the
data. `tuned_time` puts the tightest point at a chosen count: the rollout's min_requests,
where a decision first becomes possible, so low-traffic features are not made to wait
longer than needed. It sets ρ² t_opt = -2 log α + log(1 - 2 log α), Waudby-Smith et al.'s
closed-form optimum for the two-sided boundary (the one-sided optimum is within 10% of
it). Beyond that count the boundary widens only like sqrt(log n): about 3.7 standard
errors there and 4.0 at 30 times as many requests, for alpha = 1/300.
"""

from __future__ import annotations

import math

_SQRT2 = math.sqrt(2.0)
_SQRT2PI = math.sqrt(2.0 * math.pi)


def tuned_time(n: float, n_opt: float, alpha: float) -> float:
    """The intrinsic time r of `n` observations for a boundary tightest at `n_opt` of them."""
    log_alpha = math.log(alpha)
    best = -2.0 * log_alpha + math.log(1.0 - 2.0 * log_alpha)
    return best * n / max(n_opt, 1.0)


def boundary(r: float, alpha: float) -> float:
    """How many standard errors an estimate may stray above its mean at intrinsic time r.

    Solves u²/2 + log Φ(u) = log(1/α) - log 2 + ½ log(1 + r) for u, then z = u·sqrt((1+r)/r).
    The left side is increasing and convex, so Newton's method started right of the root
    converges from that side in a handful of steps.
    """
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha {alpha} must be between 0 and 0.5")
    if r <= 0.0:
        return math.inf
    target = -math.log(alpha) - math.log(2.0) + 0.5 * math.log1p(r)
    u = math.sqrt(2.0 * max(target, 0.0)) + 1.0
    for _ in range(50):
        cdf = 0.5 * math.erfc(-u / _SQRT2)
        excess = u * u / 2.0 + math.log(cdf) - target
        slope = u + math.exp(-u * u / 2.0) / _SQRT2PI / cdf
        u -= excess / slope
        if abs(excess) < 1e-12:
            break
    return u * math.sqrt((1.0 + r) / r)


def lower_bound(estimate: float, std_error: float, r: float, alpha: float) -> float:
    """The always-valid lower bound of a quantity estimated as `estimate` ± `std_error`."""
    if std_error <= 0.0:
        return estimate  # no spread: the estimate is the value (a fixed price, say)
    return estimate - boundary(r, alpha) * std_error
