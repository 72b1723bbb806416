"""The peer with its connections spread evenly: N single-process uvicorn servers, each
with its own listening socket on the same port (SO_REUSEPORT), so that the kernel deals
new connections out among them. `uvicorn --workers N` instead shares one accepting
socket: the worker that wakes first may take most of a client's keep-alive connections
and leave the other cores idle (seen here with 8 connections: one worker at 94 % CPU, the
other idle). This is the peer's best case under a few long-lived connections.

    PEER_MODEL=model.json python serve_reuseport.py --host 127.0.0.1 --port 8092 --workers 2

Same settings as tacit_peer.py (PEER_MODEL, PEER_TORCH_THREADS); SIGTERM/SIGINT stop all.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys


def worker(host: str, port: int) -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    config = uvicorn.Config(
        "tacit_peer:app_from_env", factory=True, loop="uvloop", http="httptools",
        log_level="warning",
    )
    uvicorn.Server(config).run(sockets=[sock])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()
    if not 1 <= a.workers <= 256:
        ap.error("--workers must be 1..256")
    children = []
    for _ in range(a.workers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                worker(a.host, a.port)
            except BaseException as e:  # noqa: BLE001 - reported, then the exit status
                print(f"serve_reuseport: worker failed: {e!r}", file=sys.stderr)
                code = 1
            os._exit(code)
        children.append(pid)
    alive = set(children)

    def stop(*_):
        for pid in alive:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 0
    while alive:
        pid, st = os.wait()
        alive.discard(pid)
        if os.waitstatus_to_exitcode(st) != 0:
            status = 1
        stop()  # one worker gone (e.g. the model failed to load): stop the others
    return status


if __name__ == "__main__":
    sys.exit(main())
