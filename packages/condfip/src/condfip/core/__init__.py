"""Torch-free foundations shared by every layer: standardization of tables, DAG order and paths, the DAG rule
from edge probabilities, graph scores, memory estimates. numpy and networkx only."""
