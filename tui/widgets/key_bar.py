"""The key bar at the bottom: the app's own bindings, shortened to fit the terminal's width.

Textual's Footer scrolls what does not fit off the right edge, so at 80 columns Help and Quit
were the keys cut off. This bar drops the least important keys first and keeps the rest in their
usual order; every key stays in the help screen and the command palette.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.widgets import Static

__all__ = ["KeyBar", "KeyHint", "key_hints"]

KEY_STYLE = "bold #ffa62b"
SHOWN_KEYS = {"plus": "+", "minus": "-", "question_mark": "?", "shift+tab": "⇧tab", "equals_sign": "="}


TIGHT = {"tab ⇧tab": "⇥", "enter": "↵", "Interval": "Poll", "Symbol": "Sym", "Details": "More", "Palette": "Cmds"}
"""Shorter keys and labels for a narrow terminal, so every key can still show at 80 columns."""


@dataclass(frozen=True, slots=True)
class KeyHint:
    keys: str
    """As shown: "tab", "m M 1-5"."""
    description: str
    priority: int
    """Lower is kept longer when the bar is short of room."""

    @property
    def width(self) -> int:
        return len(self.keys) + 1 + len(self.description) + 2

    def tight(self) -> KeyHint:
        """The same hint, shorter (one space after it instead of two)."""
        keys = TIGHT.get(self.keys, self.keys)
        if len(keys) > 5 and keys.isalnum():  # mM12345 -> mM1-5
            keys = keys[:3] + "-" + keys[-1]
        return _TightHint(keys, TIGHT.get(self.description, self.description), self.priority)


@dataclass(frozen=True, slots=True)
class _TightHint(KeyHint):
    @property
    def width(self) -> int:
        return len(self.keys) + 1 + len(self.description) + 1

    def tight(self) -> KeyHint:
        return self


class KeyBar(Static):
    """One line of key hints, as many as fit, in their given order."""

    DEFAULT_CSS: ClassVar[str] = """
    KeyBar { dock: bottom; height: 1; background: $footer-background; padding: 0 1; }
    """

    def __init__(self, hints: Sequence[KeyHint], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.hints = list(hints)
        self._shown_width = -1

    def on_resize(self) -> None:
        self.show()

    def on_mount(self) -> None:
        self.show()

    def fitting(self, width: int) -> list[KeyHint]:
        """The hints that fit in `width` cells: all of them, in short form if need be; else the
        most important, in short form, in display order."""
        if sum(hint.width for hint in self.hints) <= width:
            return self.hints
        hints = [hint.tight() for hint in self.hints]
        kept: set[int] = set()
        used = 0
        for index, hint in sorted(enumerate(hints), key=lambda pair: pair[1].priority):
            if used + hint.width <= width:
                kept.add(index)
                used += hint.width
        return [hint for index, hint in enumerate(hints) if index in kept]

    def show(self) -> None:
        width = self.content_size.width or self.size.width
        if width == self._shown_width:
            return
        self._shown_width = width
        line = Text(no_wrap=True, overflow="crop")
        for hint in self.fitting(width):
            line.append(hint.keys, KEY_STYLE)
            line.append(f" {hint.description}" + " " * (hint.width - len(hint.keys) - 1 - len(hint.description)))
        self.update(line)


def key_hints(bindings: Sequence[object], priority: dict[str, int]) -> list[KeyHint]:
    """Hints from the app's `Binding`s, one per group (or per binding outside a group)."""
    from textual.binding import Binding

    keys_by_label: dict[str, list[str]] = {}
    for binding in bindings:
        if not isinstance(binding, Binding) or not binding.show:
            continue
        label = binding.group.description if binding.group is not None else binding.description
        first_key = binding.key.split(",")[0]
        keys_by_label.setdefault(label, []).append(SHOWN_KEYS.get(first_key, first_key))
    hints = []
    for label, keys in keys_by_label.items():
        shown = "".join(keys) if all(len(k) == 1 for k in keys) else " ".join(keys)
        hints.append(KeyHint(shown, label, priority.get(label, len(priority))))
    return hints
