"""Fetch and verify the `chinese-poetry` npm tarball, the one source of Shiren's corpus."""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.request
from pathlib import Path

from core.atomic import write_bytes
from core.types import ShirenError

PACKAGE = "chinese-poetry"
VERSION = "2.0.1"
REGISTRY = "https://registry.npmjs.org"
# The registry's published dist.integrity for chinese-poetry@2.0.1; lets --from-tarball verify offline.
PINNED_INTEGRITY = {
    "2.0.1": "sha512-KtYARvV7CWNtax0na9+Jn6PlhGgSoid7PWyDzXI4KsCEm2odZcqEQyval5koaLygZnM/EQ3lfJ//25K8p3uHNg==",
}


class SourceError(ShirenError):
    """The tarball could not be fetched or failed verification."""


def integrity_of(path: Path) -> str:
    """npm-style Subresource Integrity string (sha512, base64) of a file."""
    h = hashlib.sha512()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha512-" + base64.b64encode(h.digest()).decode()


def registry_dist(version: str = VERSION, timeout: float = 30.0) -> dict:
    """The `dist` record (tarball URL, integrity) the registry publishes for this version."""
    url = f"{REGISTRY}/{PACKAGE}/{version}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return json.load(r)["dist"]
    except Exception as e:  # noqa: BLE001 - any network/JSON failure is one user-facing error
        raise SourceError(f"cannot reach the npm registry for {PACKAGE}@{version}: {e}") from e


def verify(path: Path, expected: str) -> None:
    got = integrity_of(path)
    if got != expected:
        raise SourceError(
            f"{path} does not match {PACKAGE}'s published integrity (expected {expected[:30]}…, got {got[:30]}…); "
            "refusing a corrupt or wrong tarball"
        )


def fetch_tarball(cache: Path, version: str = VERSION) -> tuple[Path, str]:
    """Download (or reuse a verified cached copy of) the tarball; returns (path, integrity)."""
    dist = registry_dist(version)
    expected = dist["integrity"]
    pinned = PINNED_INTEGRITY.get(version)
    if pinned and pinned != expected:
        raise SourceError(f"the registry's integrity for {PACKAGE}@{version} differs from the pinned one; refusing")
    path = cache / f"{PACKAGE}-{version}.tgz"
    if path.exists() and integrity_of(path) == expected:
        return path, expected
    from tqdm import tqdm

    req = urllib.request.urlopen(dist["tarball"], timeout=60)
    total = int(req.headers.get("Content-Length") or 0)
    buf = bytearray()
    with tqdm(total=total or None, unit="B", unit_scale=True, desc="download") as bar:
        for chunk in iter(lambda: req.read(1 << 16), b""):
            buf += chunk
            bar.update(len(chunk))
    write_bytes(path, bytes(buf))
    verify(path, expected)
    return path, expected


def local_tarball(path: Path, version: str = VERSION) -> tuple[Path, str]:
    """Verify a tarball given by the user against the pinned integrity (offline)."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"no such tarball: {path}")
    expected = PINNED_INTEGRITY.get(version)
    if expected is None:
        raise SourceError(f"no pinned integrity for version {version}; fetch it from the registry instead")
    verify(path, expected)
    return path, expected
