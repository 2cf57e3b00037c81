"""A real OpenSSL client for stud's harness: Python's ssl module (OpenSSL 3), default settings.

It offers what OpenSSL offers by default (TLS 1.3 suites AES-256-GCM, ChaCha20-Poly1305,
AES-128-GCM in that order; X25519 key share) and resumes the way an OpenSSL client does: the
session of a thread's last connection, from the TLS 1.3 ticket that arrived with its response,
is offered on the thread's next connection.

    python3 openssl_client.py HOST PORT RESUME THREADS RATE SIZE

RESUME is 0 or 1; RATE is connections per second across all threads (0: each thread connects
again as soon as its last connection closed); SIZE is the response each connection asks for
(`R SIZE`) and reads to its end. Every connection: connect, handshake, request, read the whole
response, close.

Lines on stdin: `mark` prints `COUNT <done> <resumed> <errors>`; `stop` (or end of file)
stops the threads and prints `END <done> <resumed> <errors> <first error>`. The first
successful connection prints `INFO <version> <suite>`. Every socket operation times out after
20 s, so stopping is bounded.
"""

import socket
import ssl
import sys
import threading
import time

TIMEOUT = 20.0


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    resume = sys.argv[3] == "1"
    threads, rate, size = int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # The load generator skips verifying the chain (the server still signs every handshake).
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    request = ("R %d\n" % size).encode()
    lock = threading.Lock()
    state = {"done": 0, "resumed": 0, "errors": 0, "first": "", "slot": 0, "info": False}
    stop = threading.Event()
    start = time.monotonic() + 0.05

    def say(line):
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def next_due():
        # Open loop: slot i is due at start + i / rate, whoever takes it.
        with lock:
            i = state["slot"]
            state["slot"] += 1
        return start + i / rate

    def one(session):
        raw = socket.create_connection((host, port), timeout=TIMEOUT)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
        try:
            s.sendall(request)
            got = 0
            while True:
                try:
                    chunk = s.recv(65536)
                except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
                    break
                if not chunk:
                    break
                got += len(chunk)
            if got != size:
                raise OSError("response of %d bytes, expected %d" % (got, size))
            return s.session_reused, s.session, "%s %s" % (s.version(), s.cipher()[0])
        finally:
            s.close()

    def worker():
        session = None
        while not stop.is_set():
            if rate > 0:
                delay = next_due() - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    break
            try:
                reused, new_session, info = one(session if resume else None)
                if resume:
                    session = new_session
                with lock:
                    state["done"] += 1
                    if reused:
                        state["resumed"] += 1
                    if not state["info"]:
                        state["info"] = True
                        say("INFO " + info)
            except Exception as e:  # noqa: BLE001 - every failure is counted, none stops the run
                with lock:
                    state["errors"] += 1
                    if not state["first"]:
                        state["first"] = ("%s: %s" % (type(e).__name__, e)).replace("\n", " ")
                stop.wait(0.01)

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    for line in sys.stdin:
        if line.strip() == "mark":
            with lock:
                say("COUNT %d %d %d" % (state["done"], state["resumed"], state["errors"]))
        elif line.strip() == "stop":
            break
    stop.set()
    deadline = time.monotonic() + TIMEOUT + 5
    for t in pool:
        t.join(max(0.0, deadline - time.monotonic()))
    with lock:
        say("END %d %d %d %s" % (state["done"], state["resumed"], state["errors"], state["first"]))


if __name__ == "__main__":
    main()
