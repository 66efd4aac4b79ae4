"""Certificates and keys for the local control plane, made with the openssl CLI.

One CA signs the apiserver's serving certificate (for 127.0.0.1 and localhost); a
separate RSA key pair signs ServiceAccount tokens. Users authenticate with static
tokens (see ``cluster.py``). The real node (``node.py``) adds three certificates from
the same CA: the kubelet's client identity (``system:node:<name>`` in
``system:nodes``), the kubelet's serving certificate, and the apiserver's client
certificate for the kubelet.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


class PKIError(RuntimeError):
    """openssl is missing or failed."""


@dataclass(frozen=True)
class PKI:
    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def serving_cert(self) -> Path:
        return self.directory / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.directory / "apiserver.key"

    @property
    def sa_key(self) -> Path:
        return self.directory / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.directory / "sa.pub"

    def exists(self) -> bool:
        files = (self.ca_cert, self.serving_cert, self.serving_key, self.sa_key, self.sa_pub)
        return all(path.is_file() for path in files)

    def create(self) -> None:
        """Write a fresh CA, serving certificate and ServiceAccount key pair."""
        if shutil.which("openssl") is None:
            raise PKIError("openssl is not on PATH (Debian: apt-get install openssl)")
        self.directory.mkdir(parents=True, exist_ok=True)
        d = self.directory
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
                 "-subj", "/CN=shard-operator-local-ca",
                 "-keyout", str(self.ca_key), "-out", str(self.ca_cert))
        ext = d / "apiserver.ext"
        ext.write_text(
            "basicConstraints=CA:FALSE\n"
            "keyUsage=digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
            "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,"
            "DNS:kubernetes.default,DNS:kubernetes.default.svc\n"
        )
        csr = d / "apiserver.csr"
        _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=kube-apiserver",
                 "-keyout", str(self.serving_key), "-out", str(csr))
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(self.ca_cert),
                 "-CAkey", str(self.ca_key), "-CAcreateserial", "-days", "3650",
                 "-extfile", str(ext), "-out", str(self.serving_cert))
        _openssl("genrsa", "-out", str(self.sa_key), "2048")
        _openssl("rsa", "-in", str(self.sa_key), "-pubout", "-out", str(self.sa_pub))
        for path in d.glob("*.key"):
            path.chmod(0o600)

    def issue(self, name: str, subject: str, extensions: str) -> tuple[Path, Path]:
        """Sign a new key pair ``<name>.crt``/``<name>.key`` with the CA.

        ``subject`` is an openssl subject (``/O=group/CN=user``); ``extensions`` the
        lines of an x509 extension file (key usage, SANs).
        """
        cert, key = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        ext, csr = self.directory / f"{name}.ext", self.directory / f"{name}.csr"
        ext.write_text(extensions)
        _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
                 "-keyout", str(key), "-out", str(csr))
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(self.ca_cert),
                 "-CAkey", str(self.ca_key), "-CAcreateserial", "-days", "3650",
                 "-extfile", str(ext), "-out", str(cert))
        key.chmod(0o600)
        return cert, key


def _openssl(*args: str) -> None:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PKIError(f"openssl {args[0]} failed: {result.stderr.strip()}")
