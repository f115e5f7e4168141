"""Signalling a process group: the app's and each bootstrap command's (each leads its own session)."""

from __future__ import annotations

import os

__all__ = ["group_alive", "signal_group"]


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to the process group ``pgid``; False when no process of it is left to signal.

    A group that is gone, or whose last members are no longer ours to signal
    (EPERM: reaped and its number reused by another user's process), counts as gone.
    """
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def group_alive(pgid: int) -> bool:
    """Whether any process of the group ``pgid`` is left (signal 0 checks without sending)."""
    return signal_group(pgid, 0)
