"""The dataset card (README.md) of an export: YAML header with `configs`, then how the data were made."""

from __future__ import annotations

import json
from typing import Any

from huggingface_hub import DatasetCardData

LICENSE = "mit"

CITATIONS = """\
```bibtex
@article{mahajan2024condfip,
  title   = {Amortized Inference of Causal Models via Conditional Fixed-Point Iterations},
  author  = {Mahajan, Divyat and Gladrow, Jannes and Hilmkil, Agrin and Zhang, Cheng and Scetbon, Meyer},
  journal = {arXiv preprint arXiv:2410.06128},
  year    = {2024}
}
@inproceedings{scetbon2024fip,
  title     = {A Fixed-Point Approach for Causal Generative Modeling},
  author    = {Scetbon, Meyer and Jennings, Joel and Hilmkil, Agrin and Zhang, Cheng and Ma, Chao},
  booktitle = {International Conference on Machine Learning (ICML)},
  year      = {2024}
}
@article{geffner2022deci,
  title   = {Deep End-to-end Causal Inference},
  author  = {Geffner, Tomas and Antoran, Javier and Foster, Adam and Gong, Wenbo and Ma, Chao and Kiciman, Emre
             and Sharma, Amit and Lamb, Angus and Kukla, Martin and Pawlowski, Nick and Allamanis, Miltiadis
             and Zhang, Cheng},
  journal = {arXiv preprint arXiv:2202.02195},
  year    = {2022}
}
@inproceedings{lorch2022avici,
  title     = {Amortized Inference for Causal Structure Learning},
  author    = {Lorch, Lars and Sussex, Scott and Rothfuss, Jonas and Krause, Andreas and Sch{\\"o}lkopf, Bernhard},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},
  year      = {2022}
}
```
"""

FIELDS = """\
| column | type | meaning |
|---|---|---|
| `adjacency` | int8 `[d, d]` | the causal graph: `adjacency[i][j] = 1` means the edge `i -> j` (parents of `j` = column `j`) |
| `data` | float64 `[n_context + n_query, d]` | observational rows, the `num_context` context rows first, then the query rows |
| `noise` | float64, same shape | the true exogenous noise of every row of `data` |
| `num_context` | int32 | how many leading rows of `data` are context rows |
| `intervention_node` | int32 | the node of the hard intervention `do(X_node = value)` |
| `intervention_value` | float64 | drawn from `U(q10, q90)` of that node's observational rows |
| `interventional_data` | float64 `[n_int, d]` | fresh rows sampled under the intervention |
| `interventional_noise` | float64, same shape | their true noise |
| `counterfactual_data` | float64 `[n_query, d]` | the query rows' noise pushed through the intervened SCM |
| `num_nodes` | int32 | `d` |
| `preset`, `mechanism`, `graph` | string | the SCM family (`csuite` for the hand-written models) |
| `seed`, `index` | int64 | dataset `index` of a run seeded `seed` is drawn from `numpy.random.SeedSequence(seed, spawn_key=(index,))` |
| `scm_gen_version` | string | version of the generator |
| `metadata` | string (JSON) | everything above plus family details (edges per node, noise kind, ...) |
"""


# What each mechanism family is, for the card of an export that holds it.
MECHANISM_DESCRIPTIONS = {
    "linear": "`f_j = b_j + sum_i W_ij x_i`, weights `+-U(preset range)`, bias `U(-3, 3)`",
    "rff": "random Fourier features of the raw parents, `M = 100`, length and output scale from the preset",
    "rff_hetero": "RFF location plus noise scaled by `0.1 + softplus(g_j(x_pa))`, `g_j` a second RFF function",
    "nn_tanh": "a random one-hidden-layer tanh network of the standardized parents",
    "nn_sigmoid": "a random one-hidden-layer sigmoid network of the standardized parents",
    "nn_relu": "a random one-hidden-layer ReLU network of the standardized parents",
    "polynomial": "a random polynomial of degree 2 or 3 (squares, cubes and interactions) of the standardized, "
    "soft-clipped parents",
    "multiplicative": "a product of positive parent effects `prod_i exp(a_i v_i)` of the standardized, "
    "soft-clipped parents",
    "mixed": "every node draws its own family from a list (default: linear, RFF, the three networks, "
    "polynomial, multiplicative; `families` in the generator configuration when given); the draws are in "
    "`metadata.node_families`",
}
for _name in ("nn_tanh", "nn_sigmoid", "nn_relu", "polynomial", "multiplicative"):
    MECHANISM_DESCRIPTIONS[f"{_name}_hetero"] = (
        f"as `{_name}`, with noise scaled by `0.1 + softplus(3 tanh(g_j / 3))`, `g_j` a second function of the "
        "same family"
    )
CALIBRATION_NOTE = (
    "The network, polynomial, multiplicative and mixed families are *calibrated*: the parents enter "
    "standardized by their mean and standard deviation, and each node's signal is scaled to mean `b_j ~ "
    "U(-3, 3)` and standard deviation `o_j ~ U(preset range)`, all measured once on 512 reference rows of "
    "the SCM (`scm_gen.calibrated`)."
)


def _mechanism_section(mechanisms: list[str]) -> str:
    """A table of the mechanism families of an export (empty for CSuite-only exports)."""
    known = [name for name in mechanisms if name in MECHANISM_DESCRIPTIONS]
    if not known:
        return ""
    rows = "\n".join(f"| `{name}` | {MECHANISM_DESCRIPTIONS[name]} |" for name in known)
    calibrated = any(name not in ("linear", "rff", "rff_hetero") for name in known)
    note = f"\n\n{CALIBRATION_NOTE}" if calibrated else ""
    return f"\n## Mechanisms\n\n| mechanism | `f_j` |\n|---|---|\n{rows}{note}\n"


def dataset_card(summary: dict[str, Any]) -> str:
    """README.md text for an export described by its `scm_gen.json` summary."""
    split = summary["split"]
    configs = [
        {"config_name": name, "data_files": [{"split": split, "path": f"data/{name}/*.parquet"}]}
        for name in summary["configs"]
    ]
    header = DatasetCardData(
        license=LICENSE,
        pretty_name=summary["title"],
        tags=["causal-inference", "structural-causal-models", "synthetic", "tabular"],
        size_categories=[_size_category(sum(c["num_datasets"] for c in summary["configs"].values()))],
        configs=configs,
    ).to_yaml()
    table = "\n".join(
        f"| `{name}` | {facts['num_datasets']} | {', '.join(map(str, facts['num_nodes']))} | "
        f"{', '.join(map(str, facts['num_context']))} | {', '.join(map(str, facts['num_query']))} | "
        f"{', '.join(map(str, facts['num_interventional']))} | {', '.join(map(str, facts['seed']))} | "
        f"{facts['first_index']}..{facts['last_index']} |"
        for name, facts in summary["configs"].items()
    )
    generator = json.dumps(summary["generator"], indent=2, sort_keys=True)
    return f"""---
{header}---

# {summary["title"]}

Synthetic structural causal models (SCMs) with their observational, interventional and counterfactual
samples and the **true noise** of every row, made with `scm-gen` {summary["scm_gen_version"]} for zero-shot causal
model inference (Cond-FiP). One example (row) is one dataset drawn from one SCM.

## Conventions

- **Graph convention**: `adjacency[i][j] = 1` means the edge `i -> j`; the parents of node `j` are the
  nonzero entries of column `j` (as networkx, AVICI and gCastle).
- **Units**: the data are **not standardized** (raw units). Models in this project standardize per dataset:
  `X <- (X - m) / s` and `N <- N / s` with `m`, `s` the mean and standard deviation of the observational rows
  (`scm_gen.standardize`).
- **Noise**: additive, `X_j = f_j(X_pa(j)) + N_j`, except the heteroscedastic mechanisms `rff_hetero` and
  `*_hetero` (`X_j = f_j + s_j(X_pa) N_j`).

## Configs

Split `{split}` in every config. Dataset `index` of a config with run seed `seed` is drawn from
`numpy.random.SeedSequence(seed, spawn_key=(index,))`.

| config | datasets | nodes | context rows | query rows | interventional rows | seed | indices |
|---|---|---|---|---|---|---|---|
{table}
{_mechanism_section(summary.get("mechanisms", []))}
## Columns

{FIELDS}
## How the data were made

Graphs, mechanisms and noise follow the presets of Cond-FiP (P_IN: Erdos-Renyi and scale-free graphs, Gaussian
noise; P_OUT: Watts-Strogatz and stochastic-block-model graphs, Laplace noise; the mechanisms above). CSuite
configs are hand-written SCMs with the graphs and character of the CSuite datasets.
Reproduce any dataset with `scm_gen.make_benchmark_dataset(preset, mechanism, num_nodes, seed=seed,
index=index, ...)` (or `scm_gen.csuite.make_csuite_dataset`). Generator configuration:

```json
{generator}
```

## Licence

MIT (the generated data and the generator).

## Citation

{CITATIONS}"""


def _size_category(count: int) -> str:
    for limit, label in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
    ):
        if count < limit:
            return label
    return "n>1M"
