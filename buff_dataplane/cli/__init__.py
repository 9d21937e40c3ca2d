"""The ``buff`` command line: a thin layer over the library.

Commands parse options, call one library function and print. Errors are mapped to exit
codes in one place (:func:`main`): 0 success, 1 verification failed, 2 usage or bad
input, 3 refused because data is incomplete, 4 I/O or network failure.
"""

from __future__ import annotations

import sys

import typer

from buff_dataplane.core.errors import EXIT_IO, EXIT_USAGE, BuffError

app = typer.Typer(
    name="buff",
    help="Record exchange market data into an immutable raw event log, and check it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _register() -> None:
    from buff_dataplane.cli import (  # noqa: F401  (registers commands)
        bars_cmds,
        capture_cmds,
        crosscheck_cmds,
        gaps_cmds,
        log_cmds,
    )


def _error(message: str) -> None:
    print(f"buff: error: {' '.join(message.split())}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (the console script exits with it)."""
    _register()
    try:
        result = app(args=argv, prog_name="buff", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        _error("aborted")
        return 130
    except typer.TyperException as exc:  # usage errors: unknown option, bad value, ...
        _error(f"{exc.format_message()} (see 'buff --help')")
        return EXIT_USAGE
    except BuffError as exc:
        _error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except OSError as exc:
        _error(f"I/O failure: {exc}")
        return EXIT_IO
    return int(result) if isinstance(result, int) else 0


def run() -> None:
    sys.exit(main())
