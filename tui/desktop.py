"""A desktop notification, where the machine has a way to show one; quietly nothing where not.

`notify-send` (libnotify, on nearly every Linux desktop) or, on macOS, `osascript`. Run as a
command on a daemon thread rather than through a library: nothing to install, nothing to block
the caller, and a missing or broken notifier costs an alert nothing but the desktop pop-up.
(`desktop-notifier` would add dbus-fast and an asyncio D-Bus connection for the same pop-up; on
macOS it needs a signed app bundle, which a terminal's Python is not.)

Example:

    if not notify_desktop("pushpull alert", "RELIANCE above ₹1,320.00"):
        ...  # no notifier here: the in-app notification and the bell must do
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading

__all__ = ["APP_NAME", "NOTIFY_TIMEOUT", "notify_desktop"]

APP_NAME = "pushpull"
NOTIFY_TIMEOUT = 5.0
"""Seconds a notifier may take before it is killed (one that hangs on a missing D-Bus, say)."""

log = logging.getLogger("pushpull.desktop")

_MAC_SCRIPT = ("on run argv", "display notification (item 2 of argv) with title (item 1 of argv)", "end run")
"""AppleScript taking the title and body as arguments: no quoting of user text into the script."""


def notifier_command(title: str, body: str) -> list[str] | None:
    """The command that shows a notification here, or None if there is none on the PATH."""
    notify_send = shutil.which("notify-send")
    if notify_send is not None:
        return [notify_send, f"--app-name={APP_NAME}", "--", title, body]
    osascript = shutil.which("osascript")
    if osascript is not None:
        return [osascript, *(arg for line in _MAC_SCRIPT for arg in ("-e", line)), title, body]
    return None


def notify_desktop(title: str, body: str, *, timeout: float = NOTIFY_TIMEOUT) -> bool:
    """Show `title` and `body` as a desktop notification, without waiting for it; False (quietly)
    where there is no notifier. True means one was started: whether a desktop showed it (an SSH
    session has no D-Bus, say) cannot be known without waiting, so its failure is only logged.
    Never raises."""
    try:
        command = notifier_command(title, body)
        if command is None:
            return False
        threading.Thread(target=_run, args=(command, timeout), name="desktop-notify", daemon=True).start()
        return True
    except Exception:  # (a notification is a nicety: nothing about it may break an alert)
        log.debug("desktop notification failed", exc_info=True)
        return False


def _run(command: list[str], timeout: float) -> None:
    """Run the notifier to its end (it is reaped), killed after `timeout` seconds."""
    try:
        done = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False, text=True
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("desktop notifier %s failed: %s", command[0], exc)
        return
    if done.returncode != 0:
        log.debug("desktop notifier %s exited %d: %s", command[0], done.returncode, done.stderr.strip())
