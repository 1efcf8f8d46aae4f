"""Pinned sources: verification refuses tampered or truncated packages; unpacking is safe; clients are named."""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from repro.data import sources
from repro.data.sources import Source, SourceError


def npm_integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def make_tgz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_deb(files: dict[str, bytes]) -> bytes:
    """A minimal Debian package: an ar archive with debian-binary and data.tar.gz."""
    def member(name: str, data: bytes) -> bytes:
        header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        return header + data + (b"\n" if len(data) % 2 else b"")

    return b"!<arch>\n" + member("debian-binary", b"2.0\n") + member("data.tar.gz", make_tgz(files))


@pytest.fixture
def fake_npm_source(tmp_path, monkeypatch) -> Source:
    data = make_tgz({"package/package.json": b'{"name": "fake"}', "package/img/1f436.png": b"png"})
    src = Source("fake", "npm", "@scope/fake-pkg", "1.0.0", npm_integrity(data), "MIT", "Fake", "https://example.org")
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / "scope-fake-pkg-1.0.0.tgz").write_bytes(data)
    monkeypatch.setitem(sources.SOURCES, "fake", src)
    return src


def test_every_source_is_pinned_with_a_digest_and_licence() -> None:
    for key, s in sources.SOURCES.items():
        assert s.key == key and s.client in ("npm", "apt", "pip")
        assert s.digest.startswith(("sha512-", "sha256:")) and s.version and s.licence and s.attribution
        assert "apple" not in s.package and "facebook" not in s.package


def test_fetch_verifies_unpacks_and_caches(tmp_path, fake_npm_source, monkeypatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)  # no client may be needed for a verified local file
    out = sources.fetch("fake", tmp_path)
    assert (out / "package" / "img" / "1f436.png").read_bytes() == b"png"
    (out / "package" / "marker").write_text("kept")
    assert sources.fetch("fake", tmp_path) == out and (out / "package" / "marker").exists()  # cached: no re-unpack


def test_tampered_or_truncated_package_is_refused(tmp_path, fake_npm_source, monkeypatch) -> None:
    path = tmp_path / "downloads" / "scope-fake-pkg-1.0.0.tgz"
    path.write_bytes(path.read_bytes()[:-10])  # truncated
    monkeypatch.setattr(sources, "_run", lambda cmd, cwd, source: "")  # the "client" leaves the bad file
    with pytest.raises(SourceError, match="does not match the pinned digest of @scope/fake-pkg@1.0.0"):
        sources.fetch("fake", tmp_path)


def test_missing_client_error_says_how_to_get_it(tmp_path, monkeypatch) -> None:
    src = replace(sources.SOURCES["noto"], key="noto")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(SourceError, match=r"needs `npm`.*conda install nodejs"):
        sources.download(src, tmp_path)
    with pytest.raises(SourceError, match=r"needs `apt-get`.*--skip fashion-mnist"):
        sources.download(sources.SOURCES["fashion-mnist"], tmp_path)


def test_debian_package_is_unpacked_without_dpkg(tmp_path, monkeypatch) -> None:
    data = make_deb({"./usr/share/datasets/x.txt": b"hello"})
    src = Source("fakedeb", "apt", "fakedeb", "1:1.0-1", "sha256:" + hashlib.sha256(data).hexdigest(), "MIT", "F", "")
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / "fakedeb_1%3a1.0-1_all.deb").write_bytes(data)
    monkeypatch.setitem(sources.SOURCES, "fakedeb", src)
    out = sources.fetch("fakedeb", tmp_path)
    assert (out / "usr" / "share" / "datasets" / "x.txt").read_bytes() == b"hello"


def test_archive_with_escaping_paths_is_refused(tmp_path, monkeypatch) -> None:
    data = make_tgz({"../evil.txt": b"x"})
    src = Source("evil", "npm", "evil", "1.0.0", npm_integrity(data), "MIT", "E", "")
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / "evil-1.0.0.tgz").write_bytes(data)
    monkeypatch.setitem(sources.SOURCES, "evil", src)
    with pytest.raises((SourceError, tarfile.TarError)):
        sources.fetch("evil", tmp_path)
    assert not (tmp_path / "raw" / "evil.txt").exists() and not Path(tmp_path / "evil.txt").exists()


def test_unknown_source_and_data_dir(monkeypatch, tmp_path) -> None:
    with pytest.raises(KeyError, match="unknown source 'nope'"):
        sources.fetch("nope", tmp_path)
    monkeypatch.setenv("REPRO_DATA", str(tmp_path / "d"))
    assert sources.data_dir() == tmp_path / "d"
    monkeypatch.delenv("REPRO_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    assert sources.data_dir() == tmp_path / "c" / "clip-repro"


def test_manifest_lists_licences() -> None:
    rows = sources.manifest(["openmoji", "noto"])
    assert {r["key"] for r in rows} == {"openmoji", "noto"}
    assert next(r for r in rows if r["key"] == "openmoji")["licence"] == "CC-BY-SA-4.0"
