"""What every ``condfip`` command shares: argparse types, one-line usage errors, reading CSV tables and graphs,
checking output paths and writing CSV files atomically (several outputs of one command all or none), and the
flags named in the API's messages in place of its arguments (``flag_names``). Bad input is a ValueError here;
``condfip.cli.main`` prints it as one line."""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import re
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NoReturn

import numpy as np
import pandas as pd

from condfip.io.atomic import atomic_file

EXIT_BAD_INPUT = 2


def one_line_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Make argparse report a usage mistake as one line (not usage + message) with exit code 2."""

    def error(message: str) -> NoReturn:
        parser.exit(EXIT_BAD_INPUT, f"{parser.prog}: error: {message} (see {parser.prog} --help)\n")

    parser.error = error  # type: ignore[method-assign]
    return parser


def int_at_least(minimum: int, what: str) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``; ``what`` names it in the error ("a positive integer")."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


positive_int = int_at_least(1, "a positive integer")
non_negative_int = int_at_least(0, "a non-negative integer")
at_least_two = int_at_least(2, "an integer >= 2")


def number_between(low: float, high: float, *, open_interval: bool) -> Callable[[str], float]:
    """An argparse type: a finite number in [low, high], or in (low, high) with ``open_interval``."""
    interval = f"strictly between {low:g} and {high:g}" if open_interval else f"in [{low:g}, {high:g}]"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number {interval}, got {text!r}") from None
        inside = low < value < high if open_interval else low <= value <= high
        if not (math.isfinite(value) and inside):
            raise argparse.ArgumentTypeError(f"expected a number {interval}, got {text!r}")
        return value

    return parse


def flag_message(message: str, flags: dict[str, str]) -> str:
    """``message`` with every Python argument of ``flags`` (argument -> the flag a user types for it) that it
    names replaced by its flag: ``argument=True`` (a switch: "zero_shot=True" -> "--zero-shot"), ``argument=``
    anywhere ("name_or_path='x'" -> "--model 'x'"), and the argument as the message's first word ("device must
    be ..." -> "--device must be ...")."""
    for argument, flag in flags.items():
        name = re.escape(argument)
        message = re.sub(rf"(?<![\w.-]){name}=True\b", flag, message)
        message = re.sub(rf"(?<![\w.-]){name}=(?=\S)", f"{flag} ", message)
        message = re.sub(rf"(?<![\w.-]){name}=", flag, message)  # at the end: "leave it out of positive="
        message = re.sub(rf"^{name}(?=\s)", flag, message)
    return message


@contextlib.contextmanager
def flag_names(flags: dict[str, str]) -> Iterator[None]:
    """Inside, a ValueError whose message names a Python argument of ``flags`` is raised again naming the
    command-line flag instead (``flag_message``): the API's messages name its arguments, a command's its flags."""
    try:
        yield
    except ValueError as error:
        message = flag_message(str(error), flags)
        if message == str(error):
            raise
        raise ValueError(message) from error


@contextlib.contextmanager
def one_line_warnings(command: str, flags: dict[str, str]) -> Iterator[None]:
    """Inside, the API's warnings (``UserWarning``) are collected; when the block ends (also by an error) each
    distinct one is printed once on stderr as one line, ``condfip COMMAND: warning: ...``, naming the flags of
    ``flags`` instead of Python arguments (``flag_message``). Other warnings go through Python's filters."""
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            yield
    finally:
        printed = set()
        for warning in caught:
            if not issubclass(warning.category, UserWarning):
                warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
                continue
            message = " ".join(flag_message(str(warning.message), flags).split())
            if message not in printed:
                printed.add(message)
                print(f"condfip {command}: warning: {message}", file=sys.stderr)


MODEL_FLAGS = {"name_or_path": "--model", "device": "--device"}
"""The arguments of loading a network (``from_pretrained``) by the flags of ``add_model_arguments``."""


def add_model_arguments(parser: argparse.ArgumentParser, default_model: str) -> None:
    """``--model`` (a shipped name, a checkpoint folder or a Hub repo id; ``default_model`` by default) and
    ``--device``, as every command that loads a network takes them."""
    parser.add_argument(
        "--model",
        default=default_model,
        help=f"shipped name, checkpoint folder or Hub repo id (default {default_model})",
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")


def output_path(text: str) -> Path:
    """An argparse type: the path of an output; an empty one is refused (``Path("")`` would be ".")."""
    if not text.strip():
        raise argparse.ArgumentTypeError("the path is empty; give the path to write")
    return Path(text)


def read_csv(path: Path, option: str, *, whole_rows: bool = False, **options) -> pd.DataFrame:
    """``pd.read_csv`` with a one-line ValueError naming ``option`` for a missing or unreadable file and for a
    header that names a column twice (pandas would silently rename the second one ``name.1``). ``whole_rows``:
    a first data row with more fields than the header is refused (pandas would take the first column as the
    row index and shift every value by a column; it refuses such a row further down by itself)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            first = next(reader, []) if whole_rows else []
        if len(first) > len(header):
            raise ValueError(
                f"{option} {str(path)!r}: line {reader.line_num} has {len(first)} fields but the header names "
                f"{len(header)} columns; remove the extra fields, or name their columns in the header"
            )
        frame = pd.read_csv(path, **options)
    except FileNotFoundError:
        raise ValueError(f"{option} {str(path)!r}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{option} {str(path)!r} is a directory, not a CSV file") from None
    except (OSError, csv.Error, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        message = " ".join(str(error).split())
        raise ValueError(f"{option} {str(path)!r} is not a readable CSV: {message}") from None
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise ValueError(
            f"{option} {str(path)!r} names the columns {duplicates} more than once; every column needs its "
            "own name"
        )
    return frame


def read_data_csv(path: Path, option: str = "--data") -> pd.DataFrame:
    """A table of numeric columns with a header row (``read_csv``); a file with a header but no rows is refused."""
    frame = read_csv(path, option, whole_rows=True)
    if frame.shape[0] == 0:
        raise ValueError(
            f"{option} {str(path)!r} has a header row ({', '.join(map(str, frame.columns[:5]))}"
            f"{', ...' if frame.shape[1] > 5 else ''}) but no data rows"
        )
    return frame


def read_edge_csv(path: Path, option: str) -> list[tuple[str, str]]:
    """A CSV with the header ``source,target`` as a list of (source, target) name pairs."""
    frame = read_csv(path, option, dtype=str, keep_default_na=False)
    if [str(name).strip().lower() for name in frame.columns] != ["source", "target"]:
        raise ValueError(
            f"{option} {str(path)!r} must have the header 'source,target', got {list(frame.columns)!r}"
        )
    return _pairs(frame)


def read_graph_csv(path: Path, option: str = "--graph") -> object:
    """An edge list (header ``source,target``) as a list of pairs, or an adjacency CSV (a header row of node
    names, an optional first column of row names) as a labelled square DataFrame of numbers."""
    raw = read_csv(path, option, dtype=str, keep_default_na=False)
    header = [str(name).strip() for name in raw.columns]
    if [name.lower() for name in header] == ["source", "target"]:
        return _pairs(raw)
    named_rows = _has_row_names(raw)
    if named_rows:
        raw = raw.set_index(raw.columns[0])
        raw.index = [str(name).strip() for name in raw.index]
        header = header[1:]
    if raw.shape[0] != raw.shape[1]:
        raise ValueError(
            f"{option} {str(path)!r}: an adjacency CSV must be square (one row per node, in the order of the header "
            f"of node names, with an optional first column of row names), got {raw.shape[0]} rows for "
            f"{raw.shape[1]} nodes; for an edge list use the header 'source,target'"
        )
    raw.columns = header
    if not named_rows:
        raw.index = header  # rows follow the header's order
    numbers = raw.apply(lambda column: pd.to_numeric(column.str.strip(), errors="coerce"))
    blank = raw.apply(lambda column: column.str.strip() == "")
    bad = numbers.isna() & ~blank  # text that is not a number (an empty cell stays NaN: the API names it)
    if bad.to_numpy().any():
        row, column = (int(k[0]) for k in np.nonzero(bad.to_numpy()))
        raise ValueError(
            f"{option} {str(path)!r}: adjacency entry [{raw.index[row]!r}, {header[column]!r}] is "
            f"{raw.iat[row, column]!r}, not a number (entries are 0 or 1); for an edge list use the header "
            "'source,target'"
        )
    return numbers


def _has_row_names(raw: pd.DataFrame) -> bool:
    """Whether the first column of an adjacency CSV holds row names: its header is empty (as ``condfip graph``
    writes it), or it has one more column than rows and its first column is not numeric."""
    first = str(raw.columns[0])
    if first == "" or first.startswith("Unnamed: "):
        return True
    if raw.shape[1] != raw.shape[0] + 1:
        return False
    return bool(pd.to_numeric(raw.iloc[:, 0].str.strip(), errors="coerce").isna().all())


def _pairs(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return [(source.strip(), target.strip()) for source, target in frame.itertuples(index=False, name=None)]


@contextlib.contextmanager
def os_errors(what: str) -> Iterator[None]:
    """Turn an OSError raised inside (a read-only folder, a full disk, a file where a folder is expected) into a
    one-line ValueError: ``"<what>: <reason> (<path>)"``, the path left out when it is a temporary name
    (``condfip.io.atomic``) or named by ``what``. Every command writes through this."""
    try:
        yield
    except OSError as error:
        reason = error.strerror or str(error)
        name = str(error.filename or "")
        hidden = not name or name in what or any(part.endswith(".tmp") for part in Path(name).parts)
        raise ValueError(f"{what}: {reason}" + ("" if hidden else f" ({name})")) from None


def check_outputs(
    outputs: Sequence[tuple[str, Path | None]], inputs: Sequence[tuple[str, Path | None]] = ()
) -> None:
    """Refuse, before any work, the (option, path) pairs of a command's outputs that cannot all be written: a
    path that is a directory, one under a file, one file named by two options, or one that is a file the
    command reads (``inputs``, the same (option, path) pairs), which the output would replace (None: an output
    not asked, an input not given)."""
    given = [(option, path) for option, path in outputs if path is not None]
    for option, path in given:
        for input_option, input_path in inputs:
            if input_path is not None and _same_file(path, input_path):
                raise ValueError(
                    f"{option} {str(path)!r} is the file that {input_option} reads; writing it would replace "
                    "that input, give the output another name"
                )
    for option, path in given:
        if path.is_dir():
            raise ValueError(f"{option} {str(path)!r} is a directory; give a file name")
        blocking = next((parent for parent in path.parents if parent.exists()), None)
        if blocking is not None and not blocking.is_dir():
            raise ValueError(f"{option} {str(path)!r}: {str(blocking)!r} is not a directory")
    for index, (option, path) in enumerate(given):
        for other, other_path in given[:index]:
            if path.resolve() == other_path.resolve():
                raise ValueError(
                    f"{other} and {option} both name {str(path)!r}; give each output its own file"
                )


def _same_file(path: Path, other: Path) -> bool:
    """Whether two paths name one file: the same resolved path, or the same existing file by another name."""
    if path.resolve() == other.resolve():
        return True
    try:
        return path.exists() and other.exists() and path.samefile(other)
    except OSError:
        return False


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Inside, SIGINT, SIGTERM and SIGHUP are only noted; on leaving, the first one noted is raised again, to be
    handled as usual (by then ``condfip.cli.main``'s handlers, which stop the command)."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    noted: list[int] = []
    held = [getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)]
    held = [signum for signum in held if signal.getsignal(signum) is not None]  # None: set outside Python
    previous = {signum: signal.signal(signum, lambda signum, frame: noted.append(signum)) for signum in held}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if noted:
            signal.raise_signal(noted[0])


def write_csvs(outputs: Sequence[tuple[pd.DataFrame, Path]]) -> None:
    """Write each frame (without its index) to its path, all or none: every one to a temporary file beside its
    path first, then all renamed into place together, with signals held for the renames; an error or a signal
    before then removes every temporary and leaves the paths as they were. An OS error becomes a one-line
    ValueError."""
    names = " and ".join(repr(str(path)) for _, path in outputs)
    with os_errors(f"cannot write {names}"):
        with contextlib.ExitStack() as written:
            for frame, path in outputs:
                frame.to_csv(written.enter_context(atomic_file(path)), index=False)
            with signals_held():
                written.pop_all().close()  # the renames (``atomic_file``'s exits), last output first


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` (without its index) to ``path`` atomically; an OS error becomes a one-line ValueError."""
    write_csvs([(frame, path)])


def labelled_matrix(matrix: object, names: list[str]) -> pd.DataFrame:
    """[d, d] -> a frame whose first column (empty header) holds the row names, then one column per node."""
    frame = pd.DataFrame(matrix, columns=names)
    frame.insert(0, "", names, allow_duplicates=True)
    return frame


def requires_training_extra(command: str) -> None:
    """Refuse ``command`` with the install line when scm-gen (the ``condfip[train]`` extra) is missing."""
    try:
        import scm_gen  # noqa: F401  (an optional dependency: checked only by the commands that need it)
    except ImportError:
        raise ValueError(
            f"condfip {command} needs the training extra (scm-gen): pip install 'condfip[train]'"
        ) from None
