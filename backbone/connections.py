"""The one place that turns the cluster settings into client arguments.

Every Kafka client (aiokafka producer, consumer, admin; the faust app) and every Cassandra
session of the backbone is built from these functions, so that credentials, TLS and the
list of bootstrap hosts and contact points are honoured everywhere alike
(tests/unit/test_connections_sites.py fails on a client built without them).

`check_access` is what `backbone provision`, `backbone worker` and `backbone api` run
before anything else: a wrong password or an untrusted certificate stops them at once with
a message naming the setting, instead of a worker retrying for ever or an API whose
start-up ends in a driver's traceback.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from pathlib import Path
from typing import Any

from backbone.settings import CassandraSecurity, ClusterSettings, KafkaSecurity, SettingsError


class ClusterAccessError(RuntimeError):
    """The cluster refused this process (credentials, TLS); the message says which setting
    to look at and never contains a password."""


def kafka_client_kwargs(target: str | ClusterSettings | None = None) -> dict[str, Any]:
    """`bootstrap_servers` and the security arguments of an aiokafka client.

    `target` is the cluster's settings, or only a bootstrap list (the security then comes
    from the environment, as everywhere else in the process); None: all from the
    environment. A bootstrap list is "host:port,host:port"."""
    if isinstance(target, ClusterSettings):
        bootstrap, security = target.kafka_bootstrap, target.kafka_security
    else:
        bootstrap = target or ClusterSettings.from_env().kafka_bootstrap
        security = KafkaSecurity.from_env()
    kwargs: dict[str, Any] = {"bootstrap_servers": bootstrap}
    kwargs.update(_kafka_security_kwargs(security))
    return kwargs


def _kafka_security_kwargs(security: KafkaSecurity) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"security_protocol": security.protocol}
    if security.sasl:
        kwargs.update(
            sasl_mechanism=security.sasl_mechanism,
            sasl_plain_username=security.username,
            sasl_plain_password=security.password,
        )
    if security.tls:
        kwargs["ssl_context"] = tls_context(
            "BACKBONE_KAFKA",
            security.ca_file,
            security.cert_file,
            security.key_file,
            security.check_hostname,
        )
    return kwargs


def faust_app_kwargs(cluster: ClusterSettings) -> dict[str, Any]:
    """`broker` and `broker_credentials` of faust.App: faust hands the credentials to every
    producer, consumer and admin client it makes."""
    import faust

    security = cluster.kafka_security
    credentials: Any = None
    context = (
        tls_context(
            "BACKBONE_KAFKA",
            security.ca_file,
            security.cert_file,
            security.key_file,
            security.check_hostname,
        )
        if security.tls
        else None
    )
    if security.sasl:
        # faust derives SASL_SSL from the presence of the context, SASL_PLAINTEXT otherwise.
        credentials = faust.SASLCredentials(
            username=security.username,
            password=security.password,
            mechanism=security.sasl_mechanism,
            ssl_context=context,
        )
    elif context is not None:
        credentials = faust.SSLCredentials(context)
    return {"broker": f"kafka://{cluster.kafka_bootstrap}", "broker_credentials": credentials}


def cassandra_cluster_kwargs(cluster: ClusterSettings) -> dict[str, Any]:
    """`contact_points`, `port`, `auth_provider` and `ssl_context` of cassandra.cluster.Cluster."""
    kwargs: dict[str, Any] = {
        "contact_points": list(cluster.cassandra_contact_points),
        "port": cluster.cassandra_port,
    }
    kwargs.update(_cassandra_security_kwargs(cluster.cassandra_security))
    return kwargs


def _cassandra_security_kwargs(security: CassandraSecurity) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if security.username:
        from cassandra.auth import PlainTextAuthProvider

        kwargs["auth_provider"] = PlainTextAuthProvider(security.username, security.password)
    if security.tls:
        kwargs["ssl_context"] = tls_context(
            "BACKBONE_CASSANDRA",
            security.ca_file,
            security.cert_file,
            security.key_file,
            security.check_hostname,
        )
    return kwargs


@functools.lru_cache(maxsize=8)
def tls_context(
    prefix: str, ca_file: str, cert_file: str, key_file: str, check_hostname: bool
) -> ssl.SSLContext:
    """A client TLS context trusting `ca_file` (else the system's authorities), with a client
    certificate when one is given. One per distinct setting: loading files once per client
    would reread them for every short-lived consumer. `prefix` names the settings in errors."""
    for name, path in (("CA_FILE", ca_file), ("CERT_FILE", cert_file), ("KEY_FILE", key_file)):
        if path and not Path(path).is_file():
            raise SettingsError(f"{prefix}_{name} names {path}, which is not a readable file")
    try:
        context = ssl.create_default_context(cafile=ca_file or None)
        if cert_file:
            context.load_cert_chain(cert_file, key_file or None)
    except (ssl.SSLError, OSError) as exc:
        raise SettingsError(f"{prefix}_CA_FILE / _CERT_FILE / _KEY_FILE: {exc}") from None
    context.check_hostname = check_hostname
    return context


# -- refusing to start on a cluster that refuses us -----------------------------------------


def check_access(cluster: ClusterSettings, timeout_s: float = 10.0) -> None:
    """Raise ClusterAccessError when Kafka or Cassandra refuses these settings' credentials
    or TLS. A cluster that does not answer at all is not an error here: the processes
    wait for it as before (a restart of the stores must not stop the workers)."""
    asyncio.run(_check_kafka(cluster, timeout_s))
    _check_cassandra(cluster, timeout_s)


def _kafka_who(security: KafkaSecurity) -> str:
    if security.sasl:
        return f"user {security.username!r} ({security.protocol}, {security.sasl_mechanism})"
    return security.protocol


async def _check_kafka(cluster: ClusterSettings, timeout_s: float) -> None:
    from aiokafka.conn import create_conn
    from aiokafka.errors import KafkaError

    security = cluster.kafka_security
    kwargs = _kafka_security_kwargs(security)
    addresses = [a.strip() for a in cluster.kafka_bootstrap.split(",") if a.strip()]
    closed = []  # took the connection, then closed it in the handshake
    for address in addresses:
        host, port = _host_port(address)
        try:
            conn = await asyncio.wait_for(
                create_conn(host, port, request_timeout_ms=int(timeout_s * 1000), **kwargs),
                timeout_s,
            )
        except ssl.SSLError as exc:
            raise ClusterAccessError(
                f"Kafka at {address}: TLS failed ({exc.reason or exc}); check "
                "BACKBONE_KAFKA_CA_FILE, BACKBONE_KAFKA_SSL_CHECK_HOSTNAME and "
                "BACKBONE_KAFKA_SECURITY_PROTOCOL"
            ) from None
        except KafkaError as exc:
            if _auth_error(exc):
                raise ClusterAccessError(
                    f"Kafka at {address} refused {_kafka_who(security)}: authentication "
                    "failed; check BACKBONE_KAFKA_USERNAME, BACKBONE_KAFKA_PASSWORD and "
                    "BACKBONE_KAFKA_SASL_MECHANISM"
                ) from None
            if "closed" in str(exc):
                closed.append(address)
            continue
        except (OSError, TimeoutError):
            continue  # not answering (yet): the clients wait for it
        conn.close()
        return
    if addresses and len(closed) == len(addresses):
        # What a SASL or TLS listener does with a client that speaks another protocol.
        raise ClusterAccessError(
            f"Kafka at {', '.join(closed)} closed the connection in the handshake: it expects "
            f"another security protocol than BACKBONE_KAFKA_SECURITY_PROTOCOL={security.protocol}"
        )


def _host_port(address: str) -> tuple[str, int]:
    """`host:port`, `host` (Kafka's 9092) or `[v6]:port`, as the Kafka clients read them."""
    host, sep, port = address.rpartition(":")
    if not sep or "]" in port or not port.isdigit():
        host, port = address, "9092"
    return host.strip("[]"), int(port)


def _auth_error(exc: BaseException) -> bool:
    from aiokafka.errors import (
        AuthenticationFailedError,
        AuthenticationMethodNotSupported,
        SaslAuthenticationFailed,
        UnsupportedSaslMechanismError,
    )

    return isinstance(
        exc,
        AuthenticationFailedError
        | AuthenticationMethodNotSupported
        | SaslAuthenticationFailed
        | UnsupportedSaslMechanismError,
    )


def _check_cassandra(cluster: ClusterSettings, timeout_s: float) -> None:
    from cassandra import AuthenticationFailed
    from cassandra.cluster import Cluster, NoHostAvailable

    security = cluster.cassandra_security
    where = f"Cassandra at {','.join(cluster.cassandra_contact_points)}:{cluster.cassandra_port}"
    session_cluster = Cluster(
        **cassandra_cluster_kwargs(cluster), connect_timeout=timeout_s, protocol_version=5
    )
    try:
        session_cluster.connect()
    except NoHostAvailable as exc:
        errors = list(exc.errors.values())
        if any(isinstance(e, AuthenticationFailed) for e in errors):
            if not security.username:
                raise ClusterAccessError(
                    f"{where} requires a password: set BACKBONE_CASSANDRA_USERNAME and "
                    "BACKBONE_CASSANDRA_PASSWORD"
                ) from None
            raise ClusterAccessError(
                f"{where} refused user {security.username!r}: authentication failed; check "
                "BACKBONE_CASSANDRA_USERNAME and BACKBONE_CASSANDRA_PASSWORD"
            ) from None
        if errors and not security.tls and all(isinstance(e, ConnectionResetError) for e in errors):
            # What a node that requires TLS does with a plaintext client's first request.
            raise ClusterAccessError(
                f"{where} reset the connection at the first request: it requires TLS, and "
                "BACKBONE_CASSANDRA_TLS is false"
            ) from None
        if any(isinstance(e, ssl.SSLError) for e in errors):
            raise ClusterAccessError(
                f"{where}: TLS failed ({errors[0]}); check BACKBONE_CASSANDRA_TLS, "
                "BACKBONE_CASSANDRA_CA_FILE and BACKBONE_CASSANDRA_SSL_CHECK_HOSTNAME"
            ) from None
    except Exception:  # noqa: S110 - unreachable now; the processes wait for it as before
        pass
    finally:
        session_cluster.shutdown()
