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
