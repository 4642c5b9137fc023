"""Torch-free foundations shared by every layer: standardization of tables, DAG order and paths, the DAG rule
from edge probabilities, and graph scores. numpy and networkx only."""
