"""The launcher's secure mode (`backbone infra up --secure`, BACKBONE_INFRA_SECURE=1): the
same Kafka and Cassandra from the same Maven artifacts, but as a production cluster would
meet the backbone.

- Kafka's client listener is SASL_SSL: TLS with this state directory's own CA
  (deploy/tls.py) and SCRAM-SHA-512/256 users made when the storage is formatted
  (`backbone` for the clients, `broker` for the broker's own inter-broker connection).
  The KRaft controller listener stays plaintext on loopback: only the node itself uses it.
- Cassandra has PasswordAuthenticator, CassandraAuthorizer and client encryption (TLS
  required). On first start the default `cassandra` superuser creates the role `backbone`
  and is then locked (a random password, no login).

The clients' settings (endpoints, usernames, passwords, CA file) are written to
`<state_dir>/secure/client.toml` (mode 0600): `BACKBONE_CONFIG=<that file>` points every
`backbone` command at the secure stores.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from backbone.connections import cassandra_cluster_kwargs
from backbone.settings import CassandraSecurity, ClusterSettings, InfraSettings, KafkaSecurity
from deploy.cassandra import Cassandra
from deploy.kafka import Kafka, _kafka_answers
from deploy.process import LaunchError
from deploy.service import Service
from deploy.tls import TlsFiles, _read_or_make, ensure_tls

log = logging.getLogger("backbone.deploy")

CLIENT_USER = "backbone"
BROKER_USER = "broker"
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")


def secure_dir(settings: InfraSettings) -> Path:
    path = settings.state_dir / "secure"
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)  # passwords and the CA's key
    return path


def _password(settings: InfraSettings, name: str) -> str:
    return _read_or_make(secure_dir(settings) / f"{name}.password")


def client_cluster(settings: InfraSettings) -> ClusterSettings:
    """What a client of the secure stores sets: the launcher's own checks use it too."""
    ca = str(secure_dir(settings) / "tls" / "ca.pem")
    return ClusterSettings(
        kafka_bootstrap=settings.kafka_bootstrap,
        cassandra_contact_points=("127.0.0.1",),
        cassandra_port=settings.cassandra_port,
        kafka_security=KafkaSecurity(
            protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            username=CLIENT_USER,
            password=_password(settings, "kafka"),
            ca_file=ca,
        ),
        cassandra_security=CassandraSecurity(
            username=CLIENT_USER, password=_password(settings, "cassandra"), tls=True, ca_file=ca
        ),
    )


def client_env(settings: InfraSettings) -> dict[str, str]:
    """The secure stores' client settings as environment variables."""
    cluster = client_cluster(settings)
    kafka, cassandra = cluster.kafka_security, cluster.cassandra_security
    return {
        "BACKBONE_KAFKA_BOOTSTRAP": cluster.kafka_bootstrap,
        "BACKBONE_KAFKA_SECURITY_PROTOCOL": kafka.protocol,
        "BACKBONE_KAFKA_SASL_MECHANISM": kafka.sasl_mechanism,
        "BACKBONE_KAFKA_USERNAME": kafka.username,
        "BACKBONE_KAFKA_PASSWORD": kafka.password,
        "BACKBONE_KAFKA_CA_FILE": kafka.ca_file,
        "BACKBONE_CASSANDRA_CONTACT_POINTS": ",".join(cluster.cassandra_contact_points),
        "BACKBONE_CASSANDRA_PORT": str(cluster.cassandra_port),
        "BACKBONE_CASSANDRA_USERNAME": cassandra.username,
        "BACKBONE_CASSANDRA_PASSWORD": cassandra.password,
        "BACKBONE_CASSANDRA_TLS": "true",
        "BACKBONE_CASSANDRA_CA_FILE": cassandra.ca_file,
    }


def write_client_config(settings: InfraSettings) -> Path:
    """`<state_dir>/secure/client.toml`, mode 0600: BACKBONE_CONFIG for the clients."""
    path = secure_dir(settings) / "client.toml"
    lines = [
        f'{name.removeprefix("BACKBONE_").lower()} = "{value}"'
        for name, value in client_env(settings).items()
    ]
    path.touch(mode=0o600)
    path.write_text("# Written by `backbone infra up --secure`.\n" + "\n".join(lines) + "\n")
    return path


def tls_files(settings: InfraSettings) -> TlsFiles:
    return ensure_tls(secure_dir(settings) / "tls")


def wanted(settings: InfraSettings) -> bool:
    """Asked for, or the state directory was made secure before: `infra status`, `down` and
    `up` again then need no BACKBONE_INFRA_SECURE to treat its stores as what they are."""
    return settings.secure or (settings.state_dir / "secure" / "client.toml").exists()


def services(settings: InfraSettings) -> list[Service]:
    return [SecureKafka(settings), SecureCassandra(settings)]


# -- Kafka ------------------------------------------------------------------------------------


def _jaas(user: str, password: str) -> str:
    return (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{user}" password="{password}";'
    )


def secure_properties(text: str, tls: TlsFiles, broker_password: str, client_password: str) -> str:
    """server.properties with its PLAINTEXT client listener turned into SASL_SSL.

    Works on whatever the template rendered (one node or a node of the local cluster): the
    listener lines are rewritten, the security settings appended."""
    out = []
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip()
        if key in ("listeners", "advertised.listeners"):
            line = line.replace("PLAINTEXT://", "SASL_SSL://")
        elif key == "listener.security.protocol.map":
            line = "listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL"
        elif key == "inter.broker.listener.name":
            line = "inter.broker.listener.name=SASL_SSL"
        out.append(line)
    out += [
        "# Secure mode (deploy/secure.py): SCRAM over TLS for clients and brokers.",
        f"sasl.enabled.mechanisms={','.join(MECHANISMS)},PLAIN",
        "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
        *(
            f"listener.name.sasl_ssl.{m.lower()}.sasl.jaas.config="
            f"{_jaas(BROKER_USER, broker_password)}"
            for m in MECHANISMS
        ),
        # PLAIN keeps its users in the broker's own configuration (this file is 0600).
        "listener.name.sasl_ssl.plain.sasl.jaas.config="
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="{BROKER_USER}" password="{broker_password}" '
        f'user_{BROKER_USER}="{broker_password}" user_{CLIENT_USER}="{client_password}";',
        "ssl.keystore.type=PKCS12",
        f"ssl.keystore.location={tls.keystore}",
        f"ssl.keystore.password={tls.keystore_password}",
        f"ssl.key.password={tls.keystore_password}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={tls.ca_file}",
        "ssl.client.auth=none",
    ]
    return "\n".join(out) + "\n"


class SecureKafka(Kafka):
    # TLS and SASL set-up add to the start; a loaded 2-core machine took more than 90 s.
    start_timeout = 180.0

    def _marker(self) -> Path:
        return self.home / "data" / "secure-mode"

    def prepare(self) -> list[str]:
        data = self.home / "data"
        if (data / "meta.properties").exists() and not self._marker().exists():
            raise LaunchError(
                f"the Kafka data in {data} was made without secure mode, so it has no SCRAM "
                "users: choose another BACKBONE_STATE_DIR for secure mode"
            )
        tls = tls_files(self.settings)
        argv = super().prepare()
        props = self.home / "server.properties"
        broker = _password(self.settings, "kafka-broker")
        client = _password(self.settings, "kafka")
        props.write_text(secure_properties(props.read_text(), tls, broker, client))
        props.chmod(0o600)
        self._marker().touch()
        write_client_config(self.settings)
        return argv

    def format_args(self) -> list[str]:
        # SCRAM credentials live in the cluster's metadata; formatting puts them in its
        # first records, so the broker can authenticate to itself on its first start.
        users = {
            BROKER_USER: _password(self.settings, "kafka-broker"),
            CLIENT_USER: _password(self.settings, "kafka"),
        }
        return [
            arg
            for mechanism in MECHANISMS
            for user, password in users.items()
            for arg in ("--add-scram", f"{mechanism}=[name={user},password={password}]")
        ]

    def ready(self) -> bool:
        return asyncio.run(_kafka_answers(client_cluster(self.settings)))


# -- Cassandra --------------------------------------------------------------------------------


def secure_yaml(text: str, tls: TlsFiles) -> str:
    text = text.replace(
        "authenticator: AllowAllAuthenticator", "authenticator: PasswordAuthenticator"
    )
    text = text.replace("authorizer: AllowAllAuthorizer", "authorizer: CassandraAuthorizer")
    return text + (
        "\n# Secure mode (deploy/secure.py): passwords, and TLS required of every client.\n"
        "role_manager: CassandraRoleManager\n"
        "client_encryption_options:\n"
        "  enabled: true\n"
        "  optional: false\n"
        f"  keystore: {tls.keystore}\n"
        f"  keystore_password: {tls.keystore_password}\n"
        "  store_type: PKCS12\n"
        "  require_client_auth: false\n"
    )


class SecureCassandra(Cassandra):
    def prepare(self) -> list[str]:
        tls = tls_files(self.settings)
        argv = super().prepare()
        conf = self.home / "conf" / "cassandra.yaml"
        conf.write_text(secure_yaml(conf.read_text(), tls))
        conf.chmod(0o600)
        # The default superuser is made 10 s after start by default; the launcher needs it
        # at once to create the backbone's role.
        return [argv[0], "-Dcassandra.superuser_setup_delay_ms=0", *argv[1:]]

    def ready(self) -> bool:
        from cassandra import AuthenticationFailed
        from cassandra.cluster import NoHostAvailable

        cluster = client_cluster(self.settings)
        try:
            _session_answers(cluster)
            return True
        except NoHostAvailable as exc:
            if not any(isinstance(e, AuthenticationFailed) for e in exc.errors.values()):
                return False
        except Exception:
            return False
        # Answers, but not to the backbone's role: the first start, before the role exists.
        try:
            _create_role(cluster)
        except Exception as exc:  # the default superuser is not there yet: try again
            log.debug("creating the backbone role: %s", type(exc).__name__)
        return False


def _session_answers(cluster: ClusterSettings) -> None:
    from cassandra.cluster import Cluster

    session_cluster = Cluster(
        **cassandra_cluster_kwargs(cluster), connect_timeout=3, protocol_version=5
    )
    try:
        session_cluster.connect().execute("SELECT release_version FROM system.local").one()
    finally:
        session_cluster.shutdown()


def _create_role(cluster: ClusterSettings) -> None:
    """As the default superuser: the backbone's role (a superuser: it creates keyspaces),
    then the default superuser locked."""
    import secrets

    from cassandra.cluster import Cluster

    security = cluster.cassandra_security
    default = ClusterSettings(
        cassandra_contact_points=cluster.cassandra_contact_points,
        cassandra_port=cluster.cassandra_port,
        cassandra_security=CassandraSecurity(
            # Cassandra's well-known default superuser, locked right after this.
            username="cassandra",
            password="cassandra",  # noqa: S106
            tls=True,
            ca_file=security.ca_file,
        ),
    )
    session_cluster = Cluster(
        **cassandra_cluster_kwargs(default), connect_timeout=3, protocol_version=5
    )
    try:
        session = session_cluster.connect()
        session.execute(
            f"CREATE ROLE IF NOT EXISTS {security.username} "
            "WITH PASSWORD = %s AND LOGIN = true AND SUPERUSER = true",
            (security.password,),
        )
    finally:
        session_cluster.shutdown()
    # As the new role: nobody logs in with the well-known default any more.
    session_cluster = Cluster(
        **cassandra_cluster_kwargs(cluster), connect_timeout=3, protocol_version=5
    )
    try:
        session_cluster.connect().execute(
            "ALTER ROLE cassandra WITH PASSWORD = %s AND LOGIN = false",
            (secrets.token_urlsafe(24),),
        )
    finally:
        session_cluster.shutdown()
