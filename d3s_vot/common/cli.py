"""The one error path of every ``python -m d3s_vot.*`` command.

A user error (a missing or malformed file, an invalid option, an absent device) is one line
``error: <message>`` on stderr and exit code 2; Ctrl-C is one line and exit code 130; anything else is
a bug and keeps its traceback. The errors a user can fix derive from :class:`UserError` (the package's
``InputError``, ``WeightsError``, ``TrackerBuildError``, ...); ``OSError`` counts too (a path that
cannot be read or written), named by its file.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, List, NoReturn, Optional, Sequence, Tuple, Type

USAGE_EXIT = 2
INTERRUPT_EXIT = 130
BROKEN_PIPE_EXIT = 141   # 128 + SIGPIPE, what a shell reports for a command whose reader left


class UserError(Exception):
    """Base of the errors the user can fix: a CLI prints them as one ``error: ...`` line, exit code 2."""


class UsageError(UserError):
    """An option value the command cannot use (checked after parsing)."""


class CliArgumentParser(argparse.ArgumentParser):
    """``argparse`` parser whose usage errors are one ``error: ...`` line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_EXIT, f"error: {message} (see {self.prog} --help)\n")


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (newlines included) made one space: messages stay one line."""
    return " ".join(str(text).split())


def describe_os_error(exc: OSError) -> str:
    """``<file>: <reason>`` for an OSError (its file name when it has one)."""
    reason = exc.strerror or str(exc)
    return f"{exc.filename}: {reason}" if exc.filename else reason


def error_line(exc: BaseException) -> str:
    """The ``error: ...`` line of a user error."""
    text = describe_os_error(exc) if isinstance(exc, OSError) and not isinstance(exc, UserError) else str(exc)
    return f"error: {one_line(text) or type(exc).__name__}"


def run_cli(body: Callable[[Optional[List[str]]], int], argv: Optional[Sequence[str]] = None, *,
            user_errors: Tuple[Type[BaseException], ...] = (),
            interrupted: str = "interrupted") -> int:
    """Run a CLI ``body(argv)`` and return its exit code, user errors (``UserError``, ``OSError`` and
    ``user_errors``) as one ``error:`` line and code 2, Ctrl-C as one ``interrupted`` line and 130, a
    closed output pipe as a quiet 141."""
    try:
        return body(None if argv is None else list(argv))
    except BrokenPipeError:
        # the reader of the output went away (``... | head``): stop quietly, and keep the interpreter's
        # final flush of stdout from failing again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE_EXIT
    except (UserError, OSError) + tuple(user_errors) as exc:
        print(error_line(exc), file=sys.stderr)
        return USAGE_EXIT
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return INTERRUPT_EXIT
