"""One bulk transfer through a TLS proxy from Python's ssl, against the harness backend.

usage: openssl_bulk.py HOST PORT BYTES down|up
  down: `R BYTES`, read to the end; up: `S BYTES`, send them, read the acknowledgement.
Read the proxy's CPU time around it for CPU per MiB (docs/PERFORMANCE.md, "Handshake,
resumption and bulk costs")."""
import socket, ssl, sys, time
host, port, size, direction = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); ctx.check_hostname=False; ctx.verify_mode=ssl.CERT_NONE
s = socket.create_connection((host, port)); t = ctx.wrap_socket(s, server_hostname="localhost")
t0=time.monotonic()
if direction == "down":
    t.sendall(f"R {size}\n".encode()); got=0
    while True:
        b=t.recv(1<<20)
        if not b: break
        got+=len(b)
else:
    t.sendall(f"S {size}\n".encode()); chunk=b"u"*(1<<16); left=size
    while left>0:
        n=min(left,len(chunk)); t.sendall(chunk[:n]); left-=n
    got=len(t.recv(100))
print(f"{direction} {got} in {time.monotonic()-t0:.2f}s")
