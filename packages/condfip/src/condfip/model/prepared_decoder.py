"""The decoder of one inferred dataset, prepared for inference: the same ``F_hat`` as ``ConditionalDecoder``, with
everything that depends only on the dataset embedding computed once, and attention over parents turned into
matrix products against fixed per-dataset matrices.

Axis legend: m rows, k query nodes, j key nodes (parents), h heads, f head dim, e model dim.

Why this is exact algebra. A key node's value embedding ``LN(z_j C_j + P_j)`` depends on the row only through
one scalar, z_j: it equals ``r_j(z_j) (z_j U_j + V_j) + beta`` with ``U = gamma * (C - mean C)``,
``V = gamma * (P - mean P)`` and ``r_j = 1 / sqrt(var_j(z_j) + eps)``, where the variance over the embedding is
a quadratic in z_j (without the value norm: ``r = 1``, ``U = C``, ``V = P``, ``beta = 0``). So each block's keys
and values are ``r (z KU_j + KV_j) + kc`` with per-node vectors ``KU, KV`` and a constant ``kc``. A score
``q_i . k_j`` is then ``r_j (z_j q_i.KU_j + q_i.KV_j) + q_i.kc``, and the three dot products of every parent
come out of one product of the query rows with a fixed matrix (the query projection folded in). The weighted
sum of values, folded with the output projection, is likewise one product with a fixed matrix. No per-row
keys or values are ever formed, and the tiny per-row matrix products of generic attention disappear.
The first block's queries are the node positions, the same for every row, so its scores are per node.

Results agree with ``ConditionalDecoder`` to float32 rounding (tested), not bit for bit. A decoder prepared in
float64 (``dtype``) runs every step in float64, whatever the model's own dtype: what a refitted readout needs,
whose large per-node weights would otherwise amplify the float32 rounding of the features.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange

from condfip.model.adaptation import (
    Adaptation,
    fit_adaptation,
    merge_adaptations,
    reduced_design,
)
from condfip.model.decoder import AdaLNBlock, ConditionalDecoder
from condfip.model.edge_check import continued_margins
from condfip.model.embedding import DatasetEmbedding
from condfip.model.fit_size import kernel_tiers
from condfip.model.model_weights import clear_counts
from condfip.model.parent_basis import ParentBasis
from condfip.model.readout import Readout, fit_readout
from condfip.model.weighted_refit import WeightedRefit

BASIS_CHUNK_BYTES = 64 * 2**20  # the adaptation's parent basis of one chunk of rows stays under this


@dataclass
class _ValueFactors:
    """The value embedding of node j for scalar z: ``r_j(z) * (z * U_j + V_j) + beta``."""

    u: torch.Tensor  # [d, e]
    v: torch.Tensor  # [d, e]
    beta: torch.Tensor  # [e]
    # r_j(z) = 1 / sqrt(a_j z^2 + 2 b_j z + c_j + eps); None without the value norm (r = 1)
    quadratic: tuple[torch.Tensor, torch.Tensor, torch.Tensor, float] | None


def _value_factors(decoder: ConditionalDecoder, embedding: DatasetEmbedding) -> _ValueFactors:
    scale, position = embedding.scale[0].double(), embedding.position[0].double()  # [d, e]
    norm = decoder.value_norm
    if not isinstance(norm, torch.nn.LayerNorm):
        zero = torch.zeros(scale.shape[-1], dtype=torch.float64, device=scale.device)
        return _ValueFactors(scale, position, zero, None)
    centered_scale = scale - scale.mean(dim=-1, keepdim=True)  # [d, e]
    centered_position = position - position.mean(dim=-1, keepdim=True)
    a = (centered_scale**2).mean(dim=-1)  # [d]
    b = (centered_scale * centered_position).mean(dim=-1)
    c = (centered_position**2).mean(dim=-1)
    gamma = norm.weight.double() if norm.weight is not None else torch.ones_like(scale[0])
    beta = norm.bias.double() if norm.bias is not None else torch.zeros_like(scale[0])
    return _ValueFactors(gamma * centered_scale, gamma * centered_position, beta, (a, b, c, norm.eps))


@dataclass
class _ParentIndex:
    """The parents of a set of query nodes, padded to the largest in-degree among them."""

    nodes: torch.Tensor  # [k] query node indices
    parents: torch.Tensor  # [k, p] parent node indices (padding: 0)
    padding: torch.Tensor  # [k, 1, 1, p] float: 0 for a parent, -inf for padding
    real: torch.Tensor  # [k, 1, 1, p] bool: a parent (not padding)

    @classmethod
    def build(cls, mask: torch.Tensor, nodes: torch.Tensor, dtype: torch.dtype) -> _ParentIndex:
        """mask: [d, d] bool, mask[i, j] for j -> i."""
        query_mask = mask[nodes]  # [k, d]
        width = max(int(query_mask.sum(dim=1).max()), 1) if nodes.numel() else 1
        # stable sort puts every row's parents first, in node order
        order = torch.sort(query_mask.to(torch.int8), dim=1, descending=True, stable=True).indices
        parents = order[:, :width]  # [k, p]
        real = torch.gather(query_mask, 1, parents)  # [k, p]
        parents = parents.masked_fill(~real, 0)
        padding = torch.zeros(real.shape, dtype=dtype, device=mask.device).masked_fill(~real, float("-inf"))
        return cls(nodes, parents, padding[:, None, None, :], real[:, None, None, :])


class _PreparedBlock:
    """One ``AdaLNBlock`` with its modulation and its key/value algebra precomputed for one dataset."""

    def __init__(
        self, block: AdaLNBlock, condition: torch.Tensor, factors: _ValueFactors, dtype: torch.dtype
    ) -> None:
        attention = block.attention
        self.block = block
        self.dtype = dtype
        h, e = attention.num_heads, attention.dim
        self.num_heads = h
        modulation = rearrange(
            block.modulation(condition).to(dtype), "d (six e) -> six d 1 e", six=6
        )  # [6, d, 1, e]
        self.shift_attn, self.scale_attn, self.gate_attn = modulation[0], modulation[1], modulation[2]
        self.shift_mlp, self.scale_mlp, self.gate_mlp = modulation[3], modulation[4], modulation[5]
        w_kv, b_kv = attention.to_kv.weight.double(), _bias(attention.to_kv, 2 * e)  # [2e, e], [2e]
        w_k, w_v, b_k, b_v = w_kv[:e], w_kv[e:], b_kv[:e], b_kv[e:]
        w_q = rearrange(attention.to_q.weight.double(), "(h f) e -> e h f", h=h)  # [e, h, f]
        b_q = rearrange(_bias(attention.to_q, e), "(h f) -> h f", h=h)
        w_o = rearrange(attention.to_out.weight.double(), "e (h f) -> h f e", h=h)  # [h, f, e]
        score_scale = (e // h) ** -0.5
        per_head = "d (h f) -> d h f"
        # keys of node j for scalar z: r (z key_u_j + key_v_j) + key_c; values likewise
        key_u = rearrange(factors.u @ w_k.T, per_head, h=h)  # [d, h, f]
        key_v = rearrange(factors.v @ w_k.T, per_head, h=h)
        key_c = rearrange(factors.beta @ w_k.T + b_k, "(h f) -> h f", h=h)  # [h, f]
        value_u = rearrange(factors.u @ w_v.T, per_head, h=h)
        value_v = rearrange(factors.v @ w_v.T, per_head, h=h)
        value_c = rearrange(factors.beta @ w_v.T + b_v, "(h f) -> h f", h=h)
        # query state -> q . key_u_j (per head and node j), with the query projection folded in
        self.score_u = score_scale * torch.einsum("ehf,jhf->jeh", w_q, key_u)  # [d, e, h]
        self.score_v = score_scale * torch.einsum("ehf,jhf->jeh", w_q, key_v)
        self.score_c = score_scale * torch.einsum("ehf,hf->eh", w_q, key_c)  # [e, h]
        self.bias_u = score_scale * torch.einsum("hf,jhf->jh", b_q, key_u)  # [d, h]
        self.bias_v = score_scale * torch.einsum("hf,jhf->jh", b_q, key_v)
        self.bias_c = score_scale * torch.einsum("hf,hf->h", b_q, key_c)  # [h]
        # attention weight of node j -> its value, through the output projection
        self.output_u = torch.einsum("jhf,hfe->jhe", value_u, w_o)  # [d, h, e]
        self.output_v = torch.einsum("jhf,hfe->jhe", value_v, w_o)
        self.output_c = torch.einsum("hf,hfe->he", value_c, w_o)  # [h, e]
        self.output_bias = _bias(attention.to_out, e).to(dtype)  # [e]
        mlp = block.mlp
        self.mlp_weights = tuple(
            t.detach().to(dtype) for t in (mlp.fc1.weight, mlp.fc1.bias, mlp.fc2.weight, mlp.fc2.bias)
        )
        self._matrices: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self._modulations: dict[tuple[int, ...], tuple[torch.Tensor, ...]] = {}

    def modulations(self, nodes: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The adaLN shift, 1 + scale and gate of attention and MLP for the query ``nodes``, each [k, 1, e]
        (gathered once per node set)."""
        cache_key = tuple(nodes.tolist())
        if cache_key not in self._modulations:
            self._modulations[cache_key] = (
                self.shift_attn[nodes],
                1 + self.scale_attn[nodes],
                self.gate_attn[nodes],
                self.shift_mlp[nodes],
                1 + self.scale_mlp[nodes],
                self.gate_mlp[nodes],
            )
        return self._modulations[cache_key]

    def matrices(self, index: _ParentIndex) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per query node, the fixed matrices over its own parents (built once per node set):
        scores [k, e, 2hp + h], score bias [k, 1, 2hp + h], outputs [k, 2hp + h, e]."""
        cache_key = tuple(index.nodes.tolist())
        if cache_key not in self._matrices:
            parents, k = index.parents, index.parents.shape[0]
            gathered_scores = "k p e h -> k e (h p)"
            scores = torch.cat(
                [
                    rearrange(self.score_u[parents], gathered_scores),
                    rearrange(self.score_v[parents], gathered_scores),
                    self.score_c.expand(k, -1, -1),
                ],
                dim=2,
            )
            bias = torch.cat(
                [
                    rearrange(self.bias_u[parents], "k p h -> k (h p)"),
                    rearrange(self.bias_v[parents], "k p h -> k (h p)"),
                    self.bias_c.expand(k, -1),
                ],
                dim=1,
            )
            gathered_outputs = "k p h e -> k (h p) e"
            outputs = torch.cat(
                [
                    rearrange(self.output_u[parents], gathered_outputs),
                    rearrange(self.output_v[parents], gathered_outputs),
                    self.output_c.expand(k, -1, -1),
                ],
                dim=1,
            )
            self._matrices[cache_key] = (
                scores.to(self.dtype),
                bias[:, None, :].to(self.dtype),
                outputs.to(self.dtype),
            )
        return self._matrices[cache_key]

    def __call__(
        self, h: torch.Tensor, index: _ParentIndex, rz: torch.Tensor, r: torch.Tensor
    ) -> torch.Tensor:
        """h: [k, m or 1, e] query states of ``index.nodes``; rz, r: [k, m, 1, p] the values of each query
        node's parents times their norm factor, and that factor -> [k, m, e]."""
        heads, width = self.num_heads, index.parents.shape[1]
        shift_attn, scale_attn, gate_attn, shift_mlp, scale_mlp, gate_mlp = self.modulations(index.nodes)
        query = F.layer_norm(h, h.shape[-1:]) * scale_attn + shift_attn
        score_matrix, score_bias, output_matrix = self.matrices(index)
        parts = torch.baddbmm(score_bias, query, score_matrix)  # [k, m or 1, 2hp + h]
        along_u, along_v, constant = parts.split([heads * width, heads * width, heads], dim=-1)
        along_u = rearrange(along_u, "k m (h p) -> k m h p", h=heads)
        along_v = rearrange(along_v, "k m (h p) -> k m h p", h=heads)
        scores = rz * along_u + r * along_v + (constant[..., None] + index.padding)  # [k, m, h, p]
        # exp(s) / max(sum exp(s), 1), shifted by max(row max, 0): finite for a root (every score -inf)
        shift = scores.amax(dim=-1, keepdim=True).clamp_min(0.0)  # [k, m, h, 1]
        weights = torch.exp(scores - shift)
        weights = weights / torch.maximum(weights.sum(dim=-1, keepdim=True), torch.exp(-shift))
        mixed = torch.cat(
            [
                rearrange(weights * rz, "k m h p -> k m (h p)"),
                rearrange(weights * r, "k m h p -> k m (h p)"),
                weights.sum(dim=-1),
            ],
            dim=-1,
        )  # [k, m, 2hp + h]
        attention = torch.bmm(mixed, output_matrix) + self.output_bias  # [k, m, e]
        h = h + gate_attn * attention
        hidden = F.layer_norm(h, h.shape[-1:]) * scale_mlp + shift_mlp
        fc1_weight, fc1_bias, fc2_weight, fc2_bias = self.mlp_weights
        return h + gate_mlp * F.linear(F.gelu(F.linear(hidden, fc1_weight, fc1_bias)), fc2_weight, fc2_bias)


def _bias(linear: torch.nn.Linear, size: int) -> torch.Tensor:
    if linear.bias is None:
        return torch.zeros(size, dtype=torch.float64, device=linear.weight.device)
    return linear.bias.double()


# ``on_stage(done, total, name)``: the stage after ``done`` of ``total`` finished starts, named ``name`` (``done ==
# total``: the end)
StageCallback = Callable[[int, int, str], None]


class PreparedDecoder:
    """``F_hat`` of one dataset: ``ConditionalDecoder(z, parents, embedding, nodes)`` for a batch of one.

    Built once per inferred dataset (``prepare_decoder``); a call then costs, per block, two batched matrix
    products of the query rows with fixed matrices and elementwise work over each node's parents. Runs in
    ``dtype``: by default float32 (float64 for a float64 model).
    """

    def __init__(
        self,
        decoder: ConditionalDecoder,
        parents: torch.Tensor,
        embedding: DatasetEmbedding,
        dtype: torch.dtype | None = None,
    ) -> None:
        parameter = next(decoder.parameters())
        if dtype is None:
            dtype = torch.float64 if parameter.dtype == torch.float64 else torch.float32
        self.dtype = dtype
        self.decoder = decoder
        norm = decoder.out_norm
        self.out_norm = (
            norm.normalized_shape,
            norm.weight.detach().to(dtype),
            norm.bias.detach().to(dtype),
            norm.eps,
        )
        self.out = (decoder.out.weight.detach().to(dtype), decoder.out.bias.detach().to(dtype))
        self.parents = parents.reshape(parents.shape[-2:]).bool()  # [d, d]
        with torch.inference_mode():
            factors = _value_factors(decoder, embedding)
            self.quadratic = None
            if factors.quadratic is not None:
                a, b, c, eps = factors.quadratic
                self.quadratic = (
                    a.to(self.dtype)[:, None],
                    b.to(self.dtype)[:, None],
                    c.to(self.dtype)[:, None],
                    eps,
                )
            condition = embedding.condition[0].to(parameter.dtype)  # [d, e]
            self.blocks = [_PreparedBlock(block, condition, factors, self.dtype) for block in decoder.blocks]
            self.position = embedding.position[0].to(self.dtype)[:, None, :]  # [d, 1, e]: initial queries
        self._indices: dict[tuple[int, ...], _ParentIndex] = {}
        self.readout: tuple[torch.Tensor, torch.Tensor] | None = None  # per-node weights [d, f], bias [d]
        self.adaptation: tuple[Adaptation, ParentBasis] | None = None  # the adapted readout, when adapt() ran

    def _parent_index(self, nodes: torch.Tensor) -> _ParentIndex:
        cache_key = tuple(nodes.tolist())
        if cache_key not in self._indices:
            self._indices[cache_key] = _ParentIndex.build(self.parents, nodes, self.dtype)
        return self._indices[cache_key]

    def _norm_scale(self, values: torch.Tensor) -> torch.Tensor:
        """values: [d, m] -> r(values): [d, m], the value norm's factor of every node and row."""
        if self.quadratic is None:
            return torch.ones_like(values)
        a, b, c, eps = self.quadratic
        return torch.rsqrt(((a * values + 2 * b) * values + c).clamp_min(0) + eps)

    def _states(self, z: torch.Tensor, nodes: torch.Tensor | None) -> list[torch.Tensor]:
        """z: [m, d] -> the query states after every block, each [k, m or 1, e] (1: no node reads a value)."""
        if nodes is None:
            nodes = torch.arange(self.parents.shape[0], device=z.device)
        index = self._parent_index(nodes)
        if not bool(index.real.any()):
            z = z[:1]  # no node reads a value: one row stands for all, the same in every row exactly
        values = z.to(self.dtype).T  # [d, m]
        r = self._norm_scale(values)  # [d, m]
        gather = "k p m -> k m 1 p"
        # padded slots read node 0: set them to 0, so that no value of a node that is not a parent (however
        # large) enters the products below (a padded weight is 0, and 0 * inf would be NaN)
        z_parents = torch.where(index.real, rearrange(values[index.parents], gather), 0.0)  # [k, m, 1, p]
        r_parents = torch.where(index.real, rearrange(r[index.parents], gather), 0.0)
        rz_parents = r_parents * z_parents
        h = self.position[nodes]  # [k, 1, e]: the same queries for every row
        states = []
        for block in self.blocks:
            h = block(h, index, rz_parents, r_parents)
            states.append(h)
        return states

    @torch.inference_mode()
    def features(self, z: torch.Tensor, nodes: torch.Tensor | None = None) -> torch.Tensor:
        """z: [m, d] -> the readout features of each node: its states after every block, normalized by the
        output norm and concatenated, [m, d, blocks * e] (or [m, k, .] for ``nodes``). They depend only on the
        values of the node's parents."""
        # normalize before broadcasting: nodes that read no value get one row, the same for every row exactly
        states = [self._out_norm(h).expand(-1, z.shape[0], -1) for h in self._states(z, nodes)]
        return torch.cat(states, dim=-1).transpose(0, 1)  # [m, k, f]

    @torch.inference_mode()
    def __call__(self, z: torch.Tensor, nodes: torch.Tensor | None = None) -> torch.Tensor:
        """z: [m, d] -> F_hat(z): [m, d], or [m, k] for the node indices ``nodes`` ([k]) only."""
        if self.adaptation is not None:
            return self._adapted(z, nodes)
        if self.readout is not None:
            weights, bias = self.readout
            index = slice(None) if nodes is None else nodes
            features = self.features(z, nodes).double()  # [m, k, f]; float64 sums: no row-count rounding
            return (torch.einsum("mkf,kf->mk", features, weights[index]) + bias[index]).to(self.dtype)
        h = self._states(z, nodes)[-1]  # [k, m or 1, e]
        # the readout before broadcasting: nodes that read no value get one number, the same in every row exactly
        return F.linear(self._out_norm(h), *self.out)[..., 0].expand(-1, z.shape[0]).T  # [m, k]

    def _adapted(self, z: torch.Tensor, nodes: torch.Tensor | None) -> torch.Tensor:
        """The adapted ``F_hat`` [m, k] in float64 (the fit's precision). The network runs only for the nodes whose
        fit kept the zero-shot or decoder group; the others read their parents' basis alone."""
        adaptation, basis = self.adaptation
        if nodes is None:
            nodes = torch.arange(self.parents.shape[0], device=z.device)
        reads = adaptation.reads_decoder[nodes]  # [k]
        # the parent basis through ``combine`` (its whitening folded into the weights: a row costs the raw kernel)
        values = basis.combine(z, adaptation.basis_weights[nodes], nodes) + adaptation.bias[nodes]  # [m, k]
        if bool(reads.any()):
            network = nodes[reads]
            features = self.features(z, network).double()  # [m, k', f]
            values[:, reads] += torch.einsum("mkf,kf->mk", features, adaptation.decoder_weights[network])
        return values

    def _out_norm(self, h: torch.Tensor) -> torch.Tensor:
        """The decoder's output LayerNorm in this decoder's dtype."""
        shape, weight, bias, eps = self.out_norm
        return F.layer_norm(h, shape, weight, bias, eps)

    def prior_readout(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The trained readout as weights over ``features`` ([d, blocks * e], zero but on the last block) and
        a bias per node ([d]), in float64."""
        d, e = self.parents.shape[0], self.position.shape[-1]
        device = self.position.device
        weights = torch.zeros(d, len(self.blocks) * e, dtype=torch.float64, device=device)
        weights[:, -e:] = self.decoder.out.weight[0].double()
        return weights, self.decoder.out.bias.double().expand(d)

    def refit_readout(self, rows: torch.Tensor, chunk_rows: int = 1024) -> Readout:
        """Refit the readout per node on standardized rows [n, d] (``condfip.model.readout``) and use it from
        now on; the features run in chunks of ``chunk_rows`` rows, twice."""

        def chunks():
            for start in range(0, rows.shape[0], chunk_rows):
                z = rows[start : start + chunk_rows]  # [m, d]
                yield self.features(z), z

        readout = fit_readout(chunks, *self.prior_readout())
        self.set_readout(readout)
        return readout

    def adapt(
        self,
        rows: torch.Tensor,
        chunk_rows: int = 1024,
        *,
        tiers: list[tuple[torch.Tensor, int]] | None = None,
        on_stage: StageCallback | None = None,
    ) -> Adaptation:
        """Adapt ``F_hat`` per node to standardized rows [n, d] (``condfip.model.adaptation``) and use it from now
        on. The nodes are fitted in groups by the kernel landmarks they need (``tiers``, default
        ``kernel_tiers`` of this graph) and the fits merged (``merge_adaptations``, ``ParentBasis.merge``); the
        features run in chunks of ``chunk_rows`` rows (fewer when the basis of a chunk would exceed
        ``BASIS_CHUNK_BYTES``), up to three times per group. ``on_stage(done, total, name)`` is called as each
        stage starts (a group's fit, then the edge check) and once at the end (``done == total``)."""
        d = self.parents.shape[0]
        if tiers is None:
            tiers = kernel_tiers(rows.shape[0], self.parents.sum(dim=-1))
        stages = max(len(tiers), 1) + 1

        def stage(done: int, name: str) -> None:
            if on_stage is not None:
                on_stage(done, stages, name)

        bounds = (rows.amin(dim=0), rows.amax(dim=0))
        if len(tiers) <= 1:  # one group (or a graph without nodes)
            size = tiers[0][1] if tiers else max(rows.shape[0], 1)
            stage(0, f"fitting {d} nodes to {rows.shape[0]} rows")
            adaptation, chosen = self._fit(rows, bounds, chunk_rows, None, size)
        else:
            fits, counted = [], (0, 0)  # later tiers share the prior of the clear nodes before them
            for position, (nodes, size) in enumerate(tiers):
                stage(position, f"fitting {nodes.numel()} of {d} nodes to {rows.shape[0]} rows")
                fit, basis = self._fit(rows, bounds, chunk_rows, nodes, size, counted)
                clear, total = clear_counts(
                    fit.evidence_gain, basis.parent_counts.to(fit.evidence_gain.device)
                )
                counted = (counted[0] + clear, counted[1] + total)
                fits.append((nodes, fit, basis))
            adaptation = merge_adaptations([(nodes, fit) for nodes, fit, _ in fits], d)
            chosen = ParentBasis.merge([(nodes, basis) for nodes, _, basis in fits], d)
        chosen.clamp_linear = adaptation.clamps_linear.cpu()  # the fitted rows lie inside: fit unchanged
        stage(stages - 1, "checking the edges of the rows' range")
        chosen.margins, chosen.product_margins = continued_margins(
            adaptation, chosen, self.parents, rows, self.features
        )
        self.adaptation = (adaptation, chosen)
        stage(stages, "adapted")
        return adaptation

    def _fit(
        self,
        rows: torch.Tensor,
        bounds: tuple[torch.Tensor, torch.Tensor],
        chunk_rows: int,
        nodes: torch.Tensor | None,
        num_landmarks: int,
        counted: tuple[int, int] = (0, 0),
    ) -> tuple[Adaptation, ParentBasis]:
        """The adaptation of the nodes ``nodes`` (all when None) and their basis at the chosen length scales."""
        parents = self.parents if nodes is None else self.parents[nodes.to(self.parents.device)]
        targets = rows if nodes is None else rows[:, nodes.to(rows.device)]  # [n, k]: the nodes' columns
        basis = ParentBasis(parents, rows, num_landmarks=num_landmarks, bounds=bounds, targets=targets)
        per_row = 8 * parents.shape[0] * basis.size
        chunk_rows = max(1, min(chunk_rows, BASIS_CHUNK_BYTES // per_row))
        prior_weights, prior_bias = self.prior_readout()
        if nodes is not None:
            index = nodes.to(prior_weights.device)
            prior_weights, prior_bias = prior_weights[index], prior_bias[index]
        feature_nodes = None if nodes is None else nodes.to(rows.device)

        def chunks():
            for start in range(0, rows.shape[0], chunk_rows):
                z = rows[start : start + chunk_rows].double()  # [m, d]
                yield self.features(z, feature_nodes), z

        adaptation = fit_adaptation(
            chunks, prior_weights, prior_bias, basis, nodes=feature_nodes, counted=counted
        )
        return adaptation, basis.with_scale(adaptation.scale)  # each node's chosen length scale only

    def weighted_refit(self, rows: torch.Tensor, max_bytes: int) -> WeightedRefit | None:
        """A ``WeightedRefit`` of this decoder's adaptation on its standardized rows [n, d] (the rows it was
        fitted on): a bootstrap resample is then one solve. None when the rows' design would take more than
        ``max_bytes``."""
        adaptation, basis = self.adaptation
        width = adaptation.penalties.shape[-1]
        if rows.shape[0] * rows.shape[1] * width * 8 > max_bytes:
            return None
        z = rows.double()
        design = reduced_design(adaptation, self.features(z), basis(z))  # [n, d, r]
        return WeightedRefit(adaptation, design, z)

    def with_adaptation(self, adaptation: Adaptation) -> PreparedDecoder:
        """The same prepared decoder with another adaptation over the same basis (a refit of this one's)."""
        other = copy.copy(self)
        other.adaptation = (adaptation, self.adaptation[1])
        return other

    def set_readout(self, readout: Readout | None) -> None:
        """Use per-node readout weights over ``features`` (``condfip.model.readout``), or the trained readout
        again with None."""
        self.readout = None if readout is None else (readout.weights.double(), readout.bias.double())


def prepare_decoder(
    decoder: ConditionalDecoder,
    parents: torch.Tensor,
    embedding: DatasetEmbedding,
    *,
    dtype: torch.dtype | None = None,
) -> PreparedDecoder:
    """Prepare ``decoder`` for the dataset with this ``parents`` mask ([1, d, d] or [d, d]) and ``embedding``
    (a batch of one), to run in ``dtype`` (default: float32, float64 for a float64 model)."""
    if embedding.position.shape[0] != 1:
        raise ValueError(
            f"prepare_decoder takes the embedding of one dataset, got {embedding.position.shape[0]}"
        )
    return PreparedDecoder(decoder, parents, embedding, dtype)
