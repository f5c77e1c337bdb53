"""`connector listen`: a tiny webhook receiver for trying a Connector out.

It prints every event a Connector `POST`s to it (one JSON document per event, as it
arrives), checks `X-Connector-Signature` when given the target's secret, and answers 204
(401 to a bad signature, so the Connector retries and the mistake shows). `--count` and
`--timeout` make it exit on its own, so a script never waits for it without a bound.
A business system does the same with `connector.webhooks.verify_signature`.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from connector.webhooks import verify_signature


def listen(host: str, port: int, secret: str, count: int, timeout: float) -> int:
    received = 0
    done = threading.Event()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # "is it listening yet?" for scripts
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"listening\n")

        def do_POST(self) -> None:
            nonlocal received
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if secret and not verify_signature(
                secret.encode(),
                self.headers.get("X-Connector-Timestamp", ""),
                body,
                self.headers.get("X-Connector-Signature", ""),
                time.time(),
            ):
                print(
                    "refused an event with a wrong signature (is --secret the target's?)",
                    file=sys.stderr,
                    flush=True,
                )
                self.send_response(401)
                self.end_headers()
                return
            try:
                event = json.loads(body)
            except ValueError:
                self.send_response(400)
                self.end_headers()
                return
            self.send_response(204)
            self.end_headers()
            with lock:
                print(json.dumps(event, indent=2), flush=True)
                received += 1
                if count and received >= count:
                    done.set()

        def log_message(self, *args: Any) -> None:  # one line per request is noise here
            pass

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        print(f"error: cannot listen on {host}:{port} ({exc.strerror})", file=sys.stderr)
        return 2
    print(f"listening for webhooks on http://{host}:{port}/", file=sys.stderr, flush=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        finished = done.wait(timeout if timeout > 0 else None)
    except KeyboardInterrupt:
        finished = True
    finally:
        server.shutdown()
        server.server_close()
    if not finished and (count or not received):
        print(f"no{' further' if received else ''} event within {timeout:.0f}s", file=sys.stderr)
        return 1
    return 0
