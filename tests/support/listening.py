"""The TCP sockets a process listens on, from ``/proc`` (Linux): its socket inodes
(``/proc/PID/fd`` links ``socket:[INODE]``) matched against ``/proc/PID/net/tcp`` and ``tcp6``
(state ``0A``: LISTEN)."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

_LISTEN = "0A"


def socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _address(hex_address: str) -> tuple[str, int]:
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        ip = socket.inet_ntop(socket.AF_INET, raw[::-1])
    else:  # four little-endian 32-bit words
        words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
        ip = socket.inet_ntop(socket.AF_INET6, words)
    return ip, int(port, 16)


def _tcp_rows(pid: int) -> list[list[str]]:
    """The rows of ``/proc/PID/net/tcp`` and ``tcp6`` (every TCP socket of its namespace)."""
    rows: list[list[str]] = []
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if path.exists():
            rows.extend(line.split() for line in path.read_text().splitlines()[1:])
    return rows


def listening(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket ``pid`` listens on."""
    mine = socket_inodes(pid)
    found = [_address(row[1]) for row in _tcp_rows(pid) if row[3] == _LISTEN and row[9] in mine]
    return sorted(found)


def tcp_sockets(pid: int, inodes: set[str]) -> list[str]:
    """``local -> remote`` (``listening`` for a listener) of the TCP sockets among ``inodes``."""
    found: list[str] = []
    for row in _tcp_rows(pid):
        if row[9] in inodes:
            (host, port), (peer, peer_port) = _address(row[1]), _address(row[2])
            remote = "listening" if row[3] == _LISTEN else f"{peer}:{peer_port}"
            found.append(f"{host}:{port} -> {remote}")
    return sorted(found)


def is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback
