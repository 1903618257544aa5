"""Errors of the data layer."""

from __future__ import annotations


class DataValidationError(ValueError):
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
