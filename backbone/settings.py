"""Configuration shared by every part, read from environment variables and, optionally,
from a TOML file named by BACKBONE_CONFIG (a variable set in the environment wins over the
file; see `load_config_file`).

Every variable has a default that works for the local launcher in `deploy/`, so a
newcomer sets nothing. The table in README.md lists them.
"""

from __future__ import annotations

import logging
import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("backbone.settings")


class SettingsError(ValueError):
    """A setting is missing or wrong; the message names the variable and never its secret."""


def _env(name: str, default: str) -> str:
    load_config_file()
    value = os.environ.get(name, "").strip()
    return value or default


def _env_int(name: str, default: int) -> int:
    load_config_file()
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _env_bool(name: str, default: bool) -> bool:
    raw = _env(name, "true" if default else "false").lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


# Words that mark a variable as a secret: a config file holding one must not be readable
# by others, and none of them is ever printed.
_SECRET_WORDS = ("PASSWORD", "SECRET", "MASTER_KEY", "SEED", "CLIENTS")
_loaded_config: str | None = None


def load_config_file() -> None:
    """Put the settings of the TOML file named by BACKBONE_CONFIG into the environment,
    under each variable not already set there: the environment wins over the file.

    A key names its variable without the BACKBONE_ prefix, in a table or not:
    `[kafka] password = "..."` and `kafka_password = "..."` both set BACKBONE_KAFKA_PASSWORD.
    Lists become comma-separated values, booleans true/false. The file goes into the
    environment (rather than being read beside it) so that every reader of a BACKBONE_
    variable, and the worker that `backbone worker` starts, sees the same values.
    Loaded once per path; a file readable by group or others is warned about when it
    holds a secret."""
    global _loaded_config
    path = os.environ.get("BACKBONE_CONFIG", "").strip()
    if not path or path == _loaded_config:
        return
    try:
        raw = Path(path).read_bytes()
        data = tomllib.loads(raw.decode())
    except FileNotFoundError:
        raise SettingsError(f"BACKBONE_CONFIG names {path}, which does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"BACKBONE_CONFIG: cannot read {path}: {exc}") from None
    values = dict(_flatten(data, path))
    mode = stat.S_IMODE(Path(path).stat().st_mode)
    secrets = sorted(n for n in values if any(w in n for w in _SECRET_WORDS))
    if secrets and mode & 0o077:
        log.warning(
            "%s holds secrets (%s) but is readable by group or others (mode %s): chmod 600 it",
            path,
            ", ".join(secrets),
            oct(mode),
        )
    for name, value in values.items():
        os.environ.setdefault(name, value)
    _loaded_config = path


def _flatten(data: dict[str, object], path: str, prefix: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}{key}".upper().replace("-", "_").replace(".", "_")
        if isinstance(value, dict):
            out += _flatten(value, path, f"{name}_")
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list):
            text = ",".join(str(v) for v in value)
        elif isinstance(value, str | int | float):
            text = str(value)
        else:
            raise SettingsError(f"BACKBONE_CONFIG {path}: {key} has an unsupported value type")
        if not name.startswith("BACKBONE_"):
            name = f"BACKBONE_{name}"
        out.append((name, text))
    return out


def default_state_dir() -> Path:
    xdg = os.environ.get("XDG_STATE_HOME", "").strip()
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "backbone"


def default_cache_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "backbone"


@dataclass(frozen=True)
class InfraSettings:
    """Where Kafka and Cassandra run (local launcher) or are reached (existing cluster)."""

    state_dir: Path = field(default_factory=default_state_dir)
    cache_dir: Path = field(default_factory=default_cache_dir)
    kafka_version: str = "4.1.1"
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_heap: str = "1g"
    cassandra_version: str = "5.0.6"
    cassandra_port: int = 9042
    cassandra_storage_port: int = 7000
    cassandra_heap: str = "2g"
    # batch | group | periodic: when the local node acknowledges a write (deploy/conf).
    cassandra_commitlog_sync: str = "batch"
    # Kafka with a SASL_SSL listener and SCRAM users, Cassandra with passwords and TLS
    # (deploy/secure.py); clients then read `<state_dir>/secure/client.toml`.
    secure: bool = False

    @classmethod
    def from_env(cls) -> InfraSettings:
        return cls(
            state_dir=Path(_env("BACKBONE_STATE_DIR", str(default_state_dir()))),
            cache_dir=Path(_env("BACKBONE_CACHE_DIR", str(default_cache_dir()))),
            kafka_version=_env("BACKBONE_KAFKA_VERSION", cls.kafka_version),
            kafka_port=_env_int("BACKBONE_KAFKA_PORT", cls.kafka_port),
            kafka_controller_port=_env_int(
                "BACKBONE_KAFKA_CONTROLLER_PORT", cls.kafka_controller_port
            ),
            kafka_heap=_env("BACKBONE_KAFKA_HEAP", cls.kafka_heap),
            cassandra_version=_env("BACKBONE_CASSANDRA_VERSION", cls.cassandra_version),
            cassandra_port=_env_int("BACKBONE_CASSANDRA_PORT", cls.cassandra_port),
            cassandra_storage_port=_env_int(
                "BACKBONE_CASSANDRA_STORAGE_PORT", cls.cassandra_storage_port
            ),
            cassandra_heap=_env("BACKBONE_CASSANDRA_HEAP", cls.cassandra_heap),
            cassandra_commitlog_sync=_env(
                "BACKBONE_CASSANDRA_COMMITLOG_SYNC", cls.cassandra_commitlog_sync
            ),
            secure=_env_bool("BACKBONE_INFRA_SECURE", cls.secure),
        )

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"


CONSISTENCY_LEVELS = (
    "ONE",
    "TWO",
    "THREE",
    "QUORUM",
    "ALL",
    "LOCAL_QUORUM",
    "EACH_QUORUM",
    "LOCAL_ONE",
)
SERIAL_LEVELS = ("SERIAL", "LOCAL_SERIAL")


def cassandra_replication(spec: str) -> dict[str, int]:
    """`"3"` → {"": 3} (SimpleStrategy); `"dc1:3,dc2:2"` → per datacenter
    (NetworkTopologyStrategy). Raises ValueError, naming the setting, on anything else."""
    spec = spec.strip()
    try:
        if spec.isdigit():
            factors = {"": int(spec)}
        else:
            factors = {}
            for part in spec.split(","):
                dc, sep, count = part.strip().partition(":")
                if not sep or not dc.strip():
                    raise ValueError(part)
                factors[dc.strip()] = int(count)
    except ValueError:
        raise ValueError(
            "BACKBONE_CASSANDRA_REPLICATION must be a number of replicas (SimpleStrategy) or "
            f"datacenter:replicas pairs like dc1:3,dc2:3, got {spec!r}"
        ) from None
    if not factors or min(factors.values()) < 1:
        raise ValueError(f"BACKBONE_CASSANDRA_REPLICATION needs at least 1 replica, got {spec!r}")
    return factors


KAFKA_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN")


def _masked(secret: str) -> str:
    return "'***'" if secret else "''"


@dataclass(frozen=True)
class KafkaSecurity:
    """How the backbone's Kafka clients authenticate and encrypt (backbone/connections.py
    turns this into client arguments). The default is the local launcher's plaintext."""

    protocol: str = "PLAINTEXT"  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    sasl_mechanism: str = "SCRAM-SHA-512"  # SCRAM-SHA-256 | SCRAM-SHA-512 | PLAIN
    username: str = ""
    password: str = ""
    ca_file: str = ""  # PEM; empty: the system's trusted authorities
    cert_file: str = ""  # client certificate (PEM), for brokers that require one
    key_file: str = ""
    check_hostname: bool = True

    def __post_init__(self) -> None:
        if self.protocol not in KAFKA_PROTOCOLS:
            raise SettingsError(
                f"BACKBONE_KAFKA_SECURITY_PROTOCOL must be one of {', '.join(KAFKA_PROTOCOLS)}, "
                f"got {self.protocol!r}"
            )
        if self.sasl_mechanism not in SASL_MECHANISMS:
            raise SettingsError(
                f"BACKBONE_KAFKA_SASL_MECHANISM must be one of {', '.join(SASL_MECHANISMS)}, "
                f"got {self.sasl_mechanism!r}"
            )
        if self.sasl and not (self.username and self.password):
            raise SettingsError(
                f"BACKBONE_KAFKA_SECURITY_PROTOCOL is {self.protocol}: set BACKBONE_KAFKA_USERNAME "
                "and BACKBONE_KAFKA_PASSWORD"
            )

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol.endswith("SSL")

    def __repr__(self) -> str:
        return (
            f"KafkaSecurity(protocol={self.protocol!r}, sasl_mechanism={self.sasl_mechanism!r}, "
            f"username={self.username!r}, password={_masked(self.password)}, "
            f"ca_file={self.ca_file!r}, cert_file={self.cert_file!r}, key_file={self.key_file!r}, "
            f"check_hostname={self.check_hostname})"
        )

    @classmethod
    def from_env(cls) -> KafkaSecurity:
        return cls(
            protocol=_env("BACKBONE_KAFKA_SECURITY_PROTOCOL", cls.protocol).upper(),
            sasl_mechanism=_env("BACKBONE_KAFKA_SASL_MECHANISM", cls.sasl_mechanism).upper(),
            username=_env("BACKBONE_KAFKA_USERNAME", ""),
            password=_env("BACKBONE_KAFKA_PASSWORD", ""),
            ca_file=_env("BACKBONE_KAFKA_CA_FILE", ""),
            cert_file=_env("BACKBONE_KAFKA_CERT_FILE", ""),
            key_file=_env("BACKBONE_KAFKA_KEY_FILE", ""),
            check_hostname=_env_bool("BACKBONE_KAFKA_SSL_CHECK_HOSTNAME", cls.check_hostname),
        )


@dataclass(frozen=True)
class CassandraSecurity:
    """How the backbone's Cassandra sessions authenticate (PasswordAuthenticator) and
    encrypt (client_encryption_options). The default is the local launcher's open node."""

    username: str = ""
    password: str = ""
    tls: bool = False
    ca_file: str = ""  # PEM; empty: the system's trusted authorities
    cert_file: str = ""  # client certificate (PEM), for nodes that require one
    key_file: str = ""
    check_hostname: bool = True

    def __post_init__(self) -> None:
        if bool(self.username) != bool(self.password):
            raise SettingsError(
                "BACKBONE_CASSANDRA_USERNAME and BACKBONE_CASSANDRA_PASSWORD go together: "
                "set both or neither"
            )

    def __repr__(self) -> str:
        return (
            f"CassandraSecurity(username={self.username!r}, password={_masked(self.password)}, "
            f"tls={self.tls}, ca_file={self.ca_file!r}, cert_file={self.cert_file!r}, "
            f"key_file={self.key_file!r}, check_hostname={self.check_hostname})"
        )

    @classmethod
    def from_env(cls) -> CassandraSecurity:
        return cls(
            username=_env("BACKBONE_CASSANDRA_USERNAME", ""),
            password=_env("BACKBONE_CASSANDRA_PASSWORD", ""),
            tls=_env_bool("BACKBONE_CASSANDRA_TLS", cls.tls),
            ca_file=_env("BACKBONE_CASSANDRA_CA_FILE", ""),
            cert_file=_env("BACKBONE_CASSANDRA_CERT_FILE", ""),
            key_file=_env("BACKBONE_CASSANDRA_KEY_FILE", ""),
            check_hostname=_env_bool("BACKBONE_CASSANDRA_SSL_CHECK_HOSTNAME", cls.check_hostname),
        )


@dataclass(frozen=True)
class ClusterSettings:
    """How the backbone's processes reach Kafka and Cassandra."""

    kafka_bootstrap: str = "127.0.0.1:9092"
    cassandra_contact_points: tuple[str, ...] = ("127.0.0.1",)
    cassandra_port: int = 9042
    keyspace: str = "backbone"
    topic_prefix: str = "backbone."
    # How many copies the stores keep, and how many must answer. The defaults fit one local
    # node; a production cluster sets 3 / 2 / "dc1:3" (README: production settings).
    kafka_replication_factor: int = 1
    kafka_min_insync_replicas: int = 1
    # "<n>": SimpleStrategy with n replicas; "dc1:3,dc2:3": NetworkTopologyStrategy.
    cassandra_replication: str = "1"
    cassandra_consistency: str = "LOCAL_QUORUM"
    cassandra_serial_consistency: str = "LOCAL_SERIAL"
    # Credentials and TLS; their repr masks the passwords.
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)
    cassandra_security: CassandraSecurity = field(default_factory=CassandraSecurity)

    def __post_init__(self) -> None:
        if self.kafka_replication_factor < 1:
            raise ValueError("BACKBONE_KAFKA_REPLICATION_FACTOR must be at least 1")
        if not 1 <= self.kafka_min_insync_replicas <= self.kafka_replication_factor:
            raise ValueError(
                "BACKBONE_KAFKA_MIN_INSYNC_REPLICAS must be between 1 and the replication "
                f"factor ({self.kafka_replication_factor}), got {self.kafka_min_insync_replicas}"
            )
        cassandra_replication(self.cassandra_replication)  # raises on a bad value
        for name, level in (
            ("BACKBONE_CASSANDRA_CONSISTENCY", self.cassandra_consistency),
            ("BACKBONE_CASSANDRA_SERIAL_CONSISTENCY", self.cassandra_serial_consistency),
        ):
            allowed = SERIAL_LEVELS if "SERIAL" in name else CONSISTENCY_LEVELS
            if level not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {level!r}")

    @classmethod
    def from_env(cls) -> ClusterSettings:
        infra = InfraSettings.from_env()
        points = _env("BACKBONE_CASSANDRA_CONTACT_POINTS", "127.0.0.1")
        return cls(
            kafka_bootstrap=_env("BACKBONE_KAFKA_BOOTSTRAP", infra.kafka_bootstrap),
            cassandra_contact_points=tuple(p.strip() for p in points.split(",") if p.strip()),
            cassandra_port=_env_int("BACKBONE_CASSANDRA_PORT", infra.cassandra_port),
            keyspace=_env("BACKBONE_CASSANDRA_KEYSPACE", cls.keyspace),
            topic_prefix=_env("BACKBONE_TOPIC_PREFIX", cls.topic_prefix),
            kafka_replication_factor=_env_int(
                "BACKBONE_KAFKA_REPLICATION_FACTOR", cls.kafka_replication_factor
            ),
            kafka_min_insync_replicas=_env_int(
                "BACKBONE_KAFKA_MIN_INSYNC_REPLICAS", cls.kafka_min_insync_replicas
            ),
            cassandra_replication=_env("BACKBONE_CASSANDRA_REPLICATION", cls.cassandra_replication),
            cassandra_consistency=_env(
                "BACKBONE_CASSANDRA_CONSISTENCY", cls.cassandra_consistency
            ).upper(),
            cassandra_serial_consistency=_env(
                "BACKBONE_CASSANDRA_SERIAL_CONSISTENCY", cls.cassandra_serial_consistency
            ).upper(),
            kafka_security=KafkaSecurity.from_env(),
            cassandra_security=CassandraSecurity.from_env(),
        )

    @staticmethod
    def names_existing_cluster() -> bool:
        """True when the environment points at a cluster someone else runs."""
        load_config_file()
        return bool(os.environ.get("BACKBONE_KAFKA_BOOTSTRAP")) and bool(
            os.environ.get("BACKBONE_CASSANDRA_CONTACT_POINTS")
        )


@dataclass(frozen=True)
class BackboneSettings:
    """Settings of the API and the workers beyond where the cluster is."""

    cluster: ClusterSettings
    master_key_b64: str  # wraps the per-identity data keys; never logged
    signing_seed_b64: str  # the backbone's Ed25519 seed: signs challenges and bearer tokens
    address_domain: str = "localhost"
    partitions: int = 12
    command_timeout_s: float = 10.0
    challenge_ttl_s: int = 600
    token_ttl_s: int = 900
    app_id: str = "backbone"
    # OAuth clients allowed to create identities and log in: client id -> client secret.
    clients: dict[str, str] = field(default_factory=dict)
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    worker_metrics_port: int = 9102  # 0 turns the worker's Prometheus endpoint off
    # Loopback on a developer's machine; 0.0.0.0 in a container, where Prometheus scrapes
    # the pod's address.
    worker_metrics_host: str = "127.0.0.1"
    failed_logins_max: int = 5  # wrong passwords per username ...
    failed_logins_window_s: int = 300  # ... within this window lock the username for it
    retention_days: int = 365  # messages and mailbox entries leave the read models after this
    max_recipients: int = 50
    max_file_bytes: int = 10 * 1024 * 1024  # the ciphertext of one file
    messages_need_relationship: bool = True  # only to identities with an active relationship
    worker_session_timeout_s: float = 30.0  # a dead worker's partitions move after this

    @classmethod
    def from_env(cls, cluster: ClusterSettings | None = None) -> BackboneSettings:
        cluster = cluster or ClusterSettings.from_env()
        return cls(
            cluster=cluster,
            master_key_b64=_secret("BACKBONE_MASTER_KEY", "master.key"),
            signing_seed_b64=_secret("BACKBONE_SIGNING_SEED", "signing.seed"),
            address_domain=_env("BACKBONE_ADDRESS_DOMAIN", cls.address_domain),
            partitions=_env_int("BACKBONE_PARTITIONS", cls.partitions),
            command_timeout_s=float(_env("BACKBONE_COMMAND_TIMEOUT", str(cls.command_timeout_s))),
            challenge_ttl_s=_env_int("BACKBONE_CHALLENGE_TTL", cls.challenge_ttl_s),
            token_ttl_s=_env_int("BACKBONE_TOKEN_TTL", cls.token_ttl_s),
            app_id=_env("BACKBONE_APP_ID", f"{cluster.topic_prefix}workers"),
            clients=_clients(),
            api_host=_env("BACKBONE_API_HOST", cls.api_host),
            api_port=_env_int("BACKBONE_API_PORT", cls.api_port),
            worker_metrics_port=_env_int("BACKBONE_WORKER_METRICS_PORT", cls.worker_metrics_port),
            worker_metrics_host=_env("BACKBONE_WORKER_METRICS_HOST", cls.worker_metrics_host),
            failed_logins_max=_env_int("BACKBONE_FAILED_LOGINS_MAX", cls.failed_logins_max),
            failed_logins_window_s=_env_int(
                "BACKBONE_FAILED_LOGINS_WINDOW", cls.failed_logins_window_s
            ),
            retention_days=_env_int("BACKBONE_RETENTION_DAYS", cls.retention_days),
            max_recipients=_env_int("BACKBONE_MAX_RECIPIENTS", cls.max_recipients),
            max_file_bytes=_env_int("BACKBONE_MAX_FILE_BYTES", cls.max_file_bytes),
            messages_need_relationship=_env("BACKBONE_MESSAGES_NEED_RELATIONSHIP", "true").lower()
            not in ("0", "false", "no"),
            worker_session_timeout_s=float(
                _env("BACKBONE_WORKER_SESSION_TIMEOUT", str(cls.worker_session_timeout_s))
            ),
        )

    @property
    def retention_s(self) -> int:
        return self.retention_days * 24 * 3600

    def __repr__(self) -> str:
        # The dataclass repr would print the master key and the client secrets.
        return (
            f"BackboneSettings(cluster={self.cluster!r}, address_domain={self.address_domain!r}, "
            f"partitions={self.partitions}, app_id={self.app_id!r}, "
            f"clients={sorted(self.clients)}, secrets=<redacted>)"
        )


LOCAL_CLIENT_ID = "local"


def _clients() -> dict[str, str]:
    """`BACKBONE_CLIENTS="id1:secret1,id2:secret2"`; unset, one client `local` whose secret is
    made once in the state directory (`secrets/client.secret`)."""
    load_config_file()
    raw = os.environ.get("BACKBONE_CLIENTS", "").strip()
    if not raw:
        return {LOCAL_CLIENT_ID: _secret("BACKBONE_LOCAL_CLIENT_SECRET", "client.secret")}
    clients = {}
    for item in raw.split(","):
        client_id, sep, secret = item.strip().partition(":")
        if not sep or not client_id or len(secret) < 16:
            raise ValueError(
                "BACKBONE_CLIENTS must be id:secret pairs separated by commas, "
                "each secret at least 16 characters"
            )
        clients[client_id] = secret
    return clients


def _secret(name: str, filename: str) -> str:
    """A 32-byte secret from the environment, else from (or newly into) the state directory.

    Production sets the variable; a developer's machine gets a key made once and kept
    with mode 0600 beside the local Kafka data, so restarts can still read old events.
    """
    load_config_file()
    value = os.environ.get(name, "").strip()
    if value:
        return value
    import base64
    import secrets

    path = InfraSettings.from_env().state_dir / "secrets" / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass  # made before, perhaps a moment ago by the API or a worker started with us
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(base64.b64encode(secrets.token_bytes(32)).decode())
    return path.read_text().strip()
