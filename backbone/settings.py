"""Configuration shared by every part, read from environment variables.

Every variable has a default that works for the local launcher in `deploy/`, so a
newcomer sets nothing. The table in README.md lists them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


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
        )

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"


CONSISTENCY_LEVELS = ("ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "EACH_QUORUM",
                      "LOCAL_ONE")  # fmt: skip
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
        )

    @staticmethod
    def names_existing_cluster() -> bool:
        """True when the environment points at a cluster someone else runs."""
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
