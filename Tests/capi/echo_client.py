#!/usr/bin/env python3
"""Linux's own TCP as an echo client (Tests/capi/stack-tap).

echo_client.py HOST PORT FILE OUT      sends FILE, writes what comes back to OUT
echo_client.py --concurrent N HOST PORT  N connections at once, each a different payload
"""
import os, socket, sys, threading

def echo(host, port, payload, timeout=60):
    s = socket.create_connection((host, port), timeout=timeout)
    got = bytearray()
    def reader():
        while True:
            b = s.recv(65536)
            if not b:
                break
            got.extend(b)
    t = threading.Thread(target=reader)
    t.start()
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    t.join()
    s.close()
    return bytes(got)

if sys.argv[1] == "--concurrent":
    n, host, port = int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    ok = [False] * n
    def one(i):
        try:
            payload = os.urandom(1000 + i * 997)
            ok[i] = echo(host, port, payload, timeout=30) == payload
        except OSError as e:
            print(f"connection {i}: {e}")
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"{sum(ok)} of {n} echo connections complete")
    sys.exit(0 if all(ok) else 1)
host, port, path, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
data = open(path, "rb").read()
back = echo(host, port, data)
open(out, "wb").write(back)
print(f"sent {len(data)} bytes, got {len(back)} back")
