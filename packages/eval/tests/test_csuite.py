import json

import pytest

from condfip_eval.cli import main
from condfip_eval.csuite import CSuiteSettings, csuite_names, run_csuite


def test_unknown_csuite_name_is_refused():
    with pytest.raises(ValueError, match="unknown CSuite dataset 'nope'"):
        CSuiteSettings(names=("lingauss", "nope"))
    assert "large_backdoor_gm" in csuite_names() and "weak_arrow" in csuite_names()


def test_run_scores_every_requested_model(tmp_path):
    settings = CSuiteSettings(
        names=("lingauss", "nonlin_simpson"),
        methods=("linear",),
        replicates=2,
        num_query=50,
        num_interventional=50,
    )
    text = run_csuite(settings, tmp_path, progress=False).read_text()
    assert "| dataset | Linear ANM |" in text
    lines = [line for line in text.splitlines() if line.startswith("| lingauss |")]
    assert len(lines) == 4  # one row per task table
    mean = float(lines[0].split("|")[2].split()[0])
    assert 0 < mean < 0.2  # a linear fit of a linear-Gaussian model
    document = json.loads((tmp_path / "csuite/context-400/linear/nonlin_simpson.json").read_text())
    assert [r["index"] for r in document["datasets"]] == [0, 1]


def test_cli_unknown_csuite_name_exit_2(tmp_path, capsys):
    assert main(["csuite", "--datasets", "nope", "--methods", "linear", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
