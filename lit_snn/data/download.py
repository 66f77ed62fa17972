"""Finding and downloading dataset files, with checksums and errors that say what to do.

Only :func:`fetch_url` touches the network (tests replace it). :func:`download` tries each mirror in turn, writes to a
temporary file, checks the md5 and only then moves the file into place: a failed or corrupt download never
leaves a file that a later run would take for the real one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
from collections.abc import Sequence
from pathlib import Path

DATA_DIR_ENV = "LIT_SNN_DATA_DIR"


class DatasetNotFoundError(FileNotFoundError):
    """A dataset file is not where the datamodule looked, and downloading was not allowed."""


class DownloadError(RuntimeError):
    """A dataset file could not be downloaded, or the downloaded file failed its checksum."""


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """``data_dir`` if given, else ``$LIT_SNN_DATA_DIR``, else ``./data``."""
    if data_dir is None or str(data_dir) == "":
        data_dir = os.environ.get(DATA_DIR_ENV) or "data"
    return Path(data_dir).expanduser()


def md5sum(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex md5 of a file's bytes."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_url(url: str, destination: Path, timeout: float = 60.0) -> None:
    """Download ``url`` to ``destination`` (the only function here that uses the network)."""
    request = urllib.request.Request(url, headers={"User-Agent": "lit-snn"})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(destination, "wb") as out:
        shutil.copyfileobj(response, out, length=1 << 20)


def missing_file_error(dataset: str, path: Path, urls: Sequence[str], md5: str | None) -> DatasetNotFoundError:
    checksum = f" (md5 {md5})" if md5 else ""
    return DatasetNotFoundError(
        f"{dataset}: {path} not found. Run with download=True to fetch it, or download {path.name}{checksum} "
        f"from {' or '.join(urls)} and put it at {path}. The data directory is the data_dir argument, else "
        f"${DATA_DIR_ENV}, else ./data."
    )


def download(dataset: str, filename: str, urls: Sequence[str], md5: str, folder: Path) -> Path:
    """Fetch ``filename`` into ``folder`` from the first of ``urls`` that answers with the right md5.

    Raises :class:`DownloadError` naming the file, every URL tried with its failure, and where to put the file by
    hand, when no URL gives a file with md5 ``md5``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / filename
    partial = folder / (filename + ".part")
    failures = []
    for url in urls:
        try:
            fetch_url(url, partial)
        except Exception as err:  # noqa: BLE001 - every network failure is reported below, per URL
            failures.append(f"{url}: {type(err).__name__}: {err}")
            partial.unlink(missing_ok=True)
            continue
        actual = md5sum(partial)
        if actual == md5:
            os.replace(partial, target)
            return target
        partial.unlink(missing_ok=True)
        failures.append(f"{url}: checksum mismatch (md5 {actual}, expected {md5})")
    raise DownloadError(
        f"{dataset}: could not download {filename}:\n  " + "\n  ".join(failures)
        + f"\nDownload {filename} (md5 {md5}) by hand from {' or '.join(urls)} and put it at {target}."
    )


def ensure_file(dataset: str, filename: str, urls: Sequence[str], md5: str, folder: Path, allow_download: bool) -> Path:
    """The path of ``folder/filename``: present, downloaded (``allow_download``), or a clear error."""
    path = folder / filename
    if path.is_file():
        return path
    if not allow_download:
        raise missing_file_error(dataset, path, urls, md5)
    return download(dataset, filename, urls, md5, folder)
