"""Learning-rate schedule: linear warm-up, cosine decay, then constant at the floor (never cycles)."""

from __future__ import annotations

import math


def learning_rate(step: int, *, peak: float, warmup_steps: int, total_steps: int, floor: float) -> float:
    """Rate for optimizer step ``step`` (0-based)."""
    if warmup_steps > 0 and step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    decay_steps = max(total_steps - warmup_steps, 1)
    progress = min(max(step - warmup_steps, 0) / decay_steps, 1.0)  # clamped: stays at the floor afterwards
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def learning_rate_by_time(
    step: int, elapsed_s: float, *, peak: float, warmup_steps: int, time_limit_s: float, floor: float
) -> float:
    """Rate for a run bounded by wall time: linear warm-up over the first ``warmup_steps`` steps, times a cosine
    from ``peak`` to ``floor`` over the fraction of ``time_limit_s`` elapsed (at the floor once it has passed).

    For time-boxed runs, where the number of steps that fit in the time is not known in advance
    and a step-based schedule would stop with the rate still near its peak.
    """
    progress = min(max(elapsed_s / time_limit_s, 0.0), 1.0)
    rate = floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if warmup_steps > 0 and step < warmup_steps:
        rate *= (step + 1) / warmup_steps
    return rate
