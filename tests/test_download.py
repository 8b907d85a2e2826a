"""The CIFAR-10 downloader against a local HTTP server on 127.0.0.1 serving a small archive
with the official layout: success, checksum mismatch, interrupted transfer, unsafe members."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from eosteach import data

RECORDS_PER_FILE = 20


def small_cifar_files(seed: int = 0) -> dict[str, bytes]:
    """The archive's files, each with 20 records of 3,073 bytes instead of 10,000."""
    rng = np.random.default_rng(seed)
    files = {}
    for name in data.TRAIN_FILES + (data.TEST_FILE,):
        records = rng.integers(0, 256, size=(RECORDS_PER_FILE, 3073), dtype=np.uint8)
        records[:, 0] = np.arange(RECORDS_PER_FILE) % 10
        files[name] = records.tobytes()
    files[data.META_FILE] = ("\n".join(data.CLASSES) + "\n\n").encode()
    files["readme.html"] = b"<html>small test copy</html>"
    return files


def tar_gz(files: dict[str, bytes], extra: list[tarfile.TarInfo] = ()) -> bytes:
    """A .tar.gz of ``cifar-10-batches-bin/<name>`` members, plus ``extra`` raw members."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        folder = tarfile.TarInfo("cifar-10-batches-bin")
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(folder)
        for member in extra:
            tar.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
        for name, content in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def md5(payload: bytes) -> str:
    return hashlib.md5(payload).hexdigest()


def everything_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


class Server(http.server.ThreadingHTTPServer):
    """Serves ``payload`` at any path; each entry of ``cut_after`` makes one response send
    only that many bytes (with the full Content-Length) and then drop the connection."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.payload = b""
        self.cut_after: list[int] = []
        self.requests = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/cifar-10-binary.tar.gz"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        server = self.server
        server.requests += 1
        body = server.payload
        self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.cut_after:
            self.wfile.write(body[: server.cut_after.pop(0)])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def server(monkeypatch):
    # A proxy from the environment must not intercept requests to 127.0.0.1.
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_download_verifies_and_extracts_the_archive(server, tmp_path):
    files = small_cifar_files()
    server.payload = tar_gz(files)
    cache = tmp_path / "cache"
    root = data.download_cifar10(cache, url=server.url, md5=md5(server.payload), progress=False)
    assert root == cache
    extracted = cache / "cifar-10-batches-bin"
    for name, content in files.items():
        assert (extracted / name).read_bytes() == content
    # Only the extracted folder is left: no archive, no temporary file.
    assert everything_under(cache) == ["cifar-10-batches-bin"] + [
        f"cifar-10-batches-bin/{name}" for name in sorted(files)
    ]
    # A second call finds the folder complete and does not download again.
    data.download_cifar10(cache, url=server.url, md5=md5(server.payload), progress=False)
    assert server.requests == 1
    # The extracted folder is read by the loader like the real one.
    ds = data.load_cifar10(30, n_test=7, root=cache, download=False, loss="ce")
    first = np.frombuffer(files["data_batch_1.bin"], dtype=np.uint8).reshape(-1, 3073)
    second = np.frombuffer(files["data_batch_2.bin"], dtype=np.uint8).reshape(-1, 3073)
    assert ds.y_train.tolist() == np.concatenate([first, second])[:30, 0].tolist()
    assert ds.n_test == 7 and ds.x_train.shape == (30, 3072)


def test_download_goes_to_eosteach_data_when_no_folder_is_given(server, tmp_path, monkeypatch):
    server.payload = tar_gz(small_cifar_files())
    monkeypatch.setenv("EOSTEACH_DATA", str(tmp_path / "from-env"))
    root = data.download_cifar10(url=server.url, md5=md5(server.payload), progress=False)
    assert root == tmp_path / "from-env"
    assert data.is_extracted(root)


def test_checksum_mismatch_raises_and_leaves_no_file(server, tmp_path):
    server.payload = tar_gz(small_cifar_files())
    cache = tmp_path / "cache"
    with pytest.raises(data.DownloadError, match="checksum"):
        data.download_cifar10(cache, url=server.url, md5="0" * 32, progress=False)
    assert everything_under(cache) == []


def test_interrupted_download_restarts_cleanly(server, tmp_path):
    server.payload = tar_gz(small_cifar_files())
    server.cut_after = [len(server.payload) // 3]
    cache = tmp_path / "cache"
    with pytest.raises(data.DownloadError, match="interrupted"):
        data.download_cifar10(cache, url=server.url, md5=md5(server.payload), progress=False)
    assert everything_under(cache) == []  # the partial file is gone, nothing looks complete
    data.download_cifar10(cache, url=server.url, md5=md5(server.payload), progress=False)
    assert server.requests == 2
    assert data.is_extracted(cache)


def test_partial_file_left_by_a_killed_process_is_never_used_and_is_cleaned(server, tmp_path):
    server.payload = tar_gz(small_cifar_files())
    cache = tmp_path / "cache"
    cache.mkdir()
    leftover = cache / ".cifar-10-binary.tar.gz.killed.part"
    leftover.write_bytes(server.payload[:100])
    old = time.time() - 3600
    os.utime(leftover, (old, old))
    data.download_cifar10(cache, url=server.url, md5=md5(server.payload), progress=False)
    assert server.requests == 1 and not leftover.exists()
    assert data.is_extracted(cache)


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = 4 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(
    "member",
    [
        _member("cifar-10-batches-bin/../escaped.bin"),
        _member("../escaped.bin"),
        _member("/tmp/escaped.bin"),
        _member("cifar-10-batches-bin/data_batch_1.bin", tarfile.SYMTYPE, "/etc/passwd"),
        _member("cifar-10-batches-bin/test_batch.bin", tarfile.LNKTYPE, "../outside"),
    ],
    ids=["dotdot-inside", "dotdot", "absolute", "symlink", "hardlink"],
)
def test_unsafe_members_are_refused(server, tmp_path, member):
    server.payload = tar_gz(small_cifar_files(), extra=[member])
    cache = tmp_path / "deep" / "cache"
    with pytest.raises(data.DownloadError, match="unsafe|links"):
        data.download_cifar10(cache, url=server.url, md5=md5(server.payload), progress=False)
    assert everything_under(cache) == []
    assert everything_under(tmp_path) == ["deep", "deep/cache"]  # nothing escaped either


def test_archive_missing_a_required_file_is_an_error(server, tmp_path):
    files = small_cifar_files()
    del files["test_batch.bin"]
    server.payload = tar_gz(files)
    with pytest.raises(data.DownloadError, match="test_batch.bin"):
        data.download_cifar10(tmp_path, url=server.url, md5=md5(server.payload), progress=False)
    assert everything_under(tmp_path) == []


def test_unreachable_server_is_a_download_error(tmp_path, server):
    url = server.url
    server.shutdown()
    server.server_close()
    with pytest.raises(data.DownloadError, match="call again"):
        data.download_cifar10(tmp_path, url=url, md5="0" * 32, progress=False, timeout=5)
    assert everything_under(tmp_path) == []


def test_progress_bar_reports_the_bytes(server, tmp_path, capsys):
    server.payload = tar_gz(small_cifar_files())
    data.download_cifar10(tmp_path, url=server.url, md5=md5(server.payload), progress=True)
    err = capsys.readouterr().err
    assert "downloading cifar-10-binary.tar.gz" in err and "100%" in err
    assert torch.is_tensor(data.load_cifar10(5, n_test=5, root=tmp_path, download=False).x_train)
