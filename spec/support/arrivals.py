#!/usr/bin/env python3
"""A loopback HTTP server that notes when each request arrives, for measuring a client's rate.

It answers every request at once with the same small JSON body (keep-alive, HTTP/1.1), from one
thread and a selector, so that it keeps up with thousands of requests a second where the emulator
(spec/support/emulator.py) would fall behind. GET /__arrivals answers
{"count": N, "first": t0, "last": t1} (monotonic seconds of the first and last request since the
last GET /__arrivals/reset) and is not counted itself.

    python3 spec/support/arrivals.py --port-file FILE [--parent-pid PID]

Prints nothing; writes its port to FILE once it listens. Goes away when process PID does.
"""
import argparse
import json
import os
import selectors
import socket
import time

BODY = b'{"status":"success","result":{"ok":true}}'


def response(body, status="200 OK"):
    return (b"HTTP/1.1 " + status.encode() + b"\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


OK = response(BODY)


class Arrivals:
    def __init__(self):
        self.reset()

    def reset(self):
        self.count, self.first, self.last = 0, None, None

    def note(self):
        now = time.monotonic()
        self.count += 1
        self.first = now if self.first is None else self.first
        self.last = now

    def report(self):
        return json.dumps({"count": self.count, "first": self.first, "last": self.last}).encode()


def answer(head, arrivals):
    """The response to one request whose head (request line and headers) is `head`."""
    target = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b""
    if target == b"/__arrivals":
        return response(arrivals.report())
    if target == b"/__arrivals/reset":
        arrivals.reset()
        return response(b"{}")
    arrivals.note()
    return OK


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def serve(listener, parent_pid):
    selector, arrivals, buffers = selectors.DefaultSelector(), Arrivals(), {}
    selector.register(listener, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select(timeout=1.0):
            if key.fileobj is listener:
                conn, _ = listener.accept()
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                buffers[conn] = b""
                selector.register(conn, selectors.EVENT_READ)
                continue
            conn = key.fileobj
            try:
                data = conn.recv(65536)
            except OSError:
                data = b""
            if not data:
                selector.unregister(conn)
                buffers.pop(conn, None)
                conn.close()
                continue
            buffers[conn] += data
            out = []
            while b"\r\n\r\n" in buffers[conn]:  # GETs only: no bodies to read
                head, buffers[conn] = buffers[conn].split(b"\r\n\r\n", 1)
                out.append(answer(head, arrivals))
            if out:
                conn.setblocking(True)
                conn.sendall(b"".join(out))
                conn.setblocking(False)
        if parent_pid and not alive(parent_pid):
            return


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--parent-pid", type=int, default=0)
    args = parser.parse_args()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(listener.getsockname()[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    serve(listener, args.parent_pid)


if __name__ == "__main__":
    main()
