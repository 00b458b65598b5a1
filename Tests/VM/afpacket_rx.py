#!/usr/bin/env python3
"""A small AF_PACKET receiver for the VM test bed's receive-rate comparison (standard library only).

Runs inside the guest on an interface the kernel's own driver (igb) owns, counts the frames the
host offers, and prints one JSON object; `miniport bench --device ADDR` gives the same figures for
miniport's igb miniport on the same NIC bound to vfio-pci. Under TCG both rates are bounded by
QEMU's emulation of the NIC and the CPU, not by either driver: compare them as a ratio.

    afpacket_rx.py --interface eth1 [--ethertype 0x88b5] [--expect N] [--idle 2] [--duration 30]
                   [--ready FILE] [--out FILE]

The rate is taken from the first to the last counted frame, so it does not depend on when the
sender starts. Kernel drops (PACKET_STATISTICS) are reported next to the count.
"""

import argparse
import json
import os
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6  # struct tpacket_stats { unsigned tp_packets, tp_drops; }


def kernel_stats(sock):
    """(packets, drops) the kernel counted for this socket since the last call (reading resets them)."""
    raw = sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
    return struct.unpack("II", raw)


def receive(interface, ethertype, expect, idle, duration, ready):
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
    except OSError:
        pass  # capped by net.core.rmem_max; the drop count shows whether it mattered
    sock.bind((interface, 0))
    kernel_stats(sock)  # start the kernel counters from zero
    if ready:
        with open(ready, "w") as f:
            f.write(f"{os.getpid()}\n")
    frames = 0
    octets = 0
    first = last = None
    start = time.monotonic()
    buffer = bytearray(2048)
    view = memoryview(buffer)
    while True:
        now = time.monotonic()
        if now - start >= duration or (expect and frames >= expect):
            break
        if last is not None and now - last >= idle:
            break
        wait = min(idle, duration - (now - start))
        readable, _, _ = select.select([sock], [], [], max(wait, 0.001))
        if not readable:
            continue
        # Drain what is queued without going back to select for every frame.
        while True:
            try:
                n, address = sock.recvfrom_into(view, 2048, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            if address[2] == socket.PACKET_OUTGOING:
                continue
            if ethertype is not None and (n < 14 or (buffer[12] << 8 | buffer[13]) != ethertype):
                continue
            t = time.monotonic()
            if first is None:
                first = t
            last = t
            frames += 1
            octets += n
            if expect and frames >= expect:
                break
    packets_seen, drops = kernel_stats(sock)
    sock.close()
    span = (last - first) if frames > 1 else 0.0
    return {
        "interface": interface,
        "receiver": "af_packet",
        "frames": frames,
        "bytes": octets,
        "seconds": round(span, 6),
        "packetsPerSecond": round((frames - 1) / span, 1) if span > 0 else None,
        "kernelDrops": drops,
        "kernelPackets": packets_seen,
        "note": "under TCG the rate is bounded by QEMU's emulation, not by the driver",
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--interface", required=True, help="interface the kernel driver owns (e.g. eth1)")
    p.add_argument("--ethertype", default="0x88b5", help="count only this EtherType ('any' counts all); default 0x88b5, the test bed's test frames")
    p.add_argument("--expect", type=int, default=0, help="stop after this many frames (0: no limit)")
    p.add_argument("--idle", type=float, default=2.0, help="stop after this many seconds without a frame, once one arrived")
    p.add_argument("--duration", type=float, default=60.0, help="stop after this many seconds in any case")
    p.add_argument("--ready", help="write this file once the socket is bound (the host starts sending then)")
    p.add_argument("--out", help="write the JSON here as well as to stdout")
    args = p.parse_args(argv)
    ethertype = None if args.ethertype == "any" else int(args.ethertype, 0)
    try:
        result = receive(args.interface, ethertype, args.expect, args.idle, args.duration, args.ready)
    except PermissionError:
        sys.exit("afpacket_rx: AF_PACKET needs CAP_NET_RAW: run as root in the guest")
    except OSError as e:
        sys.exit(f"afpacket_rx: {args.interface}: {e.strerror}: is the interface up (ip link set {args.interface} up)?")
    text = json.dumps(result, sort_keys=True)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
