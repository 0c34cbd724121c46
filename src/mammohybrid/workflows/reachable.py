"""Whether a server answers at all, asked in a few seconds before handing its address to a
library that would wait minutes for it (Ray retries a GCS address, ignoring Ctrl-C meanwhile;
MLflow retries an HTTP tracking server with back-off; how long each: docs/evaluation.md)."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

# Seconds a TCP connection may take: a server on the network answers in far less.
CONNECT_TIMEOUT_S = 5.0


def split_address(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of ``HOST:PORT``, ``[IPV6]:PORT`` or ``scheme://HOST:PORT/...`` (the
    scheme's default port when it has none: 80 for http, 443 for https); None when the
    address names no port (``auto``, ``local``)."""
    text = address.strip()
    parts = urlsplit(text if "://" in text else f"//{text}")
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:  # a port out of range, or no number
        return None
    if not parts.hostname or port is None:
        return None
    return parts.hostname, port


def unreachable(host: str, port: int, timeout_s: float = CONNECT_TIMEOUT_S) -> str | None:
    """Why no TCP connection to ``host:port`` can be made within ``timeout_s`` (``connection
    refused``, ``unknown host``, ``no answer within 5 s``), or None once one is made. Ctrl-C
    interrupts it at once."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except socket.gaierror as error:
        return f"unknown host ({error.strerror or error})"
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except OSError as error:
        return (error.strerror or str(error)).lower()
