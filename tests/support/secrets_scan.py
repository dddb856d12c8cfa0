"""Look for API keys and secrets where they must never be: every byte a run left behind.

:func:`forms` gives a secret's text and its obvious encodings (URL-encoded, hex of its bytes in
either case, base64 and URL-safe base64 with and without padding); :func:`scan` looks for every
form of every secret in named blobs (log text, raw journal bytes, HTTP answers, error output)
and lists each hit as ``"<where>: <secret name> (<form>)"``; :func:`files_under` reads every
file of a folder (the journal with its ``-wal``/``-shm``, logs, exports) as blobs.

:func:`distinctive_pair` makes a key and a secret that cannot occur by chance;
:func:`spawn` starts a ``ballast`` subprocess with an environment of its own (the pair in the
variables a config names) and returns it as a :class:`~tests.support.live_exchange.Process`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import secrets
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support.live_exchange import Process, spawn_process


def forms(value: str) -> dict[str, bytes]:
    """``value`` as text and in its obvious encodings (name → bytes to look for)."""
    raw = value.encode()
    b64 = base64.b64encode(raw)
    url_b64 = base64.urlsafe_b64encode(raw)
    return {
        "text": raw,
        "url-encoded": urllib.parse.quote(value, safe="").encode(),
        "url-encoded (plus)": urllib.parse.quote_plus(value).encode(),
        "hex": binascii.hexlify(raw),
        "HEX": binascii.hexlify(raw).upper(),
        "base64": b64,
        "base64 unpadded": b64.rstrip(b"="),
        "url-safe base64": url_b64.rstrip(b"="),
    }


def scan(blobs: Mapping[str, bytes], named_secrets: Mapping[str, str]) -> list[str]:
    """Every form of every secret found in every blob (empty: none)."""
    hits: list[str] = []
    for where, blob in blobs.items():
        for name, value in named_secrets.items():
            for form, needle in forms(value).items():
                if needle in blob:
                    hits.append(f"{where}: {name} ({form})")
    return hits


def files_under(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (path relative to it → raw bytes)."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def distinctive_pair() -> tuple[str, str]:
    """An API key and secret shaped like Binance's (64 letters and digits), random."""

    def token() -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        return "".join(secrets.choice(alphabet) for _ in range(64))

    return token(), token()


def spawn(
    args: Sequence[str], log: Path, cwd: Path, env: Mapping[str, str]
) -> contextlib.AbstractAsyncContextManager[Process]:
    """``ballast ARGS`` with environment ``env``, stdout piped, stderr to ``log``; killed on exit
    if still running."""
    return spawn_process(args, log, cwd, env=env)
