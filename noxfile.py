"""Test and lint sessions for the monorepo.

`nox -s tests` first tests every package alone, in a fresh environment that holds only that package and
what it declares (so an undeclared dependency fails), then everything together with the cross-package
tests in `tests/`.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = False

TORCH = "torch==2.13.0"  # the CPU build on local disk; an unpinned torch would pull a CUDA build
TRITON = "triton==3.7.1"  # pairs with torch 2.13
TEST_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}

# package folder -> (local packages it needs first, whether it needs torch, extras to install)
PACKAGES: dict[str, tuple[list[str], bool, str]] = {
    "scm-gen": ([], False, "test"),
    "dag-attention": ([], True, "test,triton"),
    "condfip": (["scm-gen", "dag-attention"], True, "test"),
    "eval": (["scm-gen", "dag-attention", "condfip"], True, "test"),
}


def _install(session: nox.Session, package: str) -> None:
    needs, needs_torch, extras = PACKAGES[package]
    if needs_torch:
        session.install(TORCH)
    if "triton" in extras:
        session.install(TRITON)
    session.install(*[f"packages/{name}" for name in needs], f"packages/{package}[{extras}]")


def _pytest(
    session: nox.Session, *paths: str, env: dict[str, str] | None = None, marker: str | None = None
) -> None:
    args = ["pytest", *paths, *session.posargs]
    if marker:
        args += ["-m", marker]
    session.run(*args, env={**TEST_ENV, **(env or {})})


def _test_package(session: nox.Session, package: str) -> None:
    tests = f"packages/{package}/tests"
    if package == "dag-attention":
        # The Triton interpreter must be switched on before any kernel is defined: its own process.
        _pytest(session, tests, marker="not triton_interpret")
        _pytest(session, tests, marker="triton_interpret", env={"TRITON_INTERPRET": "1"})
    else:
        _pytest(session, tests)


def _dowhy_tests(session: nox.Session) -> None:
    # DoWhy pins its scipy releases: condfip.dowhy and condfip-eval's DoWhy-GCM method are tested in an environment
    # of their own, with the real DoWhy.
    session.install(TORCH)
    session.install(
        "packages/scm-gen",
        "packages/dag-attention",
        "packages/condfip[test,dowhy]",
        "packages/eval[test,dowhy]",
    )
    _pytest(session, "packages/condfip/tests/test_dowhy.py", "packages/eval/tests/test_dowhy.py")


@nox.session(python="3.11", default=False)  # a plain ``nox`` runs it once, as tests(package='dowhy')
def dowhy(session: nox.Session) -> None:
    """condfip.dowhy against the real DoWhy (also run by ``nox -s tests``)."""
    _dowhy_tests(session)


@nox.session(python="3.11")
@nox.parametrize("package", [*PACKAGES, "dowhy", "all"])
def tests(session: nox.Session, package: str) -> None:
    """Each package alone, condfip.dowhy with DoWhy, then all packages together plus the cross-package tests."""
    if package == "dowhy":
        _dowhy_tests(session)
        return
    if package != "all":
        _install(session, package)
        _test_package(session, package)
        return
    session.install(TORCH, TRITON)
    session.install(*[f"packages/{name}[{PACKAGES[name][2]}]" for name in PACKAGES])
    paths = [f"packages/{name}/tests" for name in PACKAGES if name != "dag-attention"]
    _pytest(session, *paths, "tests", "packages/dag-attention/tests", marker="not triton_interpret")


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """Ruff over the whole tree, and condfip's layering contract (.importlinter: layers, no cycles)."""
    session.install("ruff", "import-linter")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # import-linter reads the source, it imports nothing: the package only needs to be on the path
    session.run("lint-imports", env={"PYTHONPATH": "packages/condfip/src"})
