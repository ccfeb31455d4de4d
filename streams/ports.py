"""A port a process is about to listen on, checked first: when another process holds it (an
earlier worker still running, a second console), start-up stops with a message naming the port
and the setting, instead of a server library's traceback or a silent exit."""

from __future__ import annotations

import errno
import socket


class PortInUse(RuntimeError):
    """Another process listens on a port this one needs."""


def check_free(host: str, port: int, setting: str) -> None:
    """Raise PortInUse when ``host:port`` cannot be bound; ``setting`` is the variable that
    chose the port (QUANTRAC_WEB_PORT ...). Binds the way servers do (SO_REUSEADDR), so a
    port in TIME_WAIT after a restart is not reported."""
    family, kind, proto, _, addr = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise PortInUse(
                f"port {port} on {host or '*'} ({setting}) is already in use by another "
                "process: stop it, or set another port"
            ) from None
