"""The line at the bottom of a screen: the latest message, coloured by how serious it is.

One row normally; a message too long for the width wraps onto a second or third row (the
layout above gives way for as long as it shows), so paths and the hint at the end of a
message are never cut off at 80 columns."""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import Static

STYLES = {"info": "", "success": "green", "warning": "yellow", "error": "bold red"}
KEEP_SECONDS = 5.0  # a message the user should read stays this long before background news may replace it


class StatusLine(Static):
    DEFAULT_CSS = """
    StatusLine {
        height: auto;
        max-height: 3;
        padding: 0 1;
        background: $panel;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("", id=id, classes=classes, markup=False)
        self.message = ""
        self.severity = "info"
        self.said_at = 0.0
        self.background = True

    def showing_problem(self) -> bool:
        """A warning or error went up less than KEEP_SECONDS ago."""
        return self.severity in ("warning", "error") and time.monotonic() - self.said_at < KEEP_SECONDS

    def say(self, message: str, severity: str = "info", background: bool = False) -> None:
        """Show a message; background news (a model loaded, a poll) never hides a fresh foreground one."""
        fresh = not self.background and time.monotonic() - self.said_at < KEEP_SECONDS
        if background and severity in ("info", "success") and fresh:
            return
        self.message, self.severity, self.said_at, self.background = message, severity, time.monotonic(), background
        self.update(Text(message, style=STYLES.get(severity, ""), overflow="fold"))
