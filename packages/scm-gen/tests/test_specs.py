import collections

import numpy as np
import pytest

from scm_gen.specs import csuite_specs, generate_specs, grid_specs


def test_grid_has_the_papers_cells_and_graph_families():
    specs = grid_specs()
    assert len(specs) == 4 * 2 * (9 + 6)
    assert [spec.index for spec in specs] == list(range(len(specs)))
    cells = collections.defaultdict(collections.Counter)
    for spec in specs:
        cells[spec.config][spec.graph] += 1
        assert (spec.num_context, spec.num_query, spec.num_interventional) == (400, 400, 400)
    assert len(cells) == 16
    assert cells["in_linear_d10"] == {"er": 3, "sf_in": 3, "sf_out": 3}
    assert cells["out_rff_d100"] == {"ws": 3, "sbm": 3}


def test_scarce_variant_keeps_the_scms_and_shrinks_the_context():
    full = grid_specs(node_counts=(10,), scms_per_graph=1)
    scarce = grid_specs(node_counts=(10,), scms_per_graph=1, num_context=50)
    assert scarce[0].config == "in_linear_d10_ctx50" and full[0].config == "in_linear_d10"
    for full_spec, scarce_spec in zip(full[:3], scarce[:3], strict=True):
        full_set, scarce_set = full_spec.build(), scarce_spec.build()
        np.testing.assert_array_equal(full_set.adjacency, scarce_set.adjacency)
        np.testing.assert_array_equal(
            full_set.scm.mechanisms_model.weights, scarce_set.scm.mechanisms_model.weights
        )
        assert scarce_set.context_data.shape == (50, 10) and scarce_set.query_data.shape == (400, 10)


def test_csuite_specs_cover_every_model_with_distinct_indices():
    specs = csuite_specs(num_datasets=2)
    assert len(specs) == 18 and len({spec.index for spec in specs}) == 18
    assert specs[0].build().metadata["csuite"] == "lingauss"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"preset": "in", "mechanism": "rff", "num_nodes": 0, "num_datasets": 1}, "nodes=0"),
        ({"preset": "in", "mechanism": "rff", "num_nodes": 5, "num_datasets": 0}, "datasets=0"),
        (
            {"preset": "in", "mechanism": "rff", "num_nodes": 5, "num_datasets": 1, "graph": "tree"},
            "graph='tree'",
        ),
        (
            {"preset": "in", "mechanism": "rff", "num_nodes": 5, "num_datasets": 1, "num_context": 0},
            "num_context=0",
        ),
        ({"preset": "in", "mechanism": "rff", "num_nodes": 5, "num_datasets": 1, "seed": -1}, "seed=-1"),
    ],
)
def test_generate_specs_reject_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_specs(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"node_counts": (3, 3)}, r"node_counts=\[3, 3\] names 3 more than once; give each once"),
        ({"node_counts": 10}, r"node_counts=10 must be a list, e.g. node_counts=\[10, 20, 50, 100\]"),
        ({"node_counts": ()}, "node_counts is empty"),
        ({"mechanisms": "linear"}, "non-empty list"),
    ],
)
def test_grid_specs_reject_bad_lists(kwargs, message):
    with pytest.raises(ValueError, match=message):
        grid_specs(**{"mechanisms": ["linear"], "scms_per_graph": 1, **kwargs})


def test_csuite_specs_refuse_a_bare_name():
    with pytest.raises(ValueError, match="names='lingauss' must be a list"):
        csuite_specs(names="lingauss")
