"""The package's exceptions, in one low module that every other module may import."""

__all__ = ['MissingStateError', 'CheckpointError', 'CommandError']


class MissingStateError(KeyError):
    """Raised when a callback needs a state key that the model did not store.

    A subclass of :class:`KeyError` (so ``except KeyError`` still catches it) whose message says
    which key is missing and how the model should provide it.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ''


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, refused as unsafe, or does not fit the model."""


class CommandError(Exception):
    """A problem with a ``torchbearer-vae`` command's arguments or inputs, reported as one line (exit status 2)."""
