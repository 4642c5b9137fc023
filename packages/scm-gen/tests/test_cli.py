import pytest

from scm_gen.cli import main

SMALL = ["--nodes", "4", "--datasets", "3", "--samples", "10", "--interventions", "2", "--quiet"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["generate", "--nodes", "0"], "nodes=0"),
        (["generate", "--mechanism", "mlp"], "mechanism='mlp'"),
        (["generate", "--preset", "mid"], "preset='mid'"),
        (["generate", "--graph", "tree"], "graph='tree'"),
        (["generate", "--samples", "0"], "samples=0"),
        (["generate", "--samples", "10", "--context", "11"], "context=11"),
        (["generate", "--interventions", "-1"], "num_interventional=-1"),
        (["generate", "--datasets", "0"], "datasets=0"),
        (["generate", "--num-proc", "0"], "num_proc=0"),
        (["generate", "--seed", "-3"], "seed=-3"),
        (["grid", "--nodes", "10,x"], "comma-separated"),
        (["grid", "--nodes", "0"], "nodes=0"),
        (
            ["grid", "--nodes", "10,20,10"],
            "argument --nodes: '10,20,10' names 10 more than once; give each value once",
        ),
        (["csuite", "--datasets", "0"], "datasets=0"),
    ],
)
def test_bad_parameters_print_one_line_and_exit_2(argv, message, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and message in captured.err and "Traceback" not in captured.err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "argv",
    [["generate"], ["generate", "--nodes", "abc", "--out", "x"], ["frobnicate"], []],
)
def test_usage_errors_print_one_line_and_exit_2(argv, capsys):
    assert main(argv) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_existing_output_and_foreign_directories_are_errors(tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    assert main(["generate", *SMALL, "--out", str(tmp_path / "taken")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "taken")]) == 2
    assert "not an scm-gen export" in capsys.readouterr().err
    assert main(["push", str(tmp_path / "taken"), "--repo", "bad"]) == 2
    assert "OWNER/NAME" in capsys.readouterr().err


def test_generate_then_info(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["generate", *SMALL, "--preset", "out", "--mechanism", "linear", "--out", str(out)]) == 0
    assert (out / "README.md").is_file()
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == [
        "config",
        "datasets",
        "nodes",
        "context",
        "query",
        "interventional",
        "shards",
        "MiB",
    ]
    assert lines[2].split()[:7] == ["out_linear_d4", "3", "4", "5", "5", "2", "1"]


def test_cli_output_is_identical_with_one_and_two_processes(tmp_path):
    # Also the test of `export_benchmark(num_proc=...)`: shards hold fixed index runs, workers only add speed.
    args = ["generate", *SMALL, "--datasets", "4", "--shard-size", "1"]
    assert main([*args, "--num-proc", "1", "--out", str(tmp_path / "one")]) == 0
    assert main([*args, "--num-proc", "2", "--out", str(tmp_path / "two")]) == 0
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert len(files) == 6
    for name in files:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_grid_and_csuite_commands_write_their_configs(tmp_path):
    sizes = ["--context", "5", "--query", "3", "--interventions", "2", "--quiet"]
    grid = ["grid", "--nodes", "3", "--scms-per-graph", "1", *sizes]
    assert main([*grid, "--out", str(tmp_path / "grid")]) == 0
    assert len(list((tmp_path / "grid" / "data").iterdir())) == 4
    assert (tmp_path / "grid" / "data" / "in_rff_d3_ctx5").is_dir()
    assert main(["csuite", *sizes, "--out", str(tmp_path / "csuite")]) == 0
    assert len(list((tmp_path / "csuite" / "data").iterdir())) == 9


def test_info_lists_configs_in_natural_order(tmp_path, capsys):
    args = ["grid", "--nodes", "10,2,3", "--scms-per-graph", "1", "--context", "2", "--query", "1"]
    assert (
        main(
            [*args, "--interventions", "0", "--mechanisms", "linear", "--quiet", "--out", str(tmp_path / "g")]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["info", str(tmp_path / "g")]) == 0
    configs = [line.split()[0] for line in capsys.readouterr().out.splitlines()[2:]]
    assert configs == [f"{p}_linear_d{d}_ctx2" for p in ("in", "out") for d in (2, 3, 10)]


def test_generate_and_grid_take_the_new_families(tmp_path):
    from scm_gen.export import iter_benchmark, read_summary

    out = tmp_path / "mixed"
    assert (
        main(
            [
                "generate",
                *SMALL,
                "--mechanism",
                "mixed",
                "--families",
                "nn_relu,polynomial",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    summary = read_summary(out)
    assert summary["generator"]["families"] == ["nn_relu", "polynomial"]
    assert summary["mechanisms"] == ["mixed"]
    for dataset in iter_benchmark(out):
        assert set(dataset.metadata["node_families"]) <= {"nn_relu", "polynomial"}
    grid = tmp_path / "grid"
    args = [
        "grid",
        "--nodes",
        "3",
        "--scms-per-graph",
        "1",
        "--context",
        "2",
        "--query",
        "1",
        "--interventions",
        "0",
    ]
    assert main([*args, "--mechanisms", "nn_tanh,multiplicative_hetero", "--quiet", "--out", str(grid)]) == 0
    assert sorted(p.name for p in (grid / "data").iterdir()) == [
        "in_multiplicative_hetero_d3_ctx2",
        "in_nn_tanh_d3_ctx2",
        "out_multiplicative_hetero_d3_ctx2",
        "out_nn_tanh_d3_ctx2",
    ]
    assert read_summary(grid)["mechanisms"] == ["multiplicative_hetero", "nn_tanh"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["generate", "--mechanism", "rff", "--families", "linear"], "only for mechanism 'mixed'"),
        (["generate", "--mechanism", "mixed", "--families", "cubic"], "family='cubic'"),
        (["grid", "--mechanisms", "linear,linear"], "twice"),
        (["grid", "--mechanisms", "quadratic"], "mechanism='quadratic'"),
        (["grid", "--mechanisms", ","], "non-empty"),
    ],
)
def test_bad_family_options_are_one_line(argv, message, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and message in captured.err
    assert not (tmp_path / "out").exists()
