"""The fixed held-out SCMs of every stage (d = 20, P_IN and P_OUT, linear and RFF), and the Cond-FiP stages'
RMSE figures on them (the graph stage's figures: ``condfip.training.graph_validation``).

All figures are in standardized units (the context rows' mean and standard deviation of each dataset).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from condfip.core.standardization import Standardization
from condfip.model import CondFiPModel, fixed_point_generate
from condfip.model.prepared_decoder import prepare_decoder
from scm_gen import BenchmarkDataset, make_benchmark_dataset

VALIDATION_SEED = 241_006_128  # fixed forever (the paper's arXiv number): figures stay comparable
CELLS = (("in", "linear"), ("in", "rff"), ("out", "linear"), ("out", "rff"))


def validation_cells(
    *, datasets_per_cell: int, num_nodes: int, num_context: int, num_query: int
) -> Iterator[tuple[str, list[BenchmarkDataset]]]:
    """(cell name such as "in/linear", its datasets) for every cell; the same SCMs for every stage, with
    ``num_query`` query and interventional rows beside the context."""
    for cell_index, (preset, mechanism) in enumerate(CELLS):
        examples = [
            make_benchmark_dataset(
                preset,
                mechanism,
                num_nodes,
                num_context=num_context,
                num_query=num_query,
                num_interventional=num_query,
                seed=VALIDATION_SEED,
                index=cell_index * 1000 + i,
            )
            for i in range(datasets_per_cell)
        ]
        yield f"{preset}/{mechanism}", examples


@dataclass
class ValidationCell:
    name: str  # e.g. "in/linear"
    context: torch.Tensor  # [b, n_ctx, d] standardized
    query: torch.Tensor  # [b, n_q, d]
    query_noise: torch.Tensor  # [b, n_q, d] scaled by the context std
    interventional: torch.Tensor  # [b, n_int, d]
    interventional_noise: torch.Tensor  # [b, n_int, d]
    intervened: torch.Tensor  # [b, d] bool, the node of each dataset's intervention
    values: torch.Tensor  # [b, 1, d] intervention value (standardized) on that node
    parents: torch.Tensor  # [b, d, d] bool


def build_validation_set(
    *, datasets_per_cell: int = 4, num_nodes: int = 20, num_context: int = 400, num_query: int = 200
) -> list[ValidationCell]:
    return [
        _stack_cell(name, examples)
        for name, examples in validation_cells(
            datasets_per_cell=datasets_per_cell,
            num_nodes=num_nodes,
            num_context=num_context,
            num_query=num_query,
        )
    ]


def _stack_cell(name: str, examples: list[BenchmarkDataset]) -> ValidationCell:
    parts: dict[str, list[np.ndarray]] = {key: [] for key in ValidationCell.__dataclass_fields__}
    for example in examples:
        context = example.data[: example.num_context]
        standard = Standardization.fit(context)
        mean, std = standard.mean, standard.std
        query = example.data[example.num_context :]
        query_noise = example.noise[example.num_context :]
        d = context.shape[1]
        intervened = np.zeros(d, dtype=bool)
        intervened[example.intervention_node] = True
        values = np.zeros((1, d))
        node = example.intervention_node
        values[0, node] = (example.intervention_value - mean[node]) / std[node]
        parts["context"].append((context - mean) / std)
        parts["query"].append((query - mean) / std)
        parts["query_noise"].append(query_noise / std)
        parts["interventional"].append((example.interventional_data - mean) / std)
        parts["interventional_noise"].append(example.interventional_noise / std)
        parts["intervened"].append(intervened)
        parts["values"].append(values)
        parts["parents"].append(example.adjacency.T != 0)
    tensors = {key: torch.from_numpy(np.stack(value)) for key, value in parts.items() if key != "name"}
    tensors = {key: value if value.dtype == torch.bool else value.float() for key, value in tensors.items()}
    return ValidationCell(name=name, **tensors)


def per_row_rmse(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """Mean over rows (and datasets) of the root mean square over nodes."""
    return float(((prediction - target) ** 2).mean(dim=-1).sqrt().mean())


@torch.no_grad()
def evaluate(
    model: CondFiPModel, cells: list[ValidationCell], *, stage: str, adapted: bool = False
) -> dict[str, float]:
    """Noise-prediction RMSE (encoder) and, for the decoder stage, generation and interventional RMSE; with
    ``adapted`` also those figures on the API's default path, ``F_hat`` adapted to each dataset's context
    (``.../generation_adapted`` and so on)."""
    device = next(model.parameters()).device
    figures: dict[str, float] = {}
    for cell in cells:
        c = {
            key: getattr(cell, key).to(device) for key in ValidationCell.__dataclass_fields__ if key != "name"
        }
        noise = model.predict_noise(c["query"], c["parents"], context=c["context"])
        figures[f"{cell.name}/noise"] = per_row_rmse(noise, c["query_noise"])
        if stage != "decoder":
            continue
        embedding = model.embed(c["context"], c["parents"])

        def mechanisms(z, embedding=embedding, parents=c["parents"]):
            return model.mechanisms(z, parents, embedding)

        generated = fixed_point_generate(mechanisms, c["query_noise"], c["parents"])
        figures[f"{cell.name}/generation"] = per_row_rmse(generated, c["query"])
        intervened = fixed_point_generate(
            mechanisms,
            c["interventional_noise"],
            c["parents"],
            intervened=c["intervened"],
            values=c["values"],
        )
        figures[f"{cell.name}/interventional"] = per_row_rmse(intervened, c["interventional"])
        decoder_noise = c["query"] - mechanisms(c["query"])
        figures[f"{cell.name}/noise_decoder"] = per_row_rmse(decoder_noise, c["query_noise"])
        if adapted:
            figures.update(_adapted_figures(model, cell.name, c, embedding))
    return figures


def _adapted_figures(model: CondFiPModel, name: str, c: dict, embedding) -> dict[str, float]:
    """Generation, interventional and decoder-noise RMSE with ``F_hat`` adapted to each dataset's context rows
    (``condfip.model.adaptation``, the API's default path), one dataset at a time."""
    generated, intervened, decoder_noise = [], [], []
    for b in range(c["context"].shape[0]):
        parents = c["parents"][b : b + 1]
        prepared = prepare_decoder(
            model.decoder, parents, embedding.index(slice(b, b + 1)), dtype=torch.float64
        )  # in float64, as the API adapts (condfip.api.engine)
        prepared.adapt(c["context"][b].double())

        def mechanisms(z, prepared=prepared):
            return prepared(z[0]).to(z.dtype)[None]

        generated.append(fixed_point_generate(mechanisms, c["query_noise"][b : b + 1], parents))
        intervened.append(
            fixed_point_generate(
                mechanisms,
                c["interventional_noise"][b : b + 1],
                parents,
                intervened=c["intervened"][b : b + 1],
                values=c["values"][b : b + 1],
            )
        )
        decoder_noise.append(c["query"][b : b + 1] - mechanisms(c["query"][b : b + 1]))
    return {
        f"{name}/generation_adapted": per_row_rmse(torch.cat(generated), c["query"]),
        f"{name}/interventional_adapted": per_row_rmse(torch.cat(intervened), c["interventional"]),
        f"{name}/noise_decoder_adapted": per_row_rmse(torch.cat(decoder_noise), c["query_noise"]),
    }
