"""Files on XRootD storage (``root://`` URLs): listing, stat and checksum through the XRootD
client, and bounded retries.

uproot opens ``root://`` URLs itself through the same client and reads them in ranges, so a
remote ROOT file streams batch by batch as a local one does. The client's own connection
retries would otherwise wait minutes for a server that went away: they are bounded here
(:data:`CLIENT_SETTINGS`, unless the environment sets them) and every remote operation is tried
:data:`ATTEMPTS` times before an error naming the URL.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import time
from collections.abc import Callable
from typing import TypeVar

from jetimage.files import InputError, sha256sum

#: XRootD client settings (environment variables) bounding how long a dead server is retried.
CLIENT_SETTINGS = {
    "XRD_CONNECTIONWINDOW": "5",
    "XRD_CONNECTIONRETRY": "2",
    "XRD_REQUESTTIMEOUT": "60",
    "XRD_STREAMTIMEOUT": "30",
}
#: Tries of each remote operation (open, read a batch, list, stat) before it fails.
ATTEMPTS = 3

T = TypeVar("T")


def is_remote(path) -> bool:
    """Whether ``path`` is an XRootD URL (``root://`` or ``roots://``)."""
    return str(path).startswith(("root://", "roots://"))


def client():
    """The XRootD client module, its connection retries bounded (:data:`CLIENT_SETTINGS`)."""
    for name, value in CLIENT_SETTINGS.items():
        os.environ.setdefault(name, value)
    try:
        from XRootD import client as xrootd
    except ImportError as err:
        msg = "root:// files need the XRootD client: pip install xrootd"
        raise InputError(msg) from err
    return xrootd


def split_url(url: str) -> tuple[str, str]:
    """(server ``root://host:port``, path on it) of an XRootD URL."""
    scheme, rest = str(url).split("://", 1)
    host, _, path = rest.partition("/")
    return f"{scheme}://{host}", "/" + path.lstrip("/")


def retry(
    what: str, operation: Callable[[], T], *, attempts: int = ATTEMPTS, wait: float = 1.0
) -> T:
    """``operation()``, tried ``attempts`` times (waiting ``wait``, then twice as long, between
    tries); the last failure becomes an InputError that says ``what`` failed and why."""
    for attempt in range(1, attempts + 1):
        try:
            return operation()
        except Exception as err:  # the client and uproot raise many kinds
            if attempt == attempts:
                msg = f"{what} failed after {attempts} attempts ({err})"
                raise InputError(msg) from err
            time.sleep(wait * 2 ** (attempt - 1))
    msg = "unreachable"
    raise AssertionError(msg)


def _checked(status, what: str):
    if not status.ok:
        msg = f"{what}: {status.message.strip()}"
        raise OSError(msg)


def stat(url: str) -> dict:
    """``{"size": bytes, "modtime": seconds}`` of a remote file."""
    xrootd = client()
    server, path = split_url(url)

    def ask():
        status, info = xrootd.FileSystem(server).stat(path)
        _checked(status, url)
        return {"size": int(info.size), "modtime": int(info.modtime)}

    return retry(f"{url}: stat", ask)


def expand(pattern: str) -> list[str]:
    """The URLs a ``root://`` pattern names, sorted: itself if it has no wildcard or if its
    directory holds a file of that very name, else every file of its directory whose name
    matches (wildcards in the file name only)."""
    server, path = split_url(pattern)
    directory, _, name = path.rpartition("/")
    if any(c in directory for c in "*?["):
        msg = f"{pattern}: wildcards only in the file name of a root:// URL"
        raise InputError(msg)
    if not any(c in name for c in "*?["):
        return [pattern]
    xrootd = client()

    def listing():
        status, found = xrootd.FileSystem(server).dirlist(directory or "/")
        _checked(status, f"{server}/{directory}")
        return [entry.name for entry in found]

    names = retry(f"{pattern}: listing {directory or '/'}", listing)
    if name in names:
        return [pattern]
    return [f"{server}/{directory}/{n}" for n in sorted(fnmatch.filter(names, name))]


def sha256(url: str, *, block: int = 1 << 23) -> str:
    """SHA-256 of a remote file's bytes, streamed in ``block``-byte reads (the same digest as
    :func:`jetimage.files.sha256sum` of a local copy)."""
    xrootd = client()

    def digest():
        remote = xrootd.File()
        _checked(remote.open(url)[0], url)
        try:
            total = hashlib.sha256()
            offset = 0
            while True:
                status, data = remote.read(offset, block)
                _checked(status, url)
                if not data:
                    return total.hexdigest()
                total.update(data)
                offset += len(data)
        finally:
            remote.close()

    return retry(f"{url}: reading it for its checksum", digest)


def checksum(path) -> str:
    """SHA-256 of a local file (:func:`jetimage.files.sha256sum`) or of a ``root://`` file."""
    return sha256(str(path)) if is_remote(path) else sha256sum(path)
