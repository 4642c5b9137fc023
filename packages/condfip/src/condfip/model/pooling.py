"""Pooling the embedding head's row features over rows, chunk by chunk.

The paper pools by max alone. ``RowSummary`` optionally adds wider statistics: a feature map of every row and
node, pooled by max and/or mean, projected back to the embedding width by a layer that starts at zero, so a
model grown with it computes what the model without it did. Max is associative and a mean is a running sum and
count, so both are computed over any number of rows in chunks with bounded memory.

Axis legend: b datasets, n rows, d nodes, e embedding, w summary width.
"""

from __future__ import annotations

import torch
from torch import nn

from condfip.model.config import SUMMARY_STATISTICS, CondFiPConfig


class RowSummary(nn.Module):
    """Row features [b, n, d, e] -> wider features [b, n, d, w]; their pooled statistics -> [b, d, e]."""

    def __init__(self, config: CondFiPConfig) -> None:
        super().__init__()
        self.statistics = SUMMARY_STATISTICS[config.summary_statistics]
        self.features = nn.Sequential(nn.Linear(config.dim, config.summary_width), nn.GELU())
        self.out = nn.Linear(len(self.statistics) * config.summary_width, config.dim)
        nn.init.zeros_(self.out.weight)  # starts as the max-pool alone
        nn.init.zeros_(self.out.bias)

    def forward(self, pooled: dict[str, torch.Tensor]) -> torch.Tensor:
        """pooled: statistic name -> [b, d, w] -> the correction added to the max-pooled embedding [b, d, e]."""
        return self.out(torch.cat([pooled[name] for name in self.statistics], dim=-1))


class RowPool:
    """Running max of the row features and, with a summary, its statistics; rows arrive in chunks."""

    def __init__(self, summary: RowSummary | None) -> None:
        self.summary = summary
        self.max: torch.Tensor | None = None  # [b, d, e]
        self.wide_max: torch.Tensor | None = None  # [b, d, w]
        self.wide_sum: torch.Tensor | None = None  # [b, d, w]
        self.count: torch.Tensor | None = None  # [b, 1, 1] rows summed so far

    def add(self, features: torch.Tensor, real: torch.Tensor | None, *, in_mean: bool = True) -> None:
        """features: [b, n, d, e]; real: [b, n] bool (False: padding, never pooled) or None (all real).

        ``in_mean=False`` pools these rows into the maxima only (rows that will arrive again in a later chunk).
        """
        self.max = _running_max(self.max, _masked_max(features, real))
        if self.summary is None:
            return
        wide = self.summary.features(features)  # [b, n, d, w]
        if "max" in self.summary.statistics:
            self.wide_max = _running_max(self.wide_max, _masked_max(wide, real))
        if in_mean and "mean" in self.summary.statistics:
            if real is not None:
                wide = wide * real[:, :, None, None]
                count = real.sum(dim=1).to(wide.dtype)[:, None, None]  # [b, 1, 1]
            else:
                count = torch.full((wide.shape[0], 1, 1), wide.shape[1], dtype=wide.dtype, device=wide.device)
            total = wide.sum(dim=1)  # [b, d, w]
            self.wide_sum = total if self.wide_sum is None else self.wide_sum + total
            self.count = count if self.count is None else self.count + count

    def result(self) -> torch.Tensor:
        """The pooled embedding [b, d, e]: the max, plus the summary's correction."""
        if self.max is None:
            raise ValueError("no rows were pooled")
        if self.summary is None:
            return self.max
        pooled = {}
        if self.wide_max is not None:
            pooled["max"] = self.wide_max
        if self.wide_sum is not None:
            pooled["mean"] = self.wide_sum / self.count.clamp(min=1)
        return self.max + self.summary(pooled)


def _masked_max(features: torch.Tensor, real: torch.Tensor | None) -> torch.Tensor:
    """[b, n, d, k] -> [b, d, k], the max over real rows (-inf where a dataset has none in this chunk)."""
    if real is not None:
        features = features.masked_fill(~real[:, :, None, None], float("-inf"))
    return features.amax(dim=1)


def _running_max(current: torch.Tensor | None, new: torch.Tensor) -> torch.Tensor:
    return new if current is None else torch.maximum(current, new)
