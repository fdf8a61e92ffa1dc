"""Ctrl-C and SIGTERM while a command works: raised as ``KeyboardInterrupt``, and recorded so that none is lost.

A library can swallow a ``KeyboardInterrupt``: torch imports parts of itself lazily (``torch._dynamo`` when the first
optimizer is made) and a bare ``except:`` around an optional import there catches whatever is raised in it, so a
Ctrl-C at that moment would be forgotten and the run go on. Here each signal is recorded as well as raised;
:func:`check_interrupted` raises it again where a command can stop cleanly (once its imports are done, and at every
batch through :class:`InterruptCheck`), so a command always ends with its one line and status 130 (143 for SIGTERM).

Internal to the command line (:mod:`torchbearer_vae.cli`).
"""
import signal
from types import FrameType, TracebackType
from typing import Any, Callable, Dict, List, Optional, Type, Union

from torchbearer.callbacks import Callback

__all__ = []  # internal: the public entry point is torchbearer_vae.cli.main

# What signal.signal takes and returns: a function, SIG_DFL or SIG_IGN (an int), or None (no Python handler).
_Handler = Union[Callable[[int, Optional[FrameType]], Any], int, signal.Handlers, None]

#: The signals a command stops on.
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interruptions:
    """While in its ``with`` block: Ctrl-C and SIGTERM raise ``KeyboardInterrupt`` and are recorded in ``received``.

    The handlers are installed where Python allows it (the main thread), except for a signal that is ignored
    (``SIG_IGN``, as a shell leaves Ctrl-C for a job it starts in the background), and the previous ones are
    restored at the end.
    """

    _active: Optional['Interruptions'] = None

    def __init__(self) -> None:
        self.received: List[int] = []
        self._previous: Dict[int, _Handler] = {}

    def __enter__(self) -> 'Interruptions':
        # A signal the command was started ignoring (Ctrl-C of a job a shell put in the background) stays ignored.
        self._previous = {signum: _handle(signum, self._interrupt) for signum in SIGNALS
                          if signal.getsignal(signum) is not signal.SIG_IGN}
        Interruptions._active = self
        return self

    def __exit__(self, kind: Optional[Type[BaseException]], error: Optional[BaseException],
                 traceback: Optional[TracebackType]) -> None:
        Interruptions._active = None
        for signum, handler in self._previous.items():
            _handle(signum, handler)

    def _interrupt(self, signum: int, frame: Optional[FrameType]) -> None:
        self.received.append(signum)
        raise KeyboardInterrupt

    @property
    def signum(self) -> int:
        """The first signal received (SIGINT if none was: a ``KeyboardInterrupt`` raised otherwise)."""
        return self.received[0] if self.received else signal.SIGINT


def check_interrupted() -> None:
    """Raise ``KeyboardInterrupt`` if a signal was received (and perhaps swallowed) since the command started."""
    active = Interruptions._active
    if active is not None and active.received:
        raise KeyboardInterrupt


class InterruptCheck(Callback):
    """Stops the Trial at the next batch after a signal that a library swallowed (:func:`check_interrupted`)."""

    def on_sample(self, state: dict) -> None:
        check_interrupted()

    def on_sample_validation(self, state: dict) -> None:
        check_interrupted()


def _handle(signum: int, handler: _Handler) -> _Handler:
    """Install a signal handler where Python allows it (the main thread); returns the previous one."""
    try:
        return signal.signal(signum, handler)
    except (ValueError, TypeError):  # not the main thread, or no previous Python handler to restore
        return handler
