"""The app's widgets, one per module."""

from __future__ import annotations

from tui.widgets.comparison import Comparison
from tui.widgets.help import HelpScreen
from tui.widgets.pane import Pane
from tui.widgets.pane_detail import PaneDetail
from tui.widgets.server_bar import ServerBar

__all__ = ["Comparison", "HelpScreen", "Pane", "PaneDetail", "ServerBar"]
