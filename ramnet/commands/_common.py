"""What every command shares: one-line errors, the exit-code mapping, the consoles, JSON output.

Exit codes, for every command: 0 success; 2 bad usage or invalid input (``InvalidInputError`` and
Click's usage errors); 1 anything else. Errors are one line on stderr, never a traceback. The
mapping lives in ``exit_code``, ``guarded`` and ``OneLineErrors`` below, and nowhere else.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from ramnet._errors import InvalidInputError, RamnetError
from ramnet.commands._options import ConvertsPlainValues


def _click_exceptions() -> Any:
    # typer >= 0.20 carries its own copy of click; older ones use click itself.
    import importlib

    try:
        return importlib.import_module("typer._click.exceptions")
    except ImportError:  # pragma: no cover - older typer
        return importlib.import_module("click.exceptions")


_CLICK = _click_exceptions()
_ClickException: Any = _CLICK.ClickException
_NoArgsIsHelpError: Any = _CLICK.NoArgsIsHelpError

if TYPE_CHECKING:
    from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])


class OneLineErrors(ConvertsPlainValues, typer.core.TyperGroup):
    """Usage errors (unknown option, bad value, missing option) as one ``error:`` line, exit 2.

    Its own options (``--version``, ``--help``) are converted without pydantic (see
    ``PlainValues``): Typer would otherwise import pydantic to convert them on every command.
    """

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            rv = super().main(
                args=args,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
        except _NoArgsIsHelpError as exc:  # bare `ramnet` or `ramnet keys`: show the help
            if not standalone_mode:
                raise
            exc.show()
            sys.exit(0)
        except _ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            typer.echo(f"error: {exc.format_message()}{where}", err=True)
            if not standalone_mode:
                raise
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("aborted", err=True)
            if not standalone_mode:
                raise
            sys.exit(1)
        if standalone_mode:
            sys.exit(rv if isinstance(rv, int) else 0)
        return rv


def group(summary: str) -> typer.Typer:
    """A command group (``ramnet NAME``) that shows its help when given no command.

    Args:
        summary: The group's one-line help.

    Returns:
        The group's Typer app, for its commands to register with and ``ramnet.cli`` to add.
    """
    return typer.Typer(help=summary, no_args_is_help=True)


# Rich's console loads on first use (about 20 ms): `ramnet verify --json` and the commands that
# print JSON never need it.


def stdout() -> Console:
    """A Rich console on stdout, for tables."""
    from rich.console import Console

    return Console()


def stderr() -> Console:
    """A Rich console on stderr without highlighting, for errors and log lines."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def exit_code(exc: BaseException) -> int:
    """The exit code of an error: 2 for invalid input, 1 for anything else."""
    return 2 if isinstance(exc, InvalidInputError) else 1


def guarded(func: F) -> F:
    """Turn RAMNET's errors (and anything unexpected) into one line on stderr and an exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except RamnetError as exc:
            stderr().print(f"error: {exc}", markup=False, soft_wrap=True)
            raise typer.Exit(exit_code(exc)) from None
        except KeyboardInterrupt:
            stderr().print("interrupted", markup=False)
            raise typer.Exit(130) from None
        except MemoryError:
            stderr().print("error: out of memory", markup=False)
            raise typer.Exit(1) from None
        except Exception as exc:
            stderr().print(
                f"error: unexpected {type(exc).__name__}: {exc}", markup=False, soft_wrap=True
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def transient_progress() -> Any:
    """A Rich progress bar (description, bar, done/total, elapsed) that vanishes when it ends:
    what ``run`` shows while a job computes, here or on Spark.

    Returns:
        A ``rich.progress.Progress``, to use as a context manager.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
    )


def print_json(data: Any) -> None:
    """Print ``data`` as one line of JSON on stdout."""
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()
