#!/usr/bin/env python3
"""Test-bed self-test, guest side: proves frames flow both ways between the host and a guest NIC
with a driver known to work (the kernel's), and that miniport-bind --unbind / bind round-trips.

    kernel-echo.py --device 0000:02:00.0 --out DIR

Gives the NIC back to its kernel driver (miniport-bind --unbind), brings the interface up, writes
DIR/ready, and echoes every frame of the test ethertype (0x88b5) back to its sender until the host
writes DIR/host-done. Then binds the NIC to vfio-pci again. Writes guest-received.pcap and
guest-sent.pcap. Exit 0 when at least one frame was echoed and the NIC is back on vfio-pci.
"""

import argparse
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import traffic  # noqa: E402


def sh(*cmd, check=True):
    r = subprocess.run(cmd, capture_output=True, text=True)
    print(f"$ {' '.join(cmd)} -> {r.returncode} {r.stdout.strip()} {r.stderr.strip()}", flush=True)
    if check and r.returncode != 0:
        raise SystemExit(f"kernel-echo: '{' '.join(cmd)}' failed")
    return r


def driver(dev):
    p = f"/sys/bus/pci/devices/{dev}/driver"
    return os.path.basename(os.readlink(p)) if os.path.islink(p) else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, default=30, help="give up waiting for host-done after this")
    a = ap.parse_args()
    bind = os.environ.get("MINIPORT_BIND", "udev/miniport-bind")
    dev = a.device

    sh(bind, "--unbind", dev)
    ifs = os.listdir(f"/sys/bus/pci/devices/{dev}/net")
    ifname = ifs[0]
    own = open(f"/sys/class/net/{ifname}/address").read().strip()
    # no IPv6 chatter (router solicitations, MLD) on the wire while we echo
    sh("sysctl", "-qw", f"net.ipv6.conf.{ifname}.disable_ipv6=1", check=False)
    sh("ip", "link", "set", ifname, "up")
    deadline = time.monotonic() + 15
    while open(f"/sys/class/net/{ifname}/operstate").read().strip() != "up":
        if time.monotonic() > deadline:
            raise SystemExit(f"kernel-echo: {ifname} has no carrier after 15 s")
        time.sleep(0.1)

    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(traffic.ETH_TEST))
    s.bind((ifname, traffic.ETH_TEST))
    s.settimeout(0.1)
    received, sent = [], []
    open(os.path.join(a.out, "ready"), "w").close()
    print(f"ready: {ifname} {own} up, echoing ethertype 0x{traffic.ETH_TEST:04x}", flush=True)
    done = os.path.join(a.out, "host-done")
    stop = time.monotonic() + a.seconds
    while time.monotonic() < stop and "host-done" not in os.listdir(a.out):
        try:
            frame = s.recv(65536)
        except socket.timeout:
            continue
        received.append((time.time(), frame))
        reply = frame[6:12] + traffic.mac(own) + frame[12:]
        s.send(reply)
        sent.append((time.time(), reply))
    s.close()
    traffic.write_pcap(os.path.join(a.out, "guest-received.pcap"), received)
    traffic.write_pcap(os.path.join(a.out, "guest-sent.pcap"), sent)
    print(f"echoed {len(sent)} frames; host-done seen: {os.path.exists(done)}", flush=True)

    sh("ip", "link", "set", ifname, "down")
    sh(bind, dev)
    ok = driver(dev) == "vfio-pci" and len(sent) > 0
    if driver(dev) != "vfio-pci":
        print(f"FAIL: {dev} is on {driver(dev)} after re-binding", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
