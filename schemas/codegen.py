"""The text of a function generated from a schema, and the constants it reads by name.

The fast validator (:mod:`schemas.validate`) and the fast encoder (:mod:`schemas.fastencode`) each
turn a schema's model, once, into one straight-line Python function; both write its lines and
constants through this.
"""

from __future__ import annotations

from typing import Any


class GeneratedSource:
    """Lines of generated code (indented by depth) and the constants they name."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {}
        self._vars = 0

    def const(self, value: Any) -> str:
        """A name the generated code reads ``value`` by."""
        name = f"_c{len(self.constants)}"
        self.constants[name] = value
        return name

    def var(self) -> str:
        """A fresh local variable name."""
        self._vars += 1
        return f"x{self._vars}"

    def add(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)
