"""The adaptation's basis of each node's parents: their values, and Gaussian-kernel features of them.

The kernel features of node ``i`` at length scale ``l`` are ``k_l(x, Z_i) W_l,i``: the Gaussian kernel
``exp(-|x - z|^2 / (2 l^2))`` between the node's standardized parents ``x`` and the same parents in ``M`` landmark
rows ``Z_i`` (``landmark_count`` of them, more for a fit on more rows), whitened by the inverse Cholesky factor
of ``K_ZZ`` (plus a ``JITTER`` ridge): the Nyström approximation. Inner products of the features reproduce the
kernel on the landmarks' span, so a ridge on them with one prior scale is a kernel ridge regression there.

Half of a node's landmarks are evenly spaced rows of the fit, which follow the rows' density; the other half are
chosen one at a time as the row farthest from every landmark before it, in the node's own parents
(``spread_landmarks``). An evenly spaced subset leaves the tails and corners of the parents' joint range with
few landmarks, and there the kernel part of the fit has little to stand on (BENCHMARKS.md, "Where the landmarks
are").

Unlike random Fourier features, which keep oscillating wherever they are evaluated, these features decay to 0
away from every landmark: under an intervention that puts a node's parents where the rows never were
jointly, the node's mechanism returns to its linear part instead of extrapolating a wave it never saw.

Besides the joint kernel at ``LENGTH_SCALES``, the candidates include an additive kernel at ``ADDITIVE_SCALES``:
the mean over the node's parents of a Gaussian kernel in each, ``(1/p) sum_j exp(-(x_j - z_j)^2 / (2 l^2))``, on
the same landmarks (for a node of one parent, the joint kernel at the same length: there an additive scale that
is also a joint one is not a candidate of its own). Its ridge fits a sum of one smooth function per parent (what a
generalized additive model fits). A mechanism of that shape is then known wherever each parent is within its own
range, also where the parents never were jointly: an intervention on a parent that is correlated with another (in
the rows of a graph where one causes the other, or both share a cause) asks exactly there, and the joint kernel
can only fall back to the linear part. The evidence chooses between them per node, like between length scales. The
additive kernel's short scale (0.3) follows a step or threshold in one parent (a switch, a dose that acts
beyond a level) where every other kernel smooths it over a standard deviation; it has a prior weight of
``SHORT_SCALE_MARGIN`` nats below the others (``log_prior``), so it is chosen only where it fits clearly
better, not where it gains a few nats by chance on a smooth mechanism, and only for nodes of at most
``SHORT_SCALE_PARENTS`` parents: a mean of many sharp kernels gained evidence on a smooth mechanism of 9 parents
and predicted new rows with twice the error of the joint kernel.

The step kernel (``STEP``, for nodes of 1 to ``STEP_PARENTS`` parents, when the basis is given the nodes' columns
as ``targets``) is the share of the node's parents on the same side of a threshold each: ``(1/p) sum_j
[x_j > t_j] == [z_j > t_j]``. Its ridge fits one jump per parent, at a threshold chosen from the rows where the
node's column splits best (a regression tree's first split on that parent alone, between two rows, with
``kernels.STEP_SIDE_SHARE`` of the rows on either side). A Gaussian kernel of any length spreads a jump over its length,
and a short one fits the noise elsewhere; a tree puts it between two rows (a threshold of one parent at 100 rows:
DoWhy-GCM's tree-based fits had about half the kernels' error). The thresholds were picked from the rows, so the kernel's
prior weight is one over its candidate thresholds per parent, less ``STEP_MARGIN`` nats (a steep but smooth ramp
took it by a few nats and came out worse). The kernel has rank at most p + 1; its Nyström features are exact.

Beside the parents' values, the basis holds their products of degree two (``x_a x_b`` for ``a <= b``: squares and
pairwise interactions) for nodes of at most ``PRODUCT_PARENTS`` parents, computed from the same clamped inputs as
the kernel: a quadratic or interaction mechanism (a dose times a modifier, a symmetric bump) is then fitted by a
handful of weights, and under an intervention that puts the parents where they never were jointly it keeps its
shape, where a kernel can only fall back to the linear part. Within the clamp box they are a polynomial; beyond
it, held at the box's edge like the kernel (and, where the rows at the edge say so, continued further:
``condfip.model.edge_check``). The fit's quadratic model (``condfip.model.adaptation``) reads them.

Axis legend: m rows, d nodes, k nodes asked for, p parent slots, q product slots, v = p + q value slots,
M landmarks, s length scales.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from condfip.model.kernels import ADDITIVE, JOINT, STEP, gram_blocks, step_thresholds

NUM_LANDMARKS = 120  # kernel landmarks of a fit on up to LANDMARK_ROWS rows (fewer with fewer rows)
LANDMARK_ROWS = 400  # beyond this many fitted rows the landmarks grow with the square root of the rows ...
MAX_LANDMARKS = 256  # ... up to this many
# a node's kernel in p parents needs more landmarks as p grows (a fit on 400 rows of a polynomial of 10 parents: a
# third of the error with 240 landmarks than with 120): at least this many per parent of the most-parented node of
# a fit, up to MAX_LANDMARKS (``adaptation.kernel_tiers`` fits the nodes of many parents apart)
LANDMARKS_PER_PARENT = 24
# the landmark search (``spread_landmarks``) holds the parents' values of a group of nodes, at most this many numbers
LANDMARK_SEARCH_ELEMENTS = 2**22
# the landmarks of a fit on more rows are chosen among this many of its rows, evenly spaced
LANDMARK_CANDIDATE_ROWS = 2048
# the joint kernel's length scales, times sqrt(number of parents), on standardized parents
LENGTH_SCALES = (0.5, 1.0, 2.0, 6.0)
ADDITIVE_SCALES = (
    0.3,
    1.0,
)  # of the additive kernel (a mean of one kernel per parent), on standardized parents
NUM_SCALES = len(LENGTH_SCALES) + len(ADDITIVE_SCALES) + 1  # kernel candidates per node: the step kernel last
# an additive kernel shorter than SHORT_SCALE has a prior log weight this many nats below the other kernels
# (unseen families at 400 rows: steps and thresholds 19-26 % lower noise error with it; without the margin
# smooth saturating mechanisms were 4-9 % worse, with it within 1 %)
SHORT_SCALE_MARGIN = 3.0
SHORT_SCALE = 1.0
SHORT_SCALE_PARENTS = 4  # nodes of more parents never take the short additive scale
# the step kernel (one threshold per parent, a mean over the parents of "both on the same side"): for nodes of
# 1 to STEP_PARENTS parents, each threshold chosen from the rows (``condfip.model.kernels.step_thresholds``)
STEP_PARENTS = 4
STEP_SEARCH_ELEMENTS = 2**22  # the threshold search's tensors: at most this many rows x nodes x parents each
# the step kernel's prior log weight is the log of one over its candidate thresholds (it was picked from the rows),
# less this many nats: a steep but smooth ramp (tanh(6 x)) took it from 0-2 nats and came out 3-7 % worse
STEP_MARGIN = 4.0
# nodes of at most this many parents get their parents' products of degree two (p (p + 1) / 2 of them)
PRODUCT_PARENTS = 6
JITTER = 1e-4  # added to the landmarks' kernel (diagonal 1) before it is factored: repeated landmarks stay solvable


def product_pairs(num_slots: int) -> torch.Tensor:
    """The parent-slot pairs ``(a, b)``, ``a <= b``, of the products of degree two over ``num_slots`` slots, [q, 2],
    ordered by ``b`` then ``a``: the pairs of fewer slots are a prefix of those of more (a merged basis keeps each
    part's product columns in place)."""
    pairs = [(a, b) for b in range(num_slots) for a in range(b + 1)]
    return torch.tensor(pairs, dtype=torch.long).reshape(-1, 2)


def landmark_count(num_rows: int, max_parents: int = 1) -> int:
    """Landmarks for a fit on ``num_rows`` rows whose most-parented node has ``max_parents`` parents:
    ``NUM_LANDMARKS`` up to ``LANDMARK_ROWS`` rows, then growing with the square root of the rows (a kernel fit of
    more rows resolves finer structure), and at least ``LANDMARKS_PER_PARENT`` per parent (a kernel of more
    parents needs more landmarks), up to ``MAX_LANDMARKS``; never more than the rows."""
    grown = round(NUM_LANDMARKS * math.sqrt(max(num_rows, 1) / LANDMARK_ROWS))
    wanted = max(grown, LANDMARKS_PER_PARENT * max_parents)
    return min(max(num_rows, 1), max(NUM_LANDMARKS, min(wanted, MAX_LANDMARKS)))


def spread_landmarks(values: torch.Tensor, num: int) -> torch.Tensor:
    """The landmark rows of each node from its parents' values [k, n, p] -> row indices [k, num]: first
    ``max(1, num // 2)`` evenly spaced rows, then, one at a time, the row farthest (Euclidean) from every
    landmark chosen so far, the first of equals. Distances are summed over the parents one slot at a time
    (elementwise operations only), so every CPU picks the same rows."""
    k, n, p = values.shape
    even = torch.linspace(0, n - 1, max(1, num // 2)).round().long()  # [e]
    gap = torch.full((k, n), math.inf, dtype=values.dtype)  # [k, n]: squared distance to the nearest landmark

    def take(chosen: torch.Tensor) -> torch.Tensor:  # chosen [k]: one row per node -> gap to it [k, n]
        landmark = values[torch.arange(k), chosen]  # [k, p]
        distance = torch.zeros(k, n, dtype=values.dtype)
        for slot in range(p):
            distance = distance + (values[:, :, slot] - landmark[:, None, slot]) ** 2
        return torch.minimum(gap, distance)

    picked = [even.expand(k, -1)]
    for row in even.tolist():
        gap = take(torch.full((k,), row, dtype=torch.long))
    for _ in range(num - even.numel()):
        farthest = gap.argmax(dim=1)  # [k]
        picked.append(farthest[:, None])
        gap = take(farthest)
    return torch.cat(picked, dim=1)


class ParentBasis:
    """The parents' values, their products of degree two and their Gaussian-kernel features, per node:
    ``z [m, d] -> [m, k, p + q + sM]``.

    ``parents`` [d, d] (``parents[i, j]`` for ``j -> i``); ``rows`` [n, d], standardized, the rows of the fit:
    ``num_landmarks`` of them are each node's landmarks (``spread_landmarks``). The scales are the joint kernel's
    ``length_scales``, the additive kernel's ``additive_scales``, then, given ``targets`` (the nodes' columns of
    ``rows``, [n, d]), the step kernel (its thresholds from them, ``thresholds`` [d, p]). Padded parent slots are 0. ``bounds`` (lowest
    and highest value of every column [d]) clamps the kernel features' inputs: beyond the rows' range the
    nonlinear part stays at its value at the edge, while the parents' values (the linear part) are not
    clamped; ``margins`` widens them per node, ``product_margins`` those of the products. ``with_scale`` keeps
    one length scale per node (what a fit chose). ``with_bounds`` gives the same basis clamped elsewhere.
    ``kernel_mask`` [d, s] holds the (node, scale) pairs a fit may take, those of finite ``log_prior`` on a node
    with parents: only their kernel features are computed, the others' are 0.
    """

    def __init__(
        self,
        parents: torch.Tensor,
        rows: torch.Tensor,
        *,
        num_landmarks: int = NUM_LANDMARKS,
        length_scales: tuple[float, ...] = LENGTH_SCALES,
        additive_scales: tuple[float, ...] = ADDITIVE_SCALES,
        bounds: tuple[torch.Tensor, torch.Tensor] | None = None,
        targets: torch.Tensor | None = None,
    ) -> None:
        if num_landmarks < 1 or rows.shape[0] < 1:
            raise ValueError(f"the kernel basis needs at least one landmark row; got {rows.shape[0]} rows")
        parents = parents.reshape(parents.shape[-2:]).bool().cpu()  # [d, d]
        d = parents.shape[0]
        counts = parents.sum(dim=1)  # [d]
        self.max_parents = max(1, int(counts.max()) if d else 1)
        index = torch.zeros(d, self.max_parents, dtype=torch.long)  # [d, p]
        valid = torch.zeros(d, self.max_parents, dtype=torch.bool)
        for node in range(d):
            found = torch.nonzero(parents[node]).flatten()
            index[node, : found.numel()] = found
            valid[node, : found.numel()] = True
        self.index, self.valid = index, valid
        # the products of degree two of the first PRODUCT_PARENTS slots, [q, 2]; a node's are valid where both
        # slots are its parents and it has at most PRODUCT_PARENTS of them [d, q]
        self.pairs = product_pairs(min(self.max_parents, PRODUCT_PARENTS))
        self.product_valid = (
            valid[:, self.pairs[:, 0]] & valid[:, self.pairs[:, 1]] & (counts <= PRODUCT_PARENTS)[:, None]
        )
        self.bounds = None if bounds is None else (bounds[0].double().cpu(), bounds[1].double().cpu())

        num = min(num_landmarks, rows.shape[0])
        # nodes [d] whose parents' values are clamped to ``bounds`` in the linear part too: set after a fit to the
        # nodes that kept the nonlinear basis by a clear margin (``Adaptation.clamps_linear``), so that a
        # nonlinear mechanism stays flat beyond the rows' range (as a kernel regression does) while a linear one
        # extrapolates linearly
        self.clamp_linear: torch.Tensor | None = None
        # [d]: how far beyond ``bounds`` each node's inputs are clamped (0: at the bounds), set after a fit for the
        # nodes whose rows at the edge of their range were predicted better by the mechanism continued than held
        # flat (``condfip.model.edge_check.continued_margins``)
        self.margins: torch.Tensor | None = None
        self.product_margins: torch.Tensor | None = None  # [d]: as ``margins``, for the products' inputs
        self.landmarks = self._landmarks(rows.double().cpu(), num)  # [d, M, p]
        width = torch.sqrt(counts.clamp_min(1).double())  # [d]
        joint = [scale * width for scale in length_scales]
        additive = [torch.full_like(width, scale) for scale in additive_scales]
        with_step = targets is not None
        step = [torch.zeros_like(width)] * with_step  # the step kernel has no length
        lengths = torch.stack(joint + additive + step, dim=1)  # [d, S]
        kinds = [JOINT] * len(joint) + [ADDITIVE] * len(additive) + [STEP] * with_step
        kinds = torch.tensor(kinds, dtype=torch.long).expand(d, -1)  # [d, S]
        short = torch.tensor(
            [False] * len(joint) + [scale < SHORT_SCALE for scale in additive_scales] + [False] * with_step
        )  # [S]
        # [d, S]: each kernel's prior log weight per node before normalization: 0, SHORT_SCALE_MARGIN below for a
        # short additive scale, and -inf (never taken) for a short scale on a node of too many parents; the step
        # kernel's, the log of one over its candidate thresholds (its thresholds were picked from the rows)
        allowed = torch.where(counts <= SHORT_SCALE_PARENTS, -SHORT_SCALE_MARGIN, -math.inf).double()  # [d]
        weights = torch.where(short, allowed[:, None], 0.0)
        # a node of one parent: its additive kernel at a length the joint kernel has is that joint kernel, not a
        # candidate of its own (it would count twice in the prior's mean over the kernels, and cost a fit)
        repeats = torch.tensor(
            [False] * len(joint) + [scale in length_scales for scale in additive_scales] + [False] * with_step
        )  # [S]
        weights = torch.where(repeats & (counts == 1)[:, None], -math.inf, weights)
        self.thresholds = torch.zeros(d, self.max_parents, dtype=torch.float64)  # [d, p]
        if with_step:
            choices = torch.zeros(d, self.max_parents, dtype=torch.long)  # [d, p]
            slots = min(self.max_parents, STEP_PARENTS)
            searched = torch.nonzero((counts > 0) & (counts <= STEP_PARENTS)).flatten()  # [k]
            # the search holds a few [n, k', slots] tensors: nodes in groups of at most STEP_SEARCH_ELEMENTS
            group = max(1, STEP_SEARCH_ELEMENTS // (rows.shape[0] * slots))
            values, columns = rows.double().cpu(), targets.double().cpu()  # [n, d], [n, d]
            for nodes in searched.split(group):
                self.thresholds[nodes, :slots], choices[nodes, :slots] = step_thresholds(
                    values, columns[:, nodes], index[nodes, :slots], valid[nodes, :slots]
                )
            has_choices = ((choices > 0) | ~valid).all(dim=1)  # [d]: every parent of the node has a threshold
            eligible = torch.zeros(d, dtype=torch.bool)
            eligible[searched] = has_choices[searched]
            search = torch.log(choices.clamp_min(1).double()).sum(dim=1)  # [d]
            step_weight = torch.where(eligible, -search - STEP_MARGIN, -math.inf)
            weights = torch.cat([weights[:, :-1], step_weight[:, None]], dim=1)
        # [d, S]: the (node, kernel) pairs a fit may take, the only ones whose features are computed (0 elsewhere):
        # a node with parents (a root's kernel features are constants that the fit leaves out), at a kernel of
        # finite prior weight; a scale other than the joint kernel's that no node may take is left out of the basis
        takes = (counts > 0)[:, None] & torch.isfinite(weights)
        kept = (kinds[0] == JOINT) | takes.any(dim=0)  # [S]
        self.lengths, self.kinds, self.kernel_mask = lengths[:, kept], kinds[:, kept], takes[:, kept]
        weights = weights[:, kept]  # [d, s]
        # [d, s]: each kernel's prior log weight per node, normalized
        self.log_prior = (
            weights - torch.logsumexp(weights, dim=1, keepdim=True) if weights.numel() else weights
        )
        # [d, s, M, M]: the landmarks' kernel of the pairs in ``kernel_mask``
        kernels = _laid_out(
            gram_blocks(self.landmarks, self.landmarks, self._kernel_parameters(None), self.kernel_mask),
            self.kernel_mask,
        )
        # W = L^-T with L L^T = K_ZZ + JITTER I (the kernel's diagonal is 1): W^T K_ZZ W = I up to the jitter, so
        # the features' inner products are k(x, Z) (K_ZZ + JITTER I)^-1 k(Z, x'). A Cholesky factor costs a
        # fraction of an eigendecomposition; repeated landmarks (a discrete parent) only meet the jitter. The
        # pairs outside ``kernel_mask`` get a whitening of 0: their features are exactly 0.
        identity = torch.eye(num, dtype=torch.float64)
        factor = torch.linalg.cholesky(kernels[self.kernel_mask] + JITTER * identity)  # [P, M, M], lower
        self.whitening = torch.zeros_like(kernels)  # [d, s, M, M]
        self.whitening[self.kernel_mask] = torch.linalg.solve_triangular(
            factor, identity, upper=False
        ).transpose(-1, -2)
        self.num_kernel = num
        self.num_scales = self.lengths.shape[1]
        # each node's own landmarks (the first of its ``num_kernel`` slots): fewer than ``num_kernel`` in a merged
        # basis, whose padding ``combine`` skips
        self.node_landmarks = torch.full((d,), num, dtype=torch.long)  # [d]

    def _landmarks(self, rows: torch.Tensor, num: int) -> torch.Tensor:
        """Each node's ``num`` landmarks among ``rows`` [n, d] (``spread_landmarks`` of its parents' values,
        clamped like any input; among ``LANDMARK_CANDIDATE_ROWS`` evenly spaced rows of more) -> [d, M, p]; nodes in
        groups whose values hold at most ``LANDMARK_SEARCH_ELEMENTS`` numbers."""
        d = self.index.shape[0]
        if rows.shape[0] > LANDMARK_CANDIDATE_ROWS:  # the search's time stays bounded
            rows = rows[torch.linspace(0, rows.shape[0] - 1, LANDMARK_CANDIDATE_ROWS).round().long()]
        landmarks = torch.zeros(d, num, self.max_parents, dtype=torch.float64)
        group = max(1, LANDMARK_SEARCH_ELEMENTS // (rows.shape[0] * self.max_parents))
        for nodes in torch.arange(d).split(group):
            values = self._values(rows, nodes)[1].transpose(0, 1).contiguous()  # [k, n, p]
            picked = spread_landmarks(values, num)  # [k, M]
            landmarks[nodes] = torch.gather(values, 1, picked[..., None].expand(-1, -1, values.shape[-1]))
        return landmarks

    @property
    def additive(self) -> torch.Tensor:
        """[d, s] bool: the scale is one of the additive kernel's."""
        return self.kinds == ADDITIVE

    @property
    def steps(self) -> torch.Tensor:
        """[d, s] bool: the scale is the step kernel."""
        return self.kinds == STEP

    def _kernel_parameters(
        self, nodes: torch.Tensor | slice | None, device: torch.device | None = None
    ) -> tuple:
        """(kinds [k, s], lengths [k, s], thresholds [k, p], parent counts [k]) of the nodes ``nodes`` (all when
        None), what ``kernels.gram_blocks`` reads."""
        index = slice(None) if nodes is None else nodes
        parts = (self.kinds[index], self.lengths[index], self.thresholds[index], self.parent_counts[index])
        return tuple(part.to(device) for part in parts) if device is not None else parts

    @property
    def parent_counts(self) -> torch.Tensor:
        """[d] long: each node's parents (its valid parent slots)."""
        return self.valid.sum(dim=1)

    @property
    def continued(self) -> torch.Tensor:
        """[d] bool: the node is clamped beyond the bounds, its kernel's inputs or its products' (the edge check
        continued its mechanism)."""
        out = torch.zeros(self.index.shape[0], dtype=torch.bool)
        for margins in (self.margins, self.product_margins):
            if margins is not None:
                out |= (margins > 0).cpu()
        return out

    @property
    def num_products(self) -> int:
        """q: the product slots of every node (a node's invalid ones are 0)."""
        return self.pairs.shape[0]

    @property
    def value_slots(self) -> int:
        """v = p + q: the columns before the kernel features (the parents' values, then their products)."""
        return self.max_parents + self.num_products

    @property
    def size(self) -> int:
        return self.value_slots + self.num_kernel * self.num_scales

    def with_scale(self, scale: torch.Tensor) -> ParentBasis:
        """The same basis with only the kernel features of length scale ``scale[i]`` for node ``i`` ([d] long)."""
        chosen = object.__new__(ParentBasis)
        chosen.__dict__.update(self.__dict__)
        nodes = torch.arange(scale.shape[0])
        chosen.lengths = self.lengths[nodes, scale.cpu()][:, None]  # [d, 1]
        chosen.kinds = self.kinds[nodes, scale.cpu()][:, None]
        chosen.whitening = self.whitening[nodes, scale.cpu()][:, None]  # [d, 1, M, M]
        chosen.kernel_mask = self.kernel_mask[nodes, scale.cpu()][:, None]  # [d, 1]
        chosen.num_scales = 1
        return chosen

    def with_bounds(
        self,
        bounds: tuple[torch.Tensor, torch.Tensor],
        margins: torch.Tensor | None = None,
        product_margins: torch.Tensor | None = None,
    ) -> ParentBasis:
        """The same basis (landmarks, whitening, nodes clamped in their linear part) clamping its inputs to
        ``bounds`` (lowest and highest value of every column [d]) widened by ``margins`` per node ([d]), and the
        products' inputs by ``product_margins``, instead."""
        other = object.__new__(ParentBasis)
        other.__dict__.update(self.__dict__)
        other.bounds = (bounds[0].double().cpu(), bounds[1].double().cpu())
        other.margins = margins
        other.product_margins = product_margins
        return other

    @staticmethod
    def merge(parts: list[tuple[torch.Tensor, ParentBasis]], num_nodes: int) -> ParentBasis:
        """One basis of ``num_nodes`` nodes from bases of disjoint node sets (``(nodes [k] long, basis)``, each
        with one length scale per node, as ``with_scale`` gives, and the same ``bounds``), with the most parent
        slots and landmarks of any part: a node's extra slots and landmarks are padding whose features are
        exactly 0 (whitening rows and columns of 0), so its basis and weights keep their values; its product slots
        keep their place (``product_pairs``), those beyond its own are 0."""
        p = max(basis.max_parents for _, basis in parts)
        size = max(basis.num_kernel for _, basis in parts)
        merged = object.__new__(ParentBasis)
        merged.__dict__.update(parts[0][1].__dict__)
        merged.max_parents, merged.num_kernel, merged.num_scales = p, size, 1
        merged.index = torch.zeros(num_nodes, p, dtype=torch.long)
        merged.valid = torch.zeros(num_nodes, p, dtype=torch.bool)
        merged.pairs = max((basis.pairs for _, basis in parts), key=len)  # the others' are a prefix of it
        merged.product_valid = torch.zeros(num_nodes, merged.pairs.shape[0], dtype=torch.bool)
        merged.landmarks = torch.zeros(num_nodes, size, p, dtype=torch.float64)
        merged.lengths = torch.ones(num_nodes, 1, dtype=torch.float64)
        merged.kinds = torch.zeros(num_nodes, 1, dtype=torch.long)
        merged.thresholds = torch.zeros(num_nodes, p, dtype=torch.float64)
        merged.whitening = torch.zeros(num_nodes, 1, size, size, dtype=torch.float64)
        merged.kernel_mask = torch.zeros(num_nodes, 1, dtype=torch.bool)
        merged.node_landmarks = torch.zeros(num_nodes, dtype=torch.long)
        for nodes, basis in parts:
            if basis.num_scales != 1:
                raise ValueError("merge takes bases with one length scale per node (ParentBasis.with_scale)")
            nodes = nodes.cpu()
            q, m = basis.max_parents, basis.num_kernel
            merged.index[nodes, :q], merged.valid[nodes, :q] = basis.index, basis.valid
            merged.product_valid[nodes, : basis.num_products] = basis.product_valid
            merged.landmarks[nodes, :m, :q] = basis.landmarks
            merged.lengths[nodes] = basis.lengths
            merged.kinds[nodes] = basis.kinds
            merged.thresholds[nodes, :q] = basis.thresholds
            merged.whitening[nodes, :, :m, :m] = basis.whitening
            merged.kernel_mask[nodes] = basis.kernel_mask
            merged.node_landmarks[nodes] = basis.node_landmarks
        merged.clamp_linear = None
        merged.margins = None
        merged.product_margins = None
        return merged

    def _with_products(
        self, values: torch.Tensor, factors: torch.Tensor, nodes: torch.Tensor | None
    ) -> torch.Tensor:
        """The linear part [m, k, p] and the products' clamped inputs [m, k, p] -> the value columns [m, k, p + q]:
        the linear part, then the products of degree two (0 in a node's invalid product slots)."""
        valid = (self.product_valid if nodes is None else self.product_valid[nodes]).to(
            values.device
        )  # [k, q]
        products = factors[..., self.pairs[:, 0]] * factors[..., self.pairs[:, 1]]  # [m, k, q]
        return torch.cat([values, torch.where(valid, products, 0.0)], dim=-1)

    def _values(
        self, z: torch.Tensor, nodes: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z: [m, d] -> the linear part, the kernel's inputs and the products' inputs, each [m, k, p]: the parents'
        values, clamped to ``bounds`` widened by ``margins`` for the kernel (and for the linear part of the nodes in
        ``clamp_linear``) and by ``product_margins`` for the products; padded slots 0."""
        index, valid = self.index, self.valid
        if nodes is not None:
            index, valid = index[nodes], valid[nodes]
        valid = valid.to(z.device)
        # padded slots are 0 whatever node 0 holds (a product with the mask would turn inf into NaN)
        values = torch.where(valid, z.double()[:, index.to(z.device)], 0.0)  # [m, k, p]
        if self.bounds is None:
            return values, values, values
        lower, upper = (bound[index].to(z.device) for bound in self.bounds)  # [k, p]

        def clamped(margins: torch.Tensor | None) -> torch.Tensor:
            low, high = lower, upper
            if margins is not None:
                margin = (margins if nodes is None else margins[nodes]).to(z.device)[:, None]  # [k, 1]
                low, high = lower - margin, upper + margin
            return torch.where(valid, torch.minimum(torch.maximum(values, low), high), 0.0)

        inside = clamped(self.margins)
        factors = inside if self.product_margins is self.margins else clamped(self.product_margins)
        if self.clamp_linear is not None:
            clamp = self.clamp_linear if nodes is None else self.clamp_linear[nodes]
            values = torch.where(clamp.to(z.device)[None, :, None], inside, values)
        return values, inside, factors

    def _kernel(
        self, inside: torch.Tensor, nodes: torch.Tensor | None, size: int | None = None
    ) -> torch.Tensor:
        """Clamped inputs [m, k, p] -> the raw kernel against the landmarks [k, s, m, M] (node-major: a batch of
        contiguous [m, M] blocks, what batched matrix products run fastest on), 0 outside ``kernel_mask``; against
        the first ``size`` landmarks only when given."""
        index = slice(None) if nodes is None else nodes
        device = inside.device
        landmarks = self.landmarks[index, :size].to(device)  # [k, M, p]
        mask = self.kernel_mask[index].to(device)  # [k, s]
        parameters = self._kernel_parameters(index, device)
        return _laid_out(gram_blocks(inside.transpose(0, 1), landmarks, parameters, mask), mask)

    def split(self, z: torch.Tensor, nodes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """z: [m, d] float64 -> the value columns (the parents' values and their products) [m, k, v] and the
        whitened kernel features of every scale, node-major [k, s, m, M] (k = d, or the indices ``nodes``): 0 for
        the (node, scale) pairs outside ``kernel_mask``."""
        nodes = None if nodes is None else nodes.cpu()
        values, inside, factors = self._values(z, nodes)
        whitening = self.whitening if nodes is None else self.whitening[nodes]
        size = self._own_landmarks(nodes)
        whitening = whitening[..., :size, :size].to(z.device)  # [k, s, M', M']
        kernel = self._kernel(inside, nodes, size) @ whitening  # [k, s, m, M']
        if size < self.num_kernel:
            kernel = F.pad(kernel, (0, self.num_kernel - size))
        return self._with_products(values, factors, nodes), kernel

    def kernel_blocks(
        self, z: torch.Tensor, *, whiten: bool = True
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """z: [m, d] float64 -> the value columns [m, d, v] and, per scale ``s``, the whitened kernel features of
        the nodes that may take it (``kernel_mask[:, s]``, k_s of them) [k_s, m, M]: what a fit's moments need,
        without the pairs that are 0 in ``split``. ``whiten=False``: the raw kernel against the nodes' own
        landmarks instead, [k_s, m, M'] (``kernel_whitening`` whitens moments of it)."""
        values, inside, factors = self._values(z, None)
        size = self._own_landmarks(None)
        landmarks = self.landmarks[:, :size].to(z.device)  # [d, M', p]
        raw = gram_blocks(inside.transpose(0, 1), landmarks, self._kernel_parameters(None), self.kernel_mask)
        if not whiten:
            return self._with_products(values, factors, None), raw
        blocks = []
        for block, whitening in zip(raw, self.kernel_whitening(), strict=True):  # [k_s, m, M'], [k_s, M', M']
            features = block @ whitening.to(z.device)  # [k_s, m, M']
            blocks.append(
                F.pad(features, (0, self.num_kernel - size)) if size < self.num_kernel else features
            )
        return self._with_products(values, factors, None), blocks

    def kernel_whitening(self) -> list[torch.Tensor]:
        """Per scale ``s``, the whitening of the nodes that may take it [k_s, M', M'] (M' their own landmarks):
        their features are the raw kernel (``kernel_blocks(z, whiten=False)``) times it."""
        size = self._own_landmarks(None)
        return [
            self.whitening[self.kernel_mask[:, scale], scale, :size, :size]
            for scale in range(self.num_scales)
        ]

    def _own_landmarks(self, nodes: torch.Tensor | None) -> int:
        """The most landmarks any of ``nodes`` (all when None) has of its own: a merged basis's landmarks beyond
        the nodes' own are padding (features exactly 0), not evaluated."""
        own = self.node_landmarks if nodes is None else self.node_landmarks[nodes]  # [k]
        return int(own.max()) if own.numel() else self.num_kernel

    def __call__(self, z: torch.Tensor, nodes: torch.Tensor | None = None) -> torch.Tensor:
        """z: [m, d] float64 -> [m, k, v + sM] (k = d, or the indices ``nodes``): the parents' values and their
        products, then the whitened kernel features of every scale."""
        values, features = self.split(z, nodes)
        features = features.permute(2, 0, 1, 3).flatten(start_dim=2)  # [m, k, sM]
        return torch.cat([values, features], dim=-1)

    def combine(
        self, z: torch.Tensor, weights: torch.Tensor, nodes: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``basis(z, nodes) @ weights`` per node without the whitened features: z [m, d], weights [k, v + sM] ->
        [m, k]. The whitening is folded into the weights (``W w``, once per call), so a row costs the raw
        kernel only: what sampling many rows needs."""
        nodes = torch.arange(self.index.shape[0]) if nodes is None else nodes.cpu()
        values, inside, factors = self._values(z, nodes)
        v, s = self.value_slots, self.num_scales
        out = torch.einsum(
            "mkv,kv->mk", self._with_products(values, factors, nodes), weights[:, :v]
        )  # [m, k]
        kernel_weights = weights[:, v:].reshape(weights.shape[0], s, -1)  # [k, s, M]
        # a node whose kernel weights are all 0 (a linear fit, a root) skips its kernel: adding 0 changes no bit
        uses = (kernel_weights != 0).flatten(start_dim=1).any(dim=1).cpu()  # [k]
        # nodes grouped by their own number of landmarks: a merged basis's padded landmarks are never evaluated
        for size in torch.unique(self.node_landmarks[nodes[uses]]).tolist():
            group = uses & (self.node_landmarks[nodes] == size)  # [k]
            used = nodes[group]
            whitening = self.whitening[used][..., :size, :size].to(z.device)  # [k', s, M', M']
            folded = torch.einsum("ksMN,ksN->ksM", whitening, kernel_weights[group][..., :size])
            kernel = self._kernel(inside[:, group.to(z.device)], used, size)  # [k', s, m, M']
            out[:, group.to(z.device)] += torch.einsum("ksmM,ksM->mk", kernel, folded)
        return out


def _laid_out(blocks: list[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
    """Per scale s the kernel of the nodes ``mask[:, s]`` [k_s, m, M] (``gram_blocks``) -> [k, s, m, M], 0 for the
    pairs outside ``mask`` [k, s]; one scale of every node (a fit's chosen one) without a copy."""
    if len(blocks) == 1 and bool(mask.all()):
        return blocks[0][:, None]
    shape = (mask.shape[0], mask.shape[1], *blocks[0].shape[1:])
    out = (
        blocks[0].new_empty(shape) if bool(mask.all()) else blocks[0].new_zeros(shape)
    )  # each scale copied in
    for scale, block in enumerate(blocks):
        column = mask[:, scale]  # [k]
        if bool(column.all()):
            out[:, scale] = block
        else:
            out[column, scale] = block
    return out
