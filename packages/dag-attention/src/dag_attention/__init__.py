"""Masked DAG attention with a clipped softmax (FiP): a fused Triton kernel and a PyTorch reference.

    from dag_attention import dag_attention, parents_from_adjacency, DAGAttention

Triton is optional (``pip install 'dag-attention[triton]'``) and imported only when a call needs it.
"""

from __future__ import annotations

from dag_attention.module import DAGAttention
from dag_attention.op import dag_attention, parents_from_adjacency
from dag_attention.reference import dag_attention_reference

__version__ = "0.1.0"
__all__ = ["DAGAttention", "dag_attention", "dag_attention_reference", "parents_from_adjacency"]
