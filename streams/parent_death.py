"""Children that die with their parent, even when the parent is killed hard.

``quantrac demo`` stops its children on Ctrl-C or SIGTERM, but SIGKILL runs no handler: a demo
killed that way left its worker running, holding the metrics port. On Linux the kernel sends
the child SIGTERM when its parent dies (``prctl(PR_SET_PDEATHSIG)``); elsewhere this does
nothing and only the demo's own handlers stop its children."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` for subprocess.Popen (None off Linux): the child gets SIGTERM, which
    stops it cleanly, when this process dies."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded here: the child only makes the call
    parent = os.getpid()

    def arm() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the call: no signal would come
            os.kill(os.getpid(), signal.SIGTERM)

    return arm
