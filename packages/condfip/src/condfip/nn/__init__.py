"""Building blocks shared by the Cond-FiP network and the graph network: the alternating stack of attention
over samples and over nodes (with a pluggable node attention), anchor rows, and pooling over rows in chunks."""

from condfip.nn.anchors import anchor_indices, gather_rows
from condfip.nn.layers import MLP, AlternatingStack, NodeBlock, SampleAttention, SampleBlock
from condfip.nn.pooling import max_over_rows, row_chunks

__all__ = [
    "MLP",
    "AlternatingStack",
    "NodeBlock",
    "SampleAttention",
    "SampleBlock",
    "anchor_indices",
    "gather_rows",
    "max_over_rows",
    "row_chunks",
]
