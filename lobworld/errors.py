"""The base of every error that means "the user gave lobworld something wrong".

:class:`LobworldError` subclasses ``ValueError`` so ``except ValueError`` keeps working.
The command line catches only this class: a user error prints one line (exit code 2),
while an internal bug keeps its traceback. This module is the floor of the layer
contract: every lobworld package may import it, and it imports none of them.
"""

from __future__ import annotations

__all__ = ["LobworldError"]


class LobworldError(ValueError):
    """A user-facing error: bad input, configuration, file or argument, named in the message."""
