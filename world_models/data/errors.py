"""Errors of the data layer.

Every error here is a :class:`lobworld.errors.LobworldError` (hence a ``ValueError``):
bad input data is a user error, which the command line prints as one line. A data
file that is missing or is not a regular file raises a subclass that is also the
matching ``OSError`` (``FileNotFoundError`` / ``IsADirectoryError``), so
``except FileNotFoundError`` keeps working.
"""

from __future__ import annotations

import pathlib

from lobworld.errors import LobworldError

__all__ = ["DataFileNotFoundError", "DataNotAFileError", "DataValidationError", "require_file"]


class DataValidationError(LobworldError):
    """Input data breaks a rule. ``path``, ``row`` (1-based line in the file, or
    None when the rule concerns the whole file) and ``rule`` (a short name such as
    ``"crossed_book"``) are kept as attributes and named in the message."""

    def __init__(self, path, rule: str, detail: str, row: int | None = None):
        self.path = str(path) if path is not None else None
        self.rule = rule
        self.row = row
        self.detail = detail
        where = self.path or "<data>"
        if row is not None:
            where += f", line {row}"
        super().__init__(f"{where}: [{rule}] {detail}")

    def __reduce__(self):  # picklable across processes (the default would call __init__(message))
        return type(self), (self.path, self.rule, self.detail, self.row)


class DataFileNotFoundError(DataValidationError, FileNotFoundError):
    """A data file does not exist (rule ``file_not_found``)."""


class DataNotAFileError(DataValidationError, IsADirectoryError):
    """A data path exists but is a directory or another non-regular file (rule ``not_a_file``)."""


def require_file(path, what: str) -> pathlib.Path:
    """``path`` as a ``Path`` if it is a regular file; else raise naming what it is instead.

    ``what`` names the file's role in the message (e.g. ``"LOBSTER message"``).
    """
    path = pathlib.Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        raise DataNotAFileError(path, "not_a_file", f"{what} path is a directory, not a file")
    if path.exists():
        raise DataNotAFileError(path, "not_a_file", f"{what} path is not a regular file")
    parent = path.parent
    hint = "" if parent.is_dir() else f" (its folder {parent} does not exist either)"
    raise DataFileNotFoundError(path, "file_not_found", f"{what} file not found{hint}")
