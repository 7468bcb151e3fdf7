"""Ports on 127.0.0.1 for the tests that start servers and Ray nodes (importable from every test package: the
rootdir conftest puts tests/ on sys.path)."""
from __future__ import annotations

import socket


def free_ports(n: int) -> list[int]:
    """n distinct ports free now. Another process can take one before the caller binds it: callers that start a
    server on it retry or fail loudly."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def port_open(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port."""
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0
