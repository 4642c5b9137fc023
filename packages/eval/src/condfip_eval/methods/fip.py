"""FiP per dataset: the fixed-point transformer trained from scratch on one dataset, the graph as attention mask.

After Scetbon et al. (2024), as used for the Cond-FiP paper's baseline: embedding 128, 8 heads, one layer,
AdamW with learning rate 1e-4 and full-batch steps on the (standardized) context rows.

Model, one row at a time (axis legend: b datasets = 1, n rows, d nodes, e embedding):

- keys and values: ``x_j * C_j + P_j`` for every node j (learned per-node value scale C and position P);
- queries: the positions P (a node never sees its own value);
- one pre-LN block: DAG attention (node i attends to its parents only) then an MLP, each with a residual;
- head: LayerNorm then ``Linear(e, 1)`` per node gives ``F_hat(x)``.

Training minimizes the mean squared error between ``F_hat(x)`` and ``x`` on the context rows: since node i
only sees its parents, this regresses each node on its parents, and the noise is ``x - F_hat(x)``.
Generation iterates ``z <- F_hat(z) + n`` from ``z = n`` (clamping intervened nodes) as often as the
longest path of the graph plus one, which reaches the fixed point exactly on a DAG.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from condfip.core.dags import longest_path_length
from condfip.core.standardization import Standardization
from condfip.model.fixed_point import fixed_point_generate
from condfip_eval.methods.base import FittedSCM, Method
from dag_attention import DAGAttention, parents_from_adjacency

__all__ = ["FiPNetwork", "PerDatasetFiP", "longest_path_length"]


class FiPNetwork(nn.Module):
    """The fixed-point map ``F_hat``: rows [b, n, d] -> predictions [b, n, d]."""

    def __init__(self, num_nodes: int, *, dim: int = 128, num_heads: int = 8, mlp_dim: int = 256) -> None:
        super().__init__()
        self.value_scale = nn.Parameter(torch.randn(num_nodes, dim) / dim**0.5)  # C [d, e]
        self.position = nn.Parameter(torch.randn(num_nodes, dim) / dim**0.5)  # P [d, e]
        self.norm_query = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(dim)
        self.attention = DAGAttention(dim, num_heads)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))
        self.norm_out = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor, parents: torch.Tensor) -> torch.Tensor:
        """x: [b, n, d] standardized rows; parents: [b, d, d] bool (``parents[b, i, j]`` for ``j -> i``)."""
        values = x[..., None] * self.value_scale + self.position  # [b, n, d, e]
        queries = self.position.expand_as(values)  # [b, n, d, e]
        hidden = queries + self.attention(
            self.norm_query(queries), parents, context=self.norm_context(values)
        )
        hidden = hidden + self.mlp(self.norm_mlp(hidden))  # [b, n, d, e]
        return self.head(self.norm_out(hidden)).squeeze(-1)  # [b, n, d]


class _FittedFiP(FittedSCM):
    def __init__(
        self, adjacency: np.ndarray, network: FiPNetwork, standardization: Standardization, device
    ) -> None:
        super().__init__(adjacency)
        self.network = network.eval()
        self.standardization = standardization
        self.mean, self.std = standardization.mean, standardization.std
        self.device = device
        self.parents = parents_from_adjacency(torch.as_tensor(adjacency)[None]).to(device)  # [1, d, d]
        self.num_iterations = longest_path_length(adjacency) + 1

    @torch.no_grad()
    def _predict_tensor(self, z: torch.Tensor) -> torch.Tensor:
        """F_hat of standardized rows [1, n, d] float64 on the CPU, in standardized units (same shape)."""
        rows = z.to(device=self.device, dtype=torch.float32)  # [1, n, d]
        return self.network(rows, self.parents).double().cpu()

    def _predict(self, z: np.ndarray) -> np.ndarray:
        """F_hat of standardized rows [n, d], in standardized units."""
        return self._predict_tensor(torch.as_tensor(z, dtype=torch.float64)[None])[0].numpy()

    def _noise(self, x: np.ndarray) -> np.ndarray:
        z = self.standardization.data_to_standard(x, parameter="x")
        return (z - self._predict(z)) * self.std  # noise is scaled, not centred

    def _counterfactual(self, x: np.ndarray, interventions: dict[int, np.ndarray]) -> np.ndarray:
        self._standard_values(interventions)  # refuse values beyond the limit before the noise is abducted
        return super()._counterfactual(x, interventions)

    def _standard_values(self, interventions: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
        """Intervention values in standardized units; beyond ``STANDARD_LIMIT`` a ValueError names the node."""
        return {
            node: self.standardization.values_to_standard(given[:, None], np.array([node]))[:, 0]
            for node, given in interventions.items()
        }

    def _generate(self, noise: np.ndarray, interventions: dict[int, np.ndarray]) -> np.ndarray:
        n = torch.as_tensor(self.standardization.noise_to_standard(noise))[None]  # [1, n, d] float64
        intervened = torch.zeros(n.shape, dtype=torch.bool)  # [1, n, d]
        values = torch.zeros(n.shape, dtype=torch.float64)  # [1, n, d], standardized
        for node, standard in self._standard_values(interventions).items():
            intervened[0, :, node] = True
            values[0, :, node] = torch.as_tensor(standard)
        z = fixed_point_generate(
            self._predict_tensor,
            n,
            self.parents.cpu(),
            intervened=intervened if interventions else None,
            values=values,
            num_iterations=self.num_iterations,
        )
        rows = self.standardization.data_from_standard(z[0].numpy())  # [n, d]
        for node, given in interventions.items():  # held exactly: the round trip through units rounds
            rows[:, node] = given
        return rows


class PerDatasetFiP(Method):
    """FiP trained from scratch on one dataset's context rows (full batch), the given graph as mask.

    steps: optimizer steps (the one knob that sets cost: each step is one pass over all context rows);
    device: "auto" picks CUDA when present; seed: initialization seed (a ``torch.Generator``, no global seeding).
    The fitted model refuses rows, noise and intervention values beyond ``STANDARD_LIMIT`` (1e6) standard
    deviations of the context column (``condfip.core.standardization``) with a ValueError naming the node.
    """

    name = "fip"

    def __init__(
        self,
        *,
        steps: int = 2000,
        learning_rate: float = 1e-4,
        weight_decay: float = 1e-2,
        dim: int = 128,
        num_heads: int = 8,
        device: str = "auto",
        seed: int = 0,
    ) -> None:
        if not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be a non-negative integer; got {steps!r}")
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be positive; got {learning_rate!r}")
        self.steps = steps
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.dim = dim
        self.num_heads = num_heads
        self.device = torch.device(
            "cuda" if device == "auto" and torch.cuda.is_available() else device.replace("auto", "cpu")
        )
        self.seed = seed
        self.last_losses: list[float] = []

    def _fit(self, context: np.ndarray, adjacency: np.ndarray) -> FittedSCM:
        # named columns: rows, noise and intervention values beyond STANDARD_LIMIT standard deviations are refused
        standardization = Standardization.fit(context, columns=range(adjacency.shape[0]))
        rows = torch.as_tensor(
            standardization.data_to_standard(context), dtype=torch.float32, device=self.device
        )[None]  # [1, n, d]
        parents = parents_from_adjacency(torch.as_tensor(adjacency)[None]).to(self.device)  # [1, d, d]

        generator = torch.Generator().manual_seed(self.seed)
        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.set_state(generator.get_state())
            network = FiPNetwork(adjacency.shape[0], dim=self.dim, num_heads=self.num_heads)
        network = network.to(self.device).train()
        optimizer = torch.optim.AdamW(
            network.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
        )
        losses = []
        for _ in range(self.steps):
            optimizer.zero_grad(set_to_none=True)
            loss = torch.mean((network(rows, parents) - rows) ** 2)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        self.last_losses = losses
        return _FittedFiP(adjacency, network, standardization, self.device)
