"""The project's errors, and the one error path of the command line.

* `InputError` (a `ValueError`): the user's input or environment is wrong -- a file that cannot be read, a key
  with a bad value, an option out of range. Its message names the file, key or option and the problem. The
  library raises it (or a plain `ValueError` / `OSError` with such a message) and never prints.
* `TrainingInterrupted` (a `KeyboardInterrupt`): Ctrl-C in training, after the checkpoint was written.
* `run_command`: what `explainface <command>` does with them. A user error prints one line,
  ``explainface <command>: error: <message>``, and exits 1; an interrupt prints what was saved and exits 130.
  Anything else (``TypeError``, ``KeyError``, ...) is a bug in explainface and keeps its traceback.
  ``EXPLAINFACE_TRACEBACK=1`` (or ``--traceback``) shows the traceback of user errors too, for bug reports.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

__all__ = ["USER_ERRORS", "InputError", "TrainingDiverged", "TrainingInterrupted", "run_command", "show_tracebacks"]


class InputError(ValueError):
    """Bad input from the user or the environment; the message names the file, key or option and the problem."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, raised after the checkpoint of the current step was saved."""

    def __init__(self, step: int, checkpoint: str) -> None:
        super().__init__(step, checkpoint)
        self.step, self.checkpoint = int(step), str(checkpoint)

    def __str__(self) -> str:
        return (f"interrupted at step {self.step}, checkpoint saved ({self.checkpoint}); "
                "run the same command to resume")  # fmt: skip


class TrainingDiverged(ValueError):
    """A training run produced a non-finite value (loss, gradient, weights or validation scores): it stops before
    anything non-finite is saved, so the checkpoint on disk (if any) is the last finite one."""

    def __init__(self, step: int, what: str, checkpoint: str | None) -> None:
        super().__init__(step, what, checkpoint)
        self.step, self.what, self.checkpoint = int(step), str(what), checkpoint

    def __str__(self) -> str:
        kept = (f"the checkpoint kept is the last finite one ({self.checkpoint}): resume from it with a lower "
                "optim.lr (or an optim.grad_clip)" if self.checkpoint else
                "no checkpoint was written: lower optim.lr (or set optim.grad_clip)")  # fmt: skip
        return f"training diverged at step {self.step}: {self.what}; {kept}"


#: The exceptions that mean "the input or the environment is wrong": shown as one line, without a traceback.
#: ``ValueError`` is the library's error for a bad value (its message names it); ``OSError`` covers missing,
#: unreadable and unwritable files (its message carries the path).
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)


def show_tracebacks() -> bool:
    """Whether ``EXPLAINFACE_TRACEBACK`` asks for tracebacks of user errors (any value but '', 0, no, false)."""
    return os.environ.get("EXPLAINFACE_TRACEBACK", "").strip().lower() not in ("", "0", "no", "false")


def describe(err: BaseException) -> str:
    """One line for a user error: its message, with the path an ``OSError`` carries when the message lacks it."""
    if isinstance(err, OSError) and err.filename is not None:
        reason = err.strerror or str(err)
        name = os.fsdecode(err.filename)
        return reason if name in reason else f"{name}: {reason}"
    text = str(err).strip() or type(err).__name__
    return " ".join(text.split("\n")) if len(text) < 2000 else text[:2000] + " ..."


def run_command(name: str, func: Callable[[], int | None], traceback: bool = False) -> int:
    """Run one command's function with the CLI's error path (module docstring); returns the exit status."""
    try:
        return int(func() or 0)
    except KeyboardInterrupt as err:
        print(f"explainface {name}: {err}" if str(err) else f"explainface {name}: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as err:
        if traceback or show_tracebacks():
            raise
        print(f"explainface {name}: error: {describe(err)}", file=sys.stderr)
        return 1
