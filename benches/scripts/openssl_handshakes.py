"""Handshakes from Python's ssl (OpenSSL's default suite order) at a fixed rate, each followed by
`R 128` to the harness backend and the response read to its end.

usage: openssl_handshakes.py HOST PORT full|resumed COUNT RATE
  full:    a fresh session every connection;
  resumed: each connection offers the newest session (ticket) the previous one received.
Prints the connections made and how many resumed; read the proxy's CPU time around it
(/proc/PID/task/*/schedstat) for CPU per connection. See docs/PERFORMANCE.md,
"Handshake, resumption and bulk costs"."""
import socket, ssl, sys, time
host, port, mode, count, rate = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
session = None
resumed = 0
start = time.monotonic()
for i in range(count):
    due = start + i / rate
    d = due - time.monotonic()
    if d > 0:
        time.sleep(d)
    s = socket.create_connection((host, port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t = ctx.wrap_socket(s, server_hostname="localhost", session=session if mode == "resumed" else None)
    t.sendall(b"R 128\n")
    got = 0
    while True:
        b = t.recv(4096)
        if not b:
            break
        got += len(b)
    assert got == 128, got
    if t.session_reused:
        resumed += 1
    if mode == "resumed":
        session = t.session  # the newest ticket, as a client keeping one session does
    t.close()
print(f"done {count} resumed {resumed} in {time.monotonic()-start:.2f}s")
