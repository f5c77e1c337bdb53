"""The `backbone` command: local infrastructure, provisioning, the workers and the API."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from backbone import logs
from backbone.connections import ClusterAccessError
from backbone.settings import LOCAL_CLIENT_ID, BackboneSettings, InfraSettings, SettingsError
from deploy import backbone as processes
from deploy import cluster, infra
from deploy.process import LaunchError


def _print_status() -> bool:
    rows = infra.status()
    for row in rows:
        print(row.line())
    return all(row.healthy for row in rows)


def cmd_infra(args: argparse.Namespace) -> int:
    if args.nodes is not None and args.nodes > 1:
        return _cluster_infra(args, cluster.Layout.from_env(args.nodes))
    if args.action == "up":
        if args.secure:
            os.environ["BACKBONE_INFRA_SECURE"] = "1"
        infra.up()
        ok = _print_status()
        if InfraSettings.from_env().secure:
            from deploy.secure import secure_dir

            config = secure_dir(InfraSettings.from_env()) / "client.toml"
            print(f"\nclients of these stores (provision, worker, api) take, from {config}:")
            print(f"export BACKBONE_CONFIG={config}")
        return 0 if ok else 1
    if args.action == "down":
        infra.down()
        if (nodes := cluster.started_nodes()) and any(cluster.Layout.from_env(nodes).pids()):
            print(f"the local cluster still runs: `backbone infra down --nodes {nodes}` stops it")
        return 0
    if args.action == "status":
        healthy = _print_status()
        if (nodes := cluster.started_nodes()) and any(cluster.Layout.from_env(nodes).pids()):
            print(f"\nlocal cluster of {nodes} nodes (`backbone infra status --nodes {nodes}`):")
            for row in cluster.status(cluster.Layout.from_env(nodes)):
                print(row.line())
        return 0 if healthy else 3
    if args.action == "logs":
        print(infra.logs(args.service, args.lines))
        return 0
    raise AssertionError(args.action)


def _cluster_infra(args: argparse.Namespace, layout: cluster.Layout) -> int:
    """`infra up|down|status|logs --nodes N`: the local cluster beside the one-node infra."""
    if args.action == "up":
        rows = cluster.up(layout)
        for row in rows:
            print(row.line())
        print("\nthe backbone on this cluster (provision, worker, api) takes:")
        for name, value in layout.backbone_env().items():
            print(f"export {name}={value}")
        return 0 if all(row.healthy for row in rows) else 1
    if args.action == "down":
        cluster.down(layout)
        return 0
    if args.action == "status":
        rows = cluster.status(layout)
        for row in rows:
            print(row.line())
        return 0 if all(row.healthy for row in rows) else 3
    if args.action == "logs":
        node = args.node or 1
        svc = {s.name: s for s in layout.services()}.get(f"{args.service}-{node}")
        if svc is None:
            raise LaunchError(f"no node {node}: the cluster has {layout.nodes}")
        print(svc.process.log_tail(args.lines))
        return 0
    raise AssertionError(args.action)


def _print_stack_status() -> bool:
    """Every part of the local stack, one line each: Kafka, Cassandra, the worker, the API."""
    from backbone.settings import ClusterSettings

    infra_settings = InfraSettings.from_env()
    rows = processes.health(infra_settings)
    if ClusterSettings.names_existing_cluster():
        cluster = ClusterSettings.from_env()
        hosts = ",".join(cluster.cassandra_contact_points)
        print(f"kafka      external {cluster.kafka_bootstrap}  (not managed here)")
        print(f"cassandra  external {hosts}:{cluster.cassandra_port}  (not managed here)")
    else:
        rows = infra.status(infra_settings) + rows
    for row in rows:
        print(row.line())
    return all(row.healthy for row in rows)


def cmd_status(args: argparse.Namespace) -> int:
    if _print_stack_status():
        return 0
    state = InfraSettings.from_env().state_dir
    print(f"\nlogs: `backbone logs NAME` (the files are {state}/NAME/NAME.log)")
    return 3


def cmd_logs(args: argparse.Namespace) -> int:
    settings = InfraSettings.from_env()
    if args.service in ("kafka", "cassandra"):
        path, tail = infra.log_file_and_tail(args.service, args.lines, settings)
    else:
        path, tail = processes.log_tail(settings, args.service, args.lines)
    if args.follow:
        os.execvp("tail", ["tail", "-n", str(args.lines), "-F", str(path)])  # noqa: S606
    print(f"==> {path} <==", file=sys.stderr)
    print(tail)
    return 0


def _point_at_secure_stores() -> bool:
    """`backbone up` on the launcher's secure stores: the backbone's processes take the client
    settings the launcher wrote, unless BACKBONE_CONFIG names others."""
    from deploy import secure

    infra_settings = InfraSettings.from_env()
    if not secure.wanted(infra_settings) or os.environ.get("BACKBONE_CONFIG", "").strip():
        return False
    os.environ["BACKBONE_CONFIG"] = str(secure.secure_dir(infra_settings) / "client.toml")
    return True


def cmd_up(args: argparse.Namespace) -> int:
    settings = BackboneSettings.from_env()
    local = not settings.cluster.names_existing_cluster()
    if local:
        infra.up()
        if _point_at_secure_stores():
            settings = BackboneSettings.from_env()
    cmd_provision(args)
    processes.up(InfraSettings.from_env(), settings)
    print()
    ok = _print_stack_status()
    print(f"\nAPI:     {processes.api_url(settings)}  (OpenAPI docs at /docs)")
    if LOCAL_CLIENT_ID in settings.clients:
        secret = InfraSettings.from_env().state_dir / "secrets" / "client.secret"
        print(f"client:  id '{LOCAL_CLIENT_ID}', secret in {secret}")
    print("status:  backbone status    logs: backbone logs api|worker|auditor|kafka|cassandra")
    print("stop:    make down (or backbone down): stops what `up` started, nothing else")
    return 0 if ok else 1


def cmd_down(args: argparse.Namespace) -> int:
    processes.down(InfraSettings.from_env(), BackboneSettings.from_env())
    infra.down()
    return 0


def _check_cluster_access() -> None:
    """Credentials or TLS the cluster refuses stop the command here, with a message naming
    the setting (backbone/connections.py), instead of a worker retrying for ever."""
    from backbone.connections import check_access
    from backbone.settings import ClusterSettings

    check_access(ClusterSettings.from_env())


def cmd_provision(args: argparse.Namespace) -> int:
    from streams.provision import provision

    _check_cluster_access()
    asyncio.run(provision(BackboneSettings.from_env()))
    print("provisioned topics and tables")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Run one faust worker in this process (it replaces the CLI)."""
    _check_cluster_access()
    # --quiet drops the start-up banner on stdout; logs still go to stderr as JSON.
    argv = [sys.executable, "-m", "faust", "-A", "streams.app", "-l", args.log_level, "--quiet"]
    if args.data_dir:
        argv += ["--datadir", args.data_dir]
    argv += ["worker", "--without-web"]
    os.execv(sys.executable, argv)  # noqa: S606 (argv is ours, not user input)
    return 0  # not reached


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from api.server import uvicorn_options

    settings = BackboneSettings.from_env()
    _check_cluster_access()
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        log_config=logs.config(),
        proxy_headers=False,
        # Keep-alive, a header deadline and a connection cap (the reasons: api/server.py).
        **uvicorn_options(),
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="backbone", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p_infra = sub.add_parser("infra", help="local Kafka (KRaft) and Cassandra")
    p_infra.add_argument("action", choices=["up", "down", "status", "logs"])
    p_infra.add_argument("service", nargs="?", default="kafka", choices=["kafka", "cassandra"])
    p_infra.add_argument("-n", "--lines", type=int, default=60, help="log lines to show")
    p_infra.add_argument(
        "--secure",
        action="store_true",
        help="up: Kafka with SASL_SSL/SCRAM, Cassandra with passwords and TLS "
        "(as BACKBONE_INFRA_SECURE=1)",
    )
    p_infra.add_argument(
        "--nodes",
        type=int,
        help="a local cluster of N nodes on 127.0.0.1..N, beside the one-node infra",
    )
    p_infra.add_argument("--node", type=int, help="logs: which node of the cluster (default 1)")
    p_infra.set_defaults(func=cmd_infra)

    p_status = sub.add_parser("status", help="kafka, cassandra, worker and api: pid and health")
    p_status.set_defaults(func=cmd_status)
    p_logs = sub.add_parser("logs", help="the tail of one process's log")
    p_logs.add_argument("service", choices=["api", "worker", "auditor", "kafka", "cassandra"])
    p_logs.add_argument("-n", "--lines", type=int, default=60, help="log lines to show")
    p_logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p_logs.set_defaults(func=cmd_logs)

    p_up = sub.add_parser("up", help="start the whole backbone on this machine")
    p_up.set_defaults(func=cmd_up)
    p_down = sub.add_parser("down", help="stop everything `up` started")
    p_down.set_defaults(func=cmd_down)

    p_prov = sub.add_parser("provision", help="create the Kafka topics and Cassandra tables")
    p_prov.set_defaults(func=cmd_provision)

    p_worker = sub.add_parser("worker", help="run a faust worker (deciders and projections)")
    p_worker.add_argument("--data-dir", help="faust's local data directory")
    p_worker.add_argument("-l", "--log-level", default="info", choices=["debug", "info", "warn"])
    p_worker.set_defaults(func=cmd_worker)

    p_api = sub.add_parser("api", help="run the REST API (uvicorn)")
    p_api.add_argument("--host", help="default: BACKBONE_API_HOST or 127.0.0.1")
    p_api.add_argument("--port", type=int, help="default: BACKBONE_API_PORT or 8080")
    p_api.add_argument("--run-dir", help="marks the process as started by `backbone up`")
    p_api.set_defaults(func=cmd_api)

    from backbone.audit.cli import add_parsers as add_audit_parsers

    add_audit_parsers(sub)  # `backbone auditor`, `backbone audit ...`
    from backbone.events import add_parser as add_events_parser

    add_events_parser(sub)  # `backbone events`
    from backbone.replay.cli import add_parser as add_replay_parser

    add_replay_parser(sub)  # `backbone replay [verify|retention]`
    from backbone.deletions import add_parser as add_deleted_parser

    add_deleted_parser(sub)  # `backbone deleted --address|--username` (issue 22)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except (LaunchError, SettingsError, ClusterAccessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
