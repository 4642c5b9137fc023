"""Triton kernels of DAG attention: a fused forward and a fused backward (private; imports Triton).

The op is many small independent attentions: for each row r = (s, h) of dataset b, a d x d attention over
nodes with the dataset's parent mask. A program owns PACK rows of one dataset and a block of BLOCK_M query
nodes; the rows are packed along the tile's first axis, position f = (row f // BLOCK_M, node f % BLOCK_M), so
one ``tl.dot`` serves all PACK rows (keys of another row are masked off, like non-parents). The parent mask of
a block of nodes is read once per program and serves all its rows; key blocks without any parent are skipped.

Statistics: with scores in log2 units t_ij = log2(e) * scale * q_i . k_j, the forward keeps a running
maximum m_i initialized at 0 (not -inf), so that exp2(-m_i) <= 1 never overflows and a root row needs no
special case; it saves one float32 per (row, node): the clipped log-sum-exp

    lse_i = m_i + log2(max(sum_j exp2(t_ij - m_i), exp2(-m_i))) = max(log2 sum_j exp2(t_ij), 0),

so that w_ij = exp2(t_ij - lse_i) exactly, and lse_i > 0 tells the softmax regime (sum exp > 1) from the
clipped one. Backward: dP_ij = dO_i . v_j, dS_ij = w_ij (dP_ij - delta_i) with delta_i = sum_j w_ij dP_ij
(= dO_i . O_i) in the softmax regime and 0 in the clipped one; dQ = scale dS K, dK = scale dS^T Q, dV = W^T dO.
All accumulation is float32.

Non-finite inputs stay with the nodes that read them (as in the reference): a zero weight times NaN is NaN, so
through the packed products a NaN in one row's key or value would reach every row of the tile. Every tile of
q, k, v and dO is therefore loaded with its non-finite entries replaced by zeros (``_finite_tile``), and the
nodes that read one get NaN instead: an output reads its own query (when it has parents) and its parents'
keys and values; the forward marks such a node with lse = NaN, and backward passes no gradient through it
(lse = +inf there makes its weights exact zeros). A non-finite output gradient dO_i reaches, as NaN, dQ_i and
dK_j, dV_j of the parents j that i weighs (w_ij > 0), and nothing else (``_mark_bad_do``, in a branch taken
only by tiles that hold one). A score beyond the float32 range saturates at its largest finite value
(``_saturate``), so that exp2(t - m) never meets inf - inf.

Tensor arguments are 5-D [B, S, H, d, e] with unit stride on e; the other strides are passed in, so views
from a head split need no copy. lse and delta are contiguous float32 [B, S, H, d].
"""

from __future__ import annotations

import triton
import triton.language as tl

FLOAT32_MAX = tl.constexpr(3.4028234663852886e38)


@triton.jit
def _row_offsets(b, row, node, num_heads, stride_b, stride_s, stride_h, stride_d):
    """Element offsets of (dataset b, row = s * H + h, node) for one tensor."""
    s = (row // num_heads).to(tl.int64)
    h = (row % num_heads).to(tl.int64)
    return b * stride_b + s * stride_s + h * stride_h + node.to(tl.int64) * stride_d


@triton.jit
def _load_tile(ptr, b, row, node, num_heads, stride_b, stride_s, stride_h, stride_d, offs_e, mask):
    """[len(row), len(offs_e)] elements of the positions (b, row, node) of one tensor; 0 outside ``mask``."""
    offsets = _row_offsets(b, row, node, num_heads, stride_b, stride_s, stride_h, stride_d)
    return tl.load(ptr + offsets[:, None] + offs_e[None, :], mask=mask, other=0.0)


@triton.jit
def _store_tile(ptr, value, b, row, node, num_heads, stride_b, stride_s, stride_h, stride_d, offs_e, mask):
    """Store ``value`` [len(row), len(offs_e)] (cast to the tensor's dtype) at the positions (b, row, node)."""
    offsets = _row_offsets(b, row, node, num_heads, stride_b, stride_s, stride_h, stride_d)
    tl.store(ptr + offsets[:, None] + offs_e[None, :], value.to(ptr.dtype.element_ty), mask=mask)


@triton.jit
def _finite_tile(x):
    """``x`` with its NaN and infinite entries replaced by zeros, and [len] bool: whether a row had none."""
    finite = (x == x) & (tl.abs(x) < float("inf"))
    row_ok = tl.min(finite.to(tl.int32), 1) > 0
    return tl.where(finite, x, tl.zeros_like(x)), row_ok


@triton.jit
def _load_finite(ptr, b, row, node, num_heads, stride_b, stride_s, stride_h, stride_d, offs_e, mask):
    """``_load_tile`` with the non-finite entries replaced by zeros."""
    tile = _load_tile(ptr, b, row, node, num_heads, stride_b, stride_s, stride_h, stride_d, offs_e, mask)
    tile, _ = _finite_tile(tile)
    return tile


@triton.jit
def _saturate(scores):
    """+inf (an overflow of finite inputs) as the largest finite float32; NaN stays NaN."""
    return tl.where(scores > FLOAT32_MAX, FLOAT32_MAX, scores)


@triton.jit
def _any(x, axis: tl.constexpr):
    """Whether any entry of the bool tile ``x`` is set along ``axis``."""
    return tl.max(x.to(tl.int32), axis) > 0


@triton.jit
def _mark_bad_do(x, w, bad_do, axis: tl.constexpr):
    """``x`` (the weights W or dS) with NaN where a query whose dO is not finite weighs a key (queries along
    ``axis`` of ``w``): through the products that follow, NaN reaches dQ of that query and dK, dV of the keys
    it weighs, nothing else. Called only when a tile holds such a query: keeping it out of the common path
    keeps the kernels' registers as they were."""
    if axis == 0:
        return tl.where((w > 0) & bad_do[:, None], float("nan"), x)
    return tl.where((w > 0) & bad_do[None, :], float("nan"), x)


@triton.jit
def _parent_tile(parents_ptr, b, node_i, node_j, same_row, num_nodes, par_sb, par_si, par_sj):
    """[len(node_i), len(node_j)] bool: node_j is a parent of node_i and both positions are in the same row."""
    inside = (node_i < num_nodes)[:, None] & (node_j < num_nodes)[None, :]
    offsets = node_i[:, None] * par_si + node_j[None, :] * par_sj  # int32: d * d is small
    return (tl.load(parents_ptr + b * par_sb + offsets, mask=inside, other=0) != 0) & same_row


@triton.jit
def _forward_kernel(
    q_ptr, k_ptr, v_ptr, o_ptr, lse_ptr, parents_ptr,
    q_sb, q_ss, q_sh, q_sd,
    k_sb, k_ss, k_sh, k_sd,
    v_sb, v_ss, v_sh, v_sd,
    o_sb, o_ss, o_sh, o_sd,
    par_sb, par_si, par_sj,
    num_heads, num_rows, num_nodes, head_dim,
    qk_scale,
    PACK: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_E: tl.constexpr,
    PRECISION: tl.constexpr,
):  # fmt: skip
    b = tl.program_id(2).to(tl.int64)
    first_row = tl.program_id(0) * PACK
    offs_m = tl.arange(0, PACK * BLOCK_M)  # [M] packed (row, query node) positions
    row_m = first_row + offs_m // BLOCK_M
    node_m = tl.program_id(1) * BLOCK_M + offs_m % BLOCK_M
    valid_m = (row_m < num_rows) & (node_m < num_nodes)
    offs_e = tl.arange(0, BLOCK_E)
    valid_e = offs_e < head_dim

    valid_me = valid_m[:, None] & valid_e[None, :]
    q = _load_tile(q_ptr, b, row_m, node_m, num_heads, q_sb, q_ss, q_sh, q_sd, offs_e, valid_me)
    q, q_ok = _finite_tile(q)
    q_bad_any = tl.max((~q_ok).to(tl.int32)) > 0

    offs_n = tl.arange(0, PACK * BLOCK_N)  # [N] packed (row, key node) positions
    row_n = first_row + offs_n // BLOCK_N
    same_row = (offs_m // BLOCK_M)[:, None] == (offs_n // BLOCK_N)[None, :]  # [M, N]

    m_i = tl.zeros([PACK * BLOCK_M], dtype=tl.float32)  # running max of the scores, and of 0 (the clip)
    l_i = tl.zeros([PACK * BLOCK_M], dtype=tl.float32)  # sum_j exp2(t_ij - m_i)
    acc = tl.zeros([PACK * BLOCK_M, BLOCK_E], dtype=tl.float32)
    has_parent = tl.zeros([PACK * BLOCK_M], dtype=tl.int1)
    reads_bad = tl.zeros([PACK * BLOCK_M], dtype=tl.int1)  # a parent's key or value is not finite
    for start_n in range(0, num_nodes, BLOCK_N):
        node_n = start_n + offs_n % BLOCK_N
        allowed = _parent_tile(parents_ptr, b, node_m, node_n, same_row, num_nodes, par_sb, par_si, par_sj)
        if tl.max(allowed.to(tl.int32)) > 0:  # skip key blocks that hold no parent of these query nodes
            valid_n = ((row_n < num_rows) & (node_n < num_nodes))[:, None] & valid_e[None, :]
            k = _load_tile(k_ptr, b, row_n, node_n, num_heads, k_sb, k_ss, k_sh, k_sd, offs_e, valid_n)
            v = _load_tile(v_ptr, b, row_n, node_n, num_heads, v_sb, v_ss, v_sh, v_sd, offs_e, valid_n)
            k, k_ok = _finite_tile(k)
            v, v_ok = _finite_tile(v)
            kv_bad = ~(k_ok & v_ok)
            if q_bad_any:  # rare: only then does it matter which queries have parents
                has_parent = has_parent | _any(allowed, 1)
            if tl.max(kv_bad.to(tl.int32)) > 0:  # rare
                reads_bad = reads_bad | _any(allowed & kv_bad[None, :], 1)
            scores = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale  # [M, N], log2 units
            scores = tl.where(allowed, _saturate(scores), float("-inf"))
            m_new = tl.maximum(m_i, tl.max(scores, 1))  # finite: m_i starts at 0
            alpha = tl.exp2(m_i - m_new)
            p = tl.exp2(scores - m_new[:, None])  # masked: exp2(-inf) = 0
            l_i = l_i * alpha + tl.sum(p, 1)
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
            m_i = m_new

    denominator = tl.maximum(l_i, tl.exp2(-m_i))  # the clip: max(sum exp(s), 1) in units of exp2(m_i)
    poisoned = reads_bad | (has_parent & ~q_ok)  # reads a non-finite input: NaN, and lse = NaN marks it
    out = tl.where(poisoned[:, None], float("nan"), acc / denominator[:, None])
    _store_tile(o_ptr, out, b, row_m, node_m, num_heads, o_sb, o_ss, o_sh, o_sd, offs_e, valid_me)
    stat_off = (b * num_rows + row_m) * num_nodes + node_m
    lse = tl.where(poisoned, float("nan"), m_i + tl.log2(denominator))
    tl.store(lse_ptr + stat_off, lse, mask=valid_m)


@triton.jit
def _backward_single_block_kernel(
    q_ptr, k_ptr, v_ptr, do_ptr, dq_ptr, dk_ptr, dv_ptr, lse_ptr, parents_ptr,
    q_sb, q_ss, q_sh, q_sd,
    k_sb, k_ss, k_sh, k_sd,
    v_sb, v_ss, v_sh, v_sd,
    do_sb, do_ss, do_sh, do_sd,
    dq_sb, dq_ss, dq_sh, dq_sd,
    dk_sb, dk_ss, dk_sh, dk_sd,
    dv_sb, dv_ss, dv_sh, dv_sd,
    par_sb, par_si, par_sj,
    num_heads, num_rows, num_nodes, head_dim,
    qk_scale, scale,
    PACK: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_E: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    """All three gradients in one pass when one block holds every node (d <= BLOCK_D): queries and keys are
    the same packed positions, and delta comes from W and dP without reading the output."""
    b = tl.program_id(2).to(tl.int64)
    offs = tl.arange(0, PACK * BLOCK_D)  # packed (row, node) positions, both as queries and as keys
    row = tl.program_id(0) * PACK + offs // BLOCK_D
    node = offs % BLOCK_D
    valid = (row < num_rows) & (node < num_nodes)
    offs_e = tl.arange(0, BLOCK_E)
    valid_2d = valid[:, None] & (offs_e < head_dim)[None, :]
    same_row = (offs // BLOCK_D)[:, None] == (offs // BLOCK_D)[None, :]
    allowed = _parent_tile(parents_ptr, b, node, node, same_row, num_nodes, par_sb, par_si, par_sj)

    q = _load_finite(q_ptr, b, row, node, num_heads, q_sb, q_ss, q_sh, q_sd, offs_e, valid_2d)
    k = _load_finite(k_ptr, b, row, node, num_heads, k_sb, k_ss, k_sh, k_sd, offs_e, valid_2d)
    v = _load_finite(v_ptr, b, row, node, num_heads, v_sb, v_ss, v_sh, v_sd, offs_e, valid_2d)
    do = _load_tile(do_ptr, b, row, node, num_heads, do_sb, do_ss, do_sh, do_sd, offs_e, valid_2d)
    do, do_ok = _finite_tile(do)
    lse = tl.load(lse_ptr + (b * num_rows + row) * num_nodes + node, mask=valid, other=0.0)
    poisoned = lse != lse  # a NaN output passes no gradient: lse = +inf makes its weights exact zeros
    lse = tl.where(poisoned, float("inf"), lse)
    bad_do = ~(do_ok | poisoned)

    scores = _saturate(tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale)  # [M, M], log2 units
    w = tl.exp2(tl.where(allowed, scores - lse[:, None], float("-inf")))  # the attention weights
    dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)  # dO_i . v_j
    delta = tl.sum(w * dp, 1) * (lse > 0).to(tl.float32)  # 0 where the denominator is clipped to 1
    if tl.max(bad_do.to(tl.int32)) > 0:  # rare
        w = _mark_bad_do(w, w, bad_do, 0)
    ds = w * (dp - delta[:, None])

    dq = tl.dot(ds.to(k.dtype), k, input_precision=PRECISION) * scale
    dk = tl.dot(tl.trans(ds).to(q.dtype), q, input_precision=PRECISION) * scale
    dv = tl.dot(tl.trans(w).to(do.dtype), do, input_precision=PRECISION)
    _store_tile(dq_ptr, dq, b, row, node, num_heads, dq_sb, dq_ss, dq_sh, dq_sd, offs_e, valid_2d)
    _store_tile(dk_ptr, dk, b, row, node, num_heads, dk_sb, dk_ss, dk_sh, dk_sd, offs_e, valid_2d)
    _store_tile(dv_ptr, dv, b, row, node, num_heads, dv_sb, dv_ss, dv_sh, dv_sd, offs_e, valid_2d)


@triton.jit
def _backward_dq_kernel(
    q_ptr, k_ptr, v_ptr, o_ptr, do_ptr, dq_ptr, lse_ptr, delta_ptr, parents_ptr,
    q_sb, q_ss, q_sh, q_sd,
    k_sb, k_ss, k_sh, k_sd,
    v_sb, v_ss, v_sh, v_sd,
    o_sb, o_ss, o_sh, o_sd,
    do_sb, do_ss, do_sh, do_sd,
    dq_sb, dq_ss, dq_sh, dq_sd,
    par_sb, par_si, par_sj,
    num_heads, num_rows, num_nodes, head_dim,
    qk_scale, scale,
    PACK: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_E: tl.constexpr,
    PRECISION: tl.constexpr,
):  # fmt: skip
    """dQ of a block of query nodes, looping over key blocks; also writes delta for the dK/dV kernel."""
    b = tl.program_id(2).to(tl.int64)
    first_row = tl.program_id(0) * PACK
    offs_m = tl.arange(0, PACK * BLOCK_M)
    row_m = first_row + offs_m // BLOCK_M
    node_m = tl.program_id(1) * BLOCK_M + offs_m % BLOCK_M
    valid_m = (row_m < num_rows) & (node_m < num_nodes)
    offs_e = tl.arange(0, BLOCK_E)
    valid_e = offs_e < head_dim
    valid_me = valid_m[:, None] & valid_e[None, :]

    q = _load_finite(q_ptr, b, row_m, node_m, num_heads, q_sb, q_ss, q_sh, q_sd, offs_e, valid_me)
    o = _load_tile(o_ptr, b, row_m, node_m, num_heads, o_sb, o_ss, o_sh, o_sd, offs_e, valid_me)
    do = _load_tile(do_ptr, b, row_m, node_m, num_heads, do_sb, do_ss, do_sh, do_sd, offs_e, valid_me)
    do, do_ok = _finite_tile(do)
    stat_off = (b * num_rows + row_m) * num_nodes + node_m
    lse = tl.load(lse_ptr + stat_off, mask=valid_m, other=0.0)
    poisoned = lse != lse  # a NaN output passes no gradient: lse = +inf makes its weights exact zeros
    lse = tl.where(poisoned, float("inf"), lse)
    bad_do = ~(do_ok | poisoned)
    bad_do_any = tl.max(bad_do.to(tl.int32)) > 0
    delta = tl.sum(do.to(tl.float32) * o.to(tl.float32), 1) * (lse > 0).to(tl.float32)
    delta = tl.where(poisoned, 0.0, delta)
    tl.store(delta_ptr + stat_off, delta, mask=valid_m)

    offs_n = tl.arange(0, PACK * BLOCK_N)
    row_n = first_row + offs_n // BLOCK_N
    same_row = (offs_m // BLOCK_M)[:, None] == (offs_n // BLOCK_N)[None, :]
    dq = tl.zeros([PACK * BLOCK_M, BLOCK_E], dtype=tl.float32)
    for start_n in range(0, num_nodes, BLOCK_N):
        node_n = start_n + offs_n % BLOCK_N
        allowed = _parent_tile(parents_ptr, b, node_m, node_n, same_row, num_nodes, par_sb, par_si, par_sj)
        if tl.max(allowed.to(tl.int32)) > 0:
            valid_n = ((row_n < num_rows) & (node_n < num_nodes))[:, None] & valid_e[None, :]
            k = _load_finite(k_ptr, b, row_n, node_n, num_heads, k_sb, k_ss, k_sh, k_sd, offs_e, valid_n)
            v = _load_finite(v_ptr, b, row_n, node_n, num_heads, v_sb, v_ss, v_sh, v_sd, offs_e, valid_n)
            scores = _saturate(tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale)
            w = tl.exp2(tl.where(allowed, scores - lse[:, None], float("-inf")))
            dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
            ds = w * (dp - delta[:, None])
            if bad_do_any:  # rare
                ds = _mark_bad_do(ds, w, bad_do, 0)
            dq += tl.dot(ds.to(k.dtype), k, input_precision=PRECISION)
    dq = dq * scale
    _store_tile(dq_ptr, dq, b, row_m, node_m, num_heads, dq_sb, dq_ss, dq_sh, dq_sd, offs_e, valid_me)


@triton.jit
def _backward_dkdv_kernel(
    q_ptr, k_ptr, v_ptr, do_ptr, dk_ptr, dv_ptr, lse_ptr, delta_ptr, parents_ptr,
    q_sb, q_ss, q_sh, q_sd,
    k_sb, k_ss, k_sh, k_sd,
    v_sb, v_ss, v_sh, v_sd,
    do_sb, do_ss, do_sh, do_sd,
    dk_sb, dk_ss, dk_sh, dk_sd,
    dv_sb, dv_ss, dv_sh, dv_sd,
    par_sb, par_si, par_sj,
    num_heads, num_rows, num_nodes, head_dim,
    qk_scale, scale,
    PACK: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_E: tl.constexpr,
    PRECISION: tl.constexpr,
):  # fmt: skip
    """dK and dV of a block of key nodes, looping over query blocks (transposed tiles: keys first)."""
    b = tl.program_id(2).to(tl.int64)
    first_row = tl.program_id(0) * PACK
    offs_n = tl.arange(0, PACK * BLOCK_N)
    row_n = first_row + offs_n // BLOCK_N
    node_n = tl.program_id(1) * BLOCK_N + offs_n % BLOCK_N
    valid_n = (row_n < num_rows) & (node_n < num_nodes)
    offs_e = tl.arange(0, BLOCK_E)
    valid_e = offs_e < head_dim
    valid_ne = valid_n[:, None] & valid_e[None, :]

    k = _load_finite(k_ptr, b, row_n, node_n, num_heads, k_sb, k_ss, k_sh, k_sd, offs_e, valid_ne)
    v = _load_finite(v_ptr, b, row_n, node_n, num_heads, v_sb, v_ss, v_sh, v_sd, offs_e, valid_ne)

    offs_m = tl.arange(0, PACK * BLOCK_M)
    row_m = first_row + offs_m // BLOCK_M
    same_row = (offs_n // BLOCK_N)[:, None] == (offs_m // BLOCK_M)[None, :]  # [N, M]
    dk = tl.zeros([PACK * BLOCK_N, BLOCK_E], dtype=tl.float32)
    dv = tl.zeros([PACK * BLOCK_N, BLOCK_E], dtype=tl.float32)
    for start_m in range(0, num_nodes, BLOCK_M):
        node_m = start_m + offs_m % BLOCK_M
        # [N, M]: key node_n is a parent of query node_m
        allowed = _parent_tile(parents_ptr, b, node_n, node_m, same_row, num_nodes, par_sb, par_sj, par_si)
        if tl.max(allowed.to(tl.int32)) > 0:
            valid_m = (row_m < num_rows) & (node_m < num_nodes)
            valid_me = valid_m[:, None] & valid_e[None, :]
            q = _load_finite(q_ptr, b, row_m, node_m, num_heads, q_sb, q_ss, q_sh, q_sd, offs_e, valid_me)
            do = _load_tile(do_ptr, b, row_m, node_m, num_heads, do_sb, do_ss, do_sh, do_sd, offs_e, valid_me)
            do, do_ok = _finite_tile(do)
            stat_off = (b * num_rows + row_m) * num_nodes + node_m
            lse = tl.load(lse_ptr + stat_off, mask=valid_m, other=0.0)
            delta = tl.load(delta_ptr + stat_off, mask=valid_m, other=0.0)
            poisoned = lse != lse  # a NaN output passes no gradient: lse = +inf makes its weights exact zeros
            lse = tl.where(poisoned, float("inf"), lse)
            bad_do = ~(do_ok | poisoned)
            scores_t = _saturate(tl.dot(k, tl.trans(q), input_precision=PRECISION) * qk_scale)  # [N, M]
            w_t = tl.exp2(tl.where(allowed, scores_t - lse[None, :], float("-inf")))
            if tl.max(bad_do.to(tl.int32)) > 0:  # rare
                w_t = _mark_bad_do(w_t, w_t, bad_do, 1)
            dp_t = tl.dot(v, tl.trans(do), input_precision=PRECISION)
            ds_t = w_t * (dp_t - delta[None, :])
            dv += tl.dot(w_t.to(do.dtype), do, input_precision=PRECISION)
            dk += tl.dot(ds_t.to(q.dtype), q, input_precision=PRECISION)
    dk = dk * scale
    _store_tile(dk_ptr, dk, b, row_n, node_n, num_heads, dk_sb, dk_ss, dk_sh, dk_sd, offs_e, valid_ne)
    _store_tile(dv_ptr, dv, b, row_n, node_n, num_heads, dv_sb, dv_ss, dv_sh, dv_sd, offs_e, valid_ne)
