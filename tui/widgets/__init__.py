"""The app's widgets, one per module."""

from __future__ import annotations

from tui.widgets.advisor import AdvisorScreen
from tui.widgets.alerts import AlertsScreen
from tui.widgets.comparison import Comparison, ComparisonRow
from tui.widgets.help import HelpScreen
from tui.widgets.key_bar import KeyBar, KeyHint
from tui.widgets.pane import Pane
from tui.widgets.pane_detail import PaneDetail, PaneDetailScreen
from tui.widgets.quote import QuoteHeader
from tui.widgets.server_bar import ServerBar
from tui.widgets.watchlist import WatchlistScreen

__all__ = [
    "AdvisorScreen",
    "AlertsScreen",
    "Comparison",
    "ComparisonRow",
    "HelpScreen",
    "KeyBar",
    "KeyHint",
    "Pane",
    "PaneDetail",
    "PaneDetailScreen",
    "QuoteHeader",
    "ServerBar",
    "WatchlistScreen",
]
