"""Bootstrap intervals of an average causal effect on Sachs, against fitting DoWhy-GCM once on the same data.

    PYTHONPATH=packages/eval/src OMP_NUM_THREADS=1 /path/to/venv-with-dowhy/bin/python \\
        packages/condfip/benchmarks/bench_bootstrap.py [--resamples 100] [--repeats 3] [--model small]
        [--paths adapted zero-shot] [--effects data fresh] [--positive]

Data: the 853 observational CD3/CD28 rows and the 17-edge consensus graph (``condfip_eval.sachs``). The effect:
``do(praf = 60)`` (about praf's mean) against no intervention, on pmek. Timed, in alternation so that both see
the same load on a shared machine (median over ``--repeats``):

- DoWhy: ``gcm.auto.assign_causal_mechanisms`` (quality GOOD) + ``gcm.fit`` on a fresh causal model: the cost
  of ONE resample of a DoWhy bootstrap;
- Cond-FiP: ``model.bootstrap(table, graph, statistic, num_bootstraps=R).interval()`` with the effect computed
  from the rows' own abducted noise (``data=scm.data``, ``--effects data``) and from fresh rows (the default
  of ``average_causal_effect``: rows until a 1 % standard error, ``fresh``), adapted (the default) and
  zero-shot (``--paths``);
- one effect from 10,000 fresh rows and 10,000 observational samples, each model already fitted (DoWhy:
  ``gcm.average_causal_effect(num_samples_to_draw=10_000)``, ``gcm.draw_samples``).

Without DoWhy installed only the Cond-FiP figures are printed. Torch runs on one thread (``--threads``), on the
CPU unless ``--device`` says otherwise (on CUDA, ``bootstrap`` infers 16 resamples at a time).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import networkx as nx
import torch

from condfip import CondFiP

TARGET, NODE, VALUE = "pmek", "praf", 60.0


def _seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--resamples", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="small")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="where Cond-FiP runs (DoWhy runs on the CPU)")
    parser.add_argument(
        "--paths", nargs="+", choices=["adapted", "zero-shot"], default=["adapted", "zero-shot"]
    )
    parser.add_argument("--effects", nargs="+", choices=["data", "fresh"], default=["data", "fresh"])
    parser.add_argument(
        "--positive",
        action="store_true",
        help="Cond-FiP models the columns on the log scale (positive=True, the README's Sachs example); DoWhy "
        "fits the table as it is either way",
    )
    args = parser.parse_args()
    options = {"positive": True} if args.positive else {}
    torch.set_num_threads(args.threads)
    from condfip_eval.sachs import consensus_graph, load_sachs

    table, graph = load_sachs(), consensus_graph()
    model = CondFiP.from_pretrained(args.model, device=args.device)
    try:
        from dowhy import gcm

        gcm.config.disable_progress_bars()
    except ImportError:
        gcm = None
        print("DoWhy is not installed: Cond-FiP figures only")

    def fresh(scm) -> float:
        return scm.average_causal_effect(TARGET, {NODE: VALUE}, {}, seed=0)

    def on_rows(scm) -> float:
        return scm.average_causal_effect(TARGET, {NODE: VALUE}, {}, data=scm.data)

    runs: dict[str, Callable[[], object]] = {}
    if gcm is not None:

        def dowhy_fit():
            causal_model = gcm.InvertibleStructuralCausalModel(nx.DiGraph(graph))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                gcm.auto.assign_causal_mechanisms(
                    causal_model, table, quality=gcm.auto.AssignmentQuality.GOOD
                )
                gcm.fit(causal_model, table)
            return causal_model

        runs["DoWhy assign + fit (one resample)"] = dowhy_fit
    effects = {"data": ("data rows", on_rows), "fresh": ("fresh rows", fresh)}
    for kind in args.paths:
        zero_shot = kind == "zero-shot"
        for name, statistic in (effects[effect] for effect in args.effects):
            runs[f"Cond-FiP bootstrap x{args.resamples}, {kind}, effect from {name}"] = (
                lambda statistic=statistic, zero_shot=zero_shot: model.bootstrap(
                    table,
                    graph,
                    statistic,
                    num_bootstraps=args.resamples,
                    seed=0,
                    zero_shot=zero_shot,
                    progress=False,
                    **options,
                ).interval()
            )
    model.infer(table, graph, **options)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            times[name].append(_seconds(run))
    medians = {name: statistics.median(values) for name, values in times.items()}
    reference = next((medians[name] for name in medians if name.startswith("DoWhy")), None)
    print(f"{'':64s} {'median s':>9s} {'x DoWhy fit':>12s}")
    for name, seconds in medians.items():
        ratio = f"{seconds / reference:12.2f}" if reference else ""
        print(f"{name:64s} {seconds:9.2f} {ratio}")

    scm = model.infer(table, graph, **options)
    for name, statistic in (effects[effect] for effect in args.effects):
        result = model.bootstrap(
            table, graph, statistic, num_bootstraps=args.resamples, seed=0, progress=False, **options
        )
        lower, upper = result.interval()
        print(
            f"Cond-FiP effect from {name} (adapted): {result.estimate:.3f}, 95 % interval [{lower:.3f}, {upper:.3f}]"
        )
    rows = 10_000
    single = {
        "Cond-FiP effect, 10,000 fresh rows": lambda: scm.average_causal_effect(
            TARGET, {NODE: VALUE}, {}, n=rows, seed=0
        ),
        "Cond-FiP effect, default rows": lambda: fresh(scm),
        "Cond-FiP sample 10,000 rows": lambda: scm.sample(rows, seed=0),
    }
    if gcm is not None:
        fitted = dowhy_fit()
        single["DoWhy effect, 10,000 fresh rows"] = lambda: gcm.average_causal_effect(
            fitted, TARGET, {NODE: lambda x: VALUE}, {}, num_samples_to_draw=rows
        )
        single["DoWhy draw_samples 10,000 rows"] = lambda: gcm.draw_samples(fitted, rows)
    for name, run in single.items():
        run()
        print(f"{name:64s} {statistics.median(_seconds(run) for _ in range(args.repeats)):9.3f} s")


if __name__ == "__main__":
    main()
