"""The READMEs' code runs: every fenced ``python`` block and every command of every fenced ``bash`` block.

Python blocks run in order, one namespace per README, prepared with small stand-ins for the names the READMEs
leave to the reader (``table``, ``graph``, ``noise_frame``, ...). A block that imports a module that is not
installed (DoWhy) is skipped, by name, with the reason. ``PYTHON_EDITS`` lists the few textual changes that
keep a block small (each must still match its README).

Shell commands run in order, one scratch folder per README, through the installed entry points, with small
sizes. ``SHELL_RULES`` says, for every command, how it is shrunk, that only its arguments are checked against
the command's parser (the published runs take hours), or why it is skipped. A command no rule matches fails
the test, and so does a rule that no README uses: the table follows the READMEs.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib.util
import re
import shlex
import shutil
import string
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
READMES = sorted(
    [ROOT / "README.md", *ROOT.glob("packages/*/README.md"), *ROOT.glob("packages/eval/results/**/README.md")]
)
RESULTS = "packages/eval/results"

# --- the table -----------------------------------------------------------------------------------------------

RUN, PARSE, SKIP, ENV = "run", "parse", "skip", "env"


@dataclass(frozen=True, eq=False)
class Rule:
    """Commands of the READMEs matching ``readmes`` (glob) whose text fully matches ``pattern``."""

    readmes: str
    pattern: str
    action: str  # RUN (with ``extra`` appended), PARSE (arguments against the CLI's parser), SKIP, ENV
    why: str
    extra: str = ""  # RUN: arguments appended (smaller sizes)
    env: dict[str, str] = field(default_factory=dict)


SMALL_DEMO = "--num-nodes 5 --num-context 60 --seed 0"
SMALL_GRID = "--nodes 5 --scms-per-graph 1 --context 20 --query 10 --interventions 10"
SMALL_PAPER = "--nodes 5 --presets in --mechanisms linear --methods condfip-zero-shot,linear"
INSTALLS = "installs packages; the test runs in the installed ones"

SHELL_RULES: tuple[Rule, ...] = (
    Rule("*", r"(python -m )?pip (wheel|install) .*", SKIP, INSTALLS),
    Rule("README.md", r"nox -s tests", SKIP, "the whole test suite, which holds this test"),
    Rule("*", r"(TRITON_INTERPRET=1 )?python -m pytest .*", SKIP, "a test suite, run by nox"),
    Rule("*/scm-gen/README.md", r"python .*/bench_generate\.py", SKIP, "a benchmark: minutes of generation"),
    Rule(f"{RESULTS}/README.md", r"python -m venv .*", SKIP, "builds a DoWhy environment from the registry"),
    Rule(f"{RESULTS}/README.md", r"(cp|rm) .*|python -c .*", SKIP, "edits a finished multi-hour run folder"),
    Rule("*", r"condfip demo", RUN, "a 5-node SCM, 60 context rows", SMALL_DEMO),
    Rule("*/condfip/README.md", r"condfip (infer|effect) .*", RUN, "as written, on a 200-row table.csv"),
    Rule("*/scm-gen/README.md", r"scm-gen grid --out grid/", RUN, "d = 5, one SCM a family", SMALL_GRID),
    Rule("*/scm-gen/README.md", r"scm-gen info grid/", RUN, "as written"),
    Rule("*/eval/README.md", r"condfip-eval paper --quick --out results/", RUN, "d = 5, linear", SMALL_PAPER),
    Rule("*/eval/README.md", r"condfip-eval report results/", RUN, "as written"),
    Rule(f"{RESULTS}/*", r"(condfip-eval|\$DOWHY) .*", PARSE, "a published run (hours): its arguments parse"),
    Rule(
        f"{RESULTS}/paper-grid/*",
        r"for rows in 400 100( 50)?; do",
        ENV,
        "the loop's first value",
        env={"rows": "400"},
    ),
    Rule(f"{RESULTS}/paper-grid/*", r"done", ENV, "end of the loop"),
    Rule(
        f"{RESULTS}/ecoli70/*",
        r"ECOLI70=\$\(.*\)",
        ENV,
        "pgmpy's file; any path parses",
        env={"ECOLI70": "e.json"},
    ),
)

# (README, text in a python block) -> replacement; each must match, so the edits stay current
PYTHON_EDITS: dict[tuple[str, str], str] = {
    # 100 resamples are 100 inferences (seconds each on one core); four show the same call
    (
        "README.md",
        "model.bootstrap(table, graph, effect)",
    ): "model.bootstrap(table, graph, effect, num_bootstraps=4)",
    # an endless generator: one batch shows it
    ("packages/scm-gen/README.md", "    ...  # forever"): "    break",
}

_VALUE = r'("[^"$()]*(\$[A-Za-z_]\w*[^"$()]*)*"|[^\s$()"]*(\$[A-Za-z_]\w*[^\s$()"]*)*)'
ASSIGNMENT = re.compile(rf"(export\s+)?([A-Za-z_]\w*={_VALUE}\s*)+")  # NAME=value or NAME="more words"

# --- the READMEs ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    readme: str  # relative to the repository root
    line: int  # of the first line of code
    language: str
    code: str

    @property
    def name(self) -> str:
        return f"{self.readme}:{self.line}"


@dataclass(frozen=True)
class Command:
    readme: str
    line: int
    text: str  # continuation lines joined, comment removed

    @property
    def name(self) -> str:
        return f"{self.readme}:{self.line}"


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def fenced_blocks(path: Path) -> list[Block]:
    """The fenced blocks of one Markdown file tagged ``python`` or ``bash``."""
    blocks, lines = [], path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = re.fullmatch(r"```(\w*)\s*", lines[index])
        if opening is None:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        if opening.group(1) in ("python", "bash"):
            code = "\n".join(lines[index + 1 : end]) + "\n"
            blocks.append(Block(_relative(path), index + 2, opening.group(1), code))
        index = end + 1
    return blocks


def shell_commands(block: Block) -> list[Command]:
    """One entry per command line of a bash block: continuations joined, comments and blank lines dropped."""
    commands, pending, start = [], "", 0
    for offset, raw in enumerate(block.code.splitlines()):
        if not pending:
            start = block.line + offset
        line = re.sub(r"(^|\s+)#(\s.*)?$", "", raw).rstrip()
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        text = (pending + line.strip()).strip()
        pending = ""
        if text:
            commands.append(Command(block.readme, start, text))
    return commands


BLOCKS = [block for path in READMES for block in fenced_blocks(path)]
PYTHON_BLOCKS = [block for block in BLOCKS if block.language == "python"]
COMMANDS = [command for block in BLOCKS if block.language == "bash" for command in shell_commands(block)]


def rule_for(command: Command) -> Rule | None:
    if ASSIGNMENT.fullmatch(command.text):
        return None
    for rule in SHELL_RULES:
        if fnmatch.fnmatch(command.readme, rule.readmes) and re.fullmatch(rule.pattern, command.text):
            return rule
    raise LookupError(
        f"{command.name}: no rule in SHELL_RULES for {command.text!r}; add how to shrink or skip it"
    )


def _sets_variables_only(command: Command) -> bool:
    """An assignment or a loop line: it changes the variables of later commands and runs nothing itself."""
    try:
        rule = rule_for(command)
    except LookupError:
        return False  # a test of its own, which fails with the message
    return rule is None or rule.action == ENV


CHECKED = [command for command in COMMANDS if not _sets_variables_only(command)]


# --- what the READMEs leave to the reader --------------------------------------------------------------------


def small_table(rows: int = 200, seed: int = 0) -> pd.DataFrame:
    """age -> dose -> blood pressure, age -> blood pressure: a tiny additive-noise SCM in plausible units."""
    rng = np.random.default_rng(seed)
    age = rng.normal(50.0, 10.0, rows)
    dose = 1.0 + 0.02 * age + rng.normal(0.0, 0.3, rows)
    pressure = 100.0 + 5.0 * dose + 0.3 * age + rng.normal(0.0, 2.0, rows)
    return pd.DataFrame({"age": age, "dose": dose, "blood pressure": pressure})


def small_graph() -> nx.DiGraph:
    return nx.DiGraph([("age", "dose"), ("dose", "blood pressure"), ("age", "blood pressure")])


def two_node_data(rows: int = 200, seed: int = 1) -> tuple[pd.DataFrame, nx.DiGraph]:
    """X -> Y, the shape of the DoWhy examples."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, rows)
    return pd.DataFrame({"X": x, "Y": np.tanh(x) + rng.normal(0.0, 0.3, rows)}), nx.DiGraph([("X", "Y")])


def starting_namespace() -> dict[str, Any]:
    table = small_table()
    noise = np.random.default_rng(2).normal(0.0, 1.0, (20, table.shape[1]))
    data, _ = two_node_data()
    return {
        "__name__": "readme",
        "table": table,
        "graph": small_graph(),
        "noise_frame": pd.DataFrame(noise, columns=table.columns),
        "data": data,
        "rank": 0,
        "world": 2,
    }


def prepare_for(block: Block, namespace: dict[str, Any]) -> None:
    """The DoWhy blocks take ``graph`` and ``data`` over the columns X and Y."""
    if "gcm." in block.code:
        namespace["data"], namespace["graph"] = two_node_data()


def missing_module(block: Block) -> str | None:
    """The first top-level module the block imports that is not installed here."""
    for match in re.finditer(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", block.code, flags=re.MULTILINE):
        if importlib.util.find_spec(match.group(1)) is None:
            return match.group(1)
    return None


def edited(block: Block) -> str:
    code = block.code
    for (readme, old), new in PYTHON_EDITS.items():
        if readme == block.readme and old in code:
            code = code.replace(old, new)
    return code


def small_files(folder: Path) -> None:
    """table.csv and graph.csv (edge list) for the command-line examples."""
    small_table().to_csv(folder / "table.csv", index=False)
    edges = pd.DataFrame(list(small_graph().edges), columns=["source", "target"])
    edges.to_csv(folder / "graph.csv", index=False)


# --- running them in order -----------------------------------------------------------------------------------


@dataclass
class ReadmeState:
    """What one README's earlier steps left behind: a namespace, shell variables, a scratch folder."""

    folder: Path
    namespace: dict[str, Any] = field(default_factory=starting_namespace)
    variables: dict[str, str] = field(default_factory=dict)
    done: int = 0  # steps run so far
    failed: str | None = None


@pytest.fixture(scope="module")
def states() -> dict[tuple[str, str], ReadmeState]:
    return {}


def _state(states: dict, tmp_path_factory: pytest.TempPathFactory, readme: str, kind: str) -> ReadmeState:
    key = (readme, kind)
    if key not in states:
        folder = tmp_path_factory.mktemp(re.sub(r"\W+", "-", f"{readme}-{kind}"))
        small_files(folder)
        state = ReadmeState(folder)
        state.variables["HOME"] = str(folder)
        if readme.startswith(f"{RESULTS}/") and readme != f"{RESULTS}/README.md":
            # the folders' recipes use the variables set up in results/README.md
            for command in COMMANDS:
                if command.readme == f"{RESULTS}/README.md":
                    _shell_step(command, state, execute=False)
        states[key] = state
    return states[key]


def _run_python(block: Block, state: ReadmeState) -> None:
    prepare_for(block, state.namespace)
    with contextlib.chdir(state.folder):
        exec(compile(edited(block), block.name, "exec"), state.namespace)


def _executable(name: str) -> str:
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found is not None, f"the entry point {name} is not installed"
    return found


def _parser(program: str) -> Any:
    if program == "condfip-eval":
        from condfip_eval.cli import _parser as parser
    elif program == "condfip":
        from condfip.cli import build_parser as parser
    else:
        from scm_gen.cli import build_parser as parser
    return parser()


def _expand(command: Command, variables: dict[str, str]) -> str:
    text = string.Template(command.text).safe_substitute(variables)
    assert "$" not in text, f"{command.name}: an unset variable in {text!r}"
    return text


def _shell_step(command: Command, state: ReadmeState, *, execute: bool = True) -> None:
    rule = rule_for(command)
    if rule is None:  # NAME=value ... or export NAME=value ...
        for word in shlex.split(command.text.removeprefix("export")):
            name, value = word.split("=", 1)
            state.variables[name] = string.Template(value).safe_substitute(state.variables)
        return
    if rule.action == ENV:
        state.variables.update(rule.env)
        return
    if rule.action == SKIP or not execute:
        return
    argv = shlex.split(_expand(command, state.variables))
    if rule.action == PARSE:
        program = Path(argv[0]).name
        try:
            _parser(program).parse_args(argv[1:])
        except (SystemExit, Exception) as error:
            raise AssertionError(f"{command.name}: {command.text!r} does not parse: {error}") from error
        return
    argv = [_executable(argv[0]), *argv[1:], *rule.extra.split()]
    result = subprocess.run(argv, cwd=state.folder, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (
        f"{command.name}: {shlex.join(argv)} exited {result.returncode}:\n{result.stderr}"
    )


def _steps_up_to(items: list, item: Any) -> list:
    same = [other for other in items if other.readme == item.readme]
    return same[: same.index(item) + 1]


# --- the tests -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[block.name for block in PYTHON_BLOCKS])
def test_python_block_runs(block: Block, states: dict, tmp_path_factory: pytest.TempPathFactory) -> None:
    module = missing_module(block)
    if module is not None:
        pytest.skip(f"{block.name} needs {module}, which is not installed here")
    state = _state(states, tmp_path_factory, block.readme, "python")
    for step in _steps_up_to(PYTHON_BLOCKS, block)[state.done :]:
        if state.failed is not None:
            pytest.fail(f"an earlier block of {block.readme} failed: {state.failed}")
        state.done += 1
        if missing_module(step) is not None:
            continue
        try:
            _run_python(step, state)
        except Exception:
            state.failed = step.name
            raise


@pytest.mark.parametrize("command", CHECKED, ids=[command.name for command in CHECKED])
def test_shell_command_runs(command: Command, states: dict, tmp_path_factory: pytest.TempPathFactory) -> None:
    rule = rule_for(command)
    if rule is not None and rule.action == SKIP:
        pytest.skip(f"{command.name} ({command.text}): {rule.why}")
    state = _state(states, tmp_path_factory, command.readme, "shell")
    for step in _steps_up_to(COMMANDS, command)[state.done :]:
        if state.failed is not None:
            pytest.fail(f"an earlier command of {command.readme} failed: {state.failed}")
        state.done += 1
        try:
            _shell_step(step, state)
        except Exception:
            state.failed = step.name
            raise


def test_every_rule_and_edit_is_used() -> None:
    """A rule or an edit that no README needs any more is removed, so the table stays the READMEs' own."""
    used = {rule_for(command) for command in COMMANDS}
    assert [rule.pattern for rule in SHELL_RULES if rule not in used] == []
    by_readme = {block.readme: "" for block in PYTHON_BLOCKS}
    for block in PYTHON_BLOCKS:
        by_readme[block.readme] += block.code
    assert [old for (readme, old) in PYTHON_EDITS if old not in by_readme.get(readme, "")] == []


def test_the_readmes_hold_blocks() -> None:
    """The parser finds the blocks (a change to the fences would otherwise silently test nothing)."""
    assert {block.readme for block in PYTHON_BLOCKS} >= {
        "README.md",
        "packages/condfip/README.md",
        "packages/dag-attention/README.md",
        "packages/eval/README.md",
        "packages/scm-gen/README.md",
    }
    assert any(command.text == "condfip demo" for command in COMMANDS)


def test_a_command_without_a_rule_is_refused() -> None:
    with pytest.raises(LookupError, match="no rule in SHELL_RULES"):
        rule_for(Command("README.md", 1, "condfip train --config huge"))
