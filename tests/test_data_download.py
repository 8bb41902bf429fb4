"""Downloads against a local HTTP server on 127.0.0.1: resume, restarts, checksums, errors."""

from __future__ import annotations

import hashlib
import http.server
import re
import threading

import numpy as np
import pytest

from hba_lib.data.download import (
    HMDB51_FILES,
    UCF101_FILES,
    ChecksumError,
    DownloadError,
    download,
    verify_file,
)

PAYLOAD = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
SHA = hashlib.sha256(PAYLOAD).hexdigest()
MD5 = hashlib.md5(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    state: dict = {}

    def log_message(self, *a):  # keep the test output clean
        pass

    def do_GET(self):  # noqa: N802
        st = self.state
        st["requests"].append(self.headers.get("Range"))
        if self.path != "/file.bin":
            self.send_error(404, "Not Found")
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and st.get("ranges", True):
            start = int(re.match(r"bytes=(\d+)-", rng)[1])
            if start >= len(PAYLOAD):
                self.send_response(416)
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = st.get("cut_after")
        if cut is not None:  # drop the connection once, mid-transfer
            st["cut_after"] = None
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        # Counted before the write: the client can read the last byte and the test can
        # check the count before this thread would get past a write.
        st["served"] += len(body)
        self.wfile.write(body)


@pytest.fixture
def server():
    state = {"requests": [], "served": 0}
    handler = type("H", (_Handler,), {"state": state})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", state
    httpd.shutdown()
    httpd.server_close()


def test_full_download_verifies(server, tmp_path):
    url, st = server
    out = download(
        f"{url}/file.bin",
        tmp_path / "f.bin",
        sha256=SHA,
        md5=MD5,
        size=len(PAYLOAD),
        progress=False,
    )
    assert out.read_bytes() == PAYLOAD and not (tmp_path / "f.bin.part").exists()
    assert st["requests"] == [None]
    download(f"{url}/file.bin", out, sha256=SHA, progress=False)  # present + valid: no request
    assert len(st["requests"]) == 1


def test_resume_of_partial_file_requests_only_the_rest(server, tmp_path):
    url, st = server
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:100_000])
    out = download(f"{url}/file.bin", tmp_path / "f.bin", sha256=SHA, progress=False)
    assert out.read_bytes() == PAYLOAD
    assert st["requests"] == ["bytes=100000-"] and st["served"] == len(PAYLOAD) - 100_000


def test_server_without_ranges_restarts_cleanly(server, tmp_path):
    url, st = server
    st["ranges"] = False
    (tmp_path / "f.bin.part").write_bytes(b"garbage-prefix")
    out = download(f"{url}/file.bin", tmp_path / "f.bin", sha256=SHA, progress=False)
    assert out.read_bytes() == PAYLOAD


def test_dropped_connection_is_retried_and_resumed(server, tmp_path, monkeypatch):
    monkeypatch.setattr("hba_lib.data.download.time.sleep", lambda s: None)
    url, st = server
    st["cut_after"] = 120_000
    out = download(f"{url}/file.bin", tmp_path / "f.bin", sha256=SHA, progress=False)
    assert out.read_bytes() == PAYLOAD
    assert st["requests"][0] is None and st["requests"][1] == "bytes=120000-"


def test_checksum_mismatch_raises_and_deletes_partial(server, tmp_path):
    url, _ = server
    dest = tmp_path / "f.bin"
    with pytest.raises(ChecksumError, match=r"f\.bin.*sha256"):
        download(f"{url}/file.bin", dest, sha256="0" * 64, progress=False)
    assert not dest.exists() and not (tmp_path / "f.bin.part").exists()
    with pytest.raises(ChecksumError, match="md5"):
        download(f"{url}/file.bin", dest, md5="0" * 32, progress=False)


def test_wrong_size_and_corrupt_existing_file(server, tmp_path):
    url, _ = server
    with pytest.raises(ChecksumError, match="size"):
        download(f"{url}/file.bin", tmp_path / "a.bin", size=len(PAYLOAD) + 1, progress=False)
    bad = tmp_path / "b.bin"
    bad.write_bytes(b"not it")
    with pytest.raises(ChecksumError, match="b.bin"):
        verify_file(bad, sha256=SHA)


def test_http_404_names_url_and_file(server, tmp_path):
    url, _ = server
    with pytest.raises(DownloadError, match=r"missing\.bin.*404"):
        download(f"{url}/missing.bin", tmp_path / "m.bin", retries=0, progress=False)


def test_official_addresses():
    names = {f.name: f for f in UCF101_FILES + HMDB51_FILES}
    assert set(names) == {
        "UCF101.rar",
        "UCF101TrainTestSplits-RecognitionTask.zip",
        "hmdb51_org.rar",
        "test_train_splits.rar",
    }
    assert names["UCF101.rar"].url == "https://www.crcv.ucf.edu/data/UCF101/UCF101.rar"
    assert names["test_train_splits.rar"].md5 == "15e67781e70dcfbdce2d7dbb9b3344b5"
    assert all(f.url.startswith("https://") and f.url.endswith(f.name) for f in names.values())
