"""A private certificate authority and one server certificate for the local launcher's
secure mode (`backbone infra up --secure`): Kafka's SASL_SSL listener and Cassandra's
client encryption present the server certificate, the backbone's clients trust the CA.

Made once per state directory with the `openssl` command (tens of milliseconds; the JDK's
keytool took seconds per step on a busy machine), kept with mode 0600 beside the data.
The certificate names localhost and the loopback addresses a local node may listen on.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from deploy.maven import require_tool

# 127.0.0.1 and the addresses of a local multi-node cluster (127.0.0.2, 127.0.0.3, ...).
LOOPBACK_NODES = 9
VALID_DAYS = 825


@dataclass(frozen=True)
class TlsFiles:
    ca_file: Path  # PEM: what clients trust
    keystore: Path  # PKCS12: the server's key and certificate chain, for Java servers
    keystore_password: str

    @classmethod
    def at(cls, directory: Path) -> TlsFiles:
        return cls(
            ca_file=directory / "ca.pem",
            keystore=directory / "server.p12",
            keystore_password=_read_or_make(directory / "keystore.password"),
        )


def ensure_tls(directory: Path) -> TlsFiles:
    """The CA and server keystore in `directory`, made on first use."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    files = TlsFiles.at(directory)
    if files.keystore.exists() and files.ca_file.exists():
        return files
    openssl = require_tool("openssl", "Secure mode makes its certificates with openssl.")
    ca_key, server_key = directory / "ca.key", directory / "server.key"
    csr, cert, ext = directory / "server.csr", directory / "server.pem", directory / "server.ext"
    sans = ",".join(["DNS:localhost", *(f"IP:127.0.0.{n}" for n in range(1, LOOPBACK_NODES + 1))])
    ext.write_text(
        f"subjectAltName={sans}\nextendedKeyUsage=serverAuth,clientAuth\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
    )
    days = str(VALID_DAYS)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _run(
        [
            openssl,
            "req",
            "-x509",
            *ec,
            "-keyout",
            ca_key,
            "-out",
            files.ca_file,
            "-days",
            days,
            "-subj",
            "/CN=backbone local CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]
    )
    _run([openssl, "req", *ec, "-keyout", server_key, "-out", csr, "-subj", "/CN=localhost"])
    _run(
        [
            openssl,
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            files.ca_file,
            "-CAkey",
            ca_key,
            "-CAcreateserial",
            "-out",
            cert,
            "-days",
            days,
            "-extfile",
            ext,
        ]
    )
    # Written last: its presence means the set is complete.
    _run(
        [
            openssl,
            "pkcs12",
            "-export",
            "-in",
            cert,
            "-inkey",
            server_key,
            "-certfile",
            files.ca_file,
            "-name",
            "server",
            "-out",
            files.keystore,
            "-passout",
            f"pass:{files.keystore_password}",
        ]
    )
    for path in directory.iterdir():
        path.chmod(0o600)
    return files


def _run(argv: list[str | Path]) -> None:
    from deploy.process import LaunchError

    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LaunchError(f"making the local certificates failed: {done.stderr.strip()[-800:]}")


def _read_or_make(path: Path) -> str:
    """A random secret kept in `path` (mode 0600), made on first use."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(24))
    return path.read_text().strip()
