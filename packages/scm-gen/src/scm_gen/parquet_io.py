"""Benchmark datasets to and from Arrow / Parquet (pyarrow and numpy only, so worker processes stay light).

One table row is one dataset; matrices are `list<list<value>>` columns. The schema, with the Hugging Face
`datasets` features in its metadata, is made once by `scm_gen.export` and handed to the writers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from scm_gen.benchmark import BenchmarkDataset
from scm_gen.limits import MAX_MATRIX_CELLS

ROWS_PER_ROW_GROUP = 32  # datasets held in memory before they are written (fewer for very large datasets)
MATRIX_COLUMNS = ("data", "noise", "interventional_data", "interventional_noise", "counterfactual_data")
# Random doubles barely compress and dictionary-encoding them is slow: snappy, dictionaries for labels only.
WRITE_OPTIONS = {
    "compression": "snappy",
    "use_dictionary": ["preset", "mechanism", "graph", "scm_gen_version"],
}


def _nested(matrices: Sequence[np.ndarray], value_type: pa.DataType) -> pa.ListArray:
    """`list<list<value>>` from 2-D arrays (row r of the column is matrix r)."""
    rows = np.array([m.shape[0] for m in matrices], dtype=np.int64)
    widths = np.array([m.shape[1] for m in matrices], dtype=np.int64)
    flat = [np.ravel(m) for m in matrices]
    values = np.concatenate(flat) if flat else np.empty(0)
    inner_offsets = np.concatenate([[0], np.cumsum(np.repeat(widths, rows))]).astype(np.int32)
    outer_offsets = np.concatenate([[0], np.cumsum(rows)]).astype(np.int32)
    inner = pa.ListArray.from_arrays(pa.array(inner_offsets), pa.array(values, type=value_type))
    return pa.ListArray.from_arrays(pa.array(outer_offsets), inner)


def _to_json(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in metadata")


def datasets_to_table(datasets: Sequence[BenchmarkDataset], schema: pa.Schema) -> pa.Table:
    """One Arrow table row per dataset, with the schema of `FEATURES`."""
    meta = [d.metadata for d in datasets]
    columns = {
        "adjacency": _nested([d.adjacency for d in datasets], pa.int8()),
        **{name: _nested([getattr(d, name) for d in datasets], pa.float64()) for name in MATRIX_COLUMNS},
        "num_context": pa.array([d.num_context for d in datasets], pa.int32()),
        "intervention_node": pa.array([d.intervention_node for d in datasets], pa.int32()),
        "intervention_value": pa.array([d.intervention_value for d in datasets], pa.float64()),
        "num_nodes": pa.array([d.num_nodes for d in datasets], pa.int32()),
        "preset": pa.array([m.get("preset") for m in meta], pa.string()),
        "mechanism": pa.array([m.get("mechanism") for m in meta], pa.string()),
        "graph": pa.array([m.get("graph") for m in meta], pa.string()),
        "seed": pa.array([m.get("seed") for m in meta], pa.int64()),
        "index": pa.array([m.get("index") for m in meta], pa.int64()),
        "scm_gen_version": pa.array([m.get("scm_gen_version") for m in meta], pa.string()),
        "metadata": pa.array([json.dumps(m, sort_keys=True, default=_to_json) for m in meta], pa.string()),
    }
    return pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)


def matrix_cells(num_nodes: int, num_rows: int, num_interventional: int) -> int:
    """Values in the largest matrix of one dataset (rows, interventional rows or adjacency)."""
    return max(num_rows, num_interventional, num_nodes) * num_nodes


def row_group_size(cells: int) -> int:
    """Datasets per row group for datasets of at most `cells` values per matrix: `ROWS_PER_ROW_GROUP`, fewer
    when a group's column would exceed the 32-bit offsets of Arrow lists (`MAX_MATRIX_CELLS` values)."""
    return max(1, min(ROWS_PER_ROW_GROUP, MAX_MATRIX_CELLS // max(cells, 1)))


def write_shard(
    specs: Sequence[Any], path: str, schema: pa.Schema, on_dataset: Callable[[], None] | None = None
) -> int:
    """Generate the datasets of `specs` in order and stream them into one Parquet file; returns the count."""
    pending: list[BenchmarkDataset] = []
    group_size = row_group_size(
        max(matrix_cells(s.num_nodes, s.num_context + s.num_query, s.num_interventional) for s in specs)
    )
    with pq.ParquetWriter(path, schema, **WRITE_OPTIONS) as writer:
        for spec in specs:
            pending.append(spec.build())
            if on_dataset is not None:
                on_dataset()
            if len(pending) == group_size:
                writer.write_table(datasets_to_table(pending, schema))
                pending = []
        if pending:
            writer.write_table(datasets_to_table(pending, schema))
    return len(specs)


def _matrices(column: pa.ListArray, dtype: type) -> list[np.ndarray]:
    """Inverse of `_nested`: row r of a `list<list<value>>` column as a 2-D array."""
    outer = column.offsets.to_numpy()
    inner_lists = column.values
    inner = inner_lists.offsets.to_numpy()
    values = inner_lists.values.to_numpy(zero_copy_only=False).astype(dtype, copy=False)
    matrices = []
    for row in range(len(column)):
        start, stop = outer[row], outer[row + 1]
        block = values[inner[start] : inner[stop]]
        width = (inner[start + 1] - inner[start]) if stop > start else 0
        matrices.append(block.reshape(stop - start, width).copy())
    return matrices


def table_to_datasets(table: pa.Table | pa.RecordBatch) -> list[BenchmarkDataset]:
    """Inverse of `datasets_to_table` (without the `scm` objects, which are not stored)."""
    batch = table.combine_chunks().to_batches()[0] if isinstance(table, pa.Table) else table
    column = {name: batch.column(name) for name in batch.schema.names}
    adjacency = _matrices(column["adjacency"], np.int8)
    matrices = {name: _matrices(column[name], np.float64) for name in MATRIX_COLUMNS}
    out = []
    for row in range(batch.num_rows):
        num_nodes = int(column["num_nodes"][row].as_py())
        fix = {
            name: m[row] if m[row].size else np.zeros((m[row].shape[0], num_nodes))
            for name, m in matrices.items()
        }
        out.append(
            BenchmarkDataset(
                adjacency=adjacency[row]
                if adjacency[row].size
                else np.zeros((num_nodes, num_nodes), np.int8),
                num_context=int(column["num_context"][row].as_py()),
                intervention_node=int(column["intervention_node"][row].as_py()),
                intervention_value=float(column["intervention_value"][row].as_py()),
                metadata=json.loads(column["metadata"][row].as_py()),
                **fix,
            )
        )
    return out
