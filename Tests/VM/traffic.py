#!/usr/bin/env python3
"""Host-side traffic for the VM test bed (Python standard library only).

A guest NIC is wired to the host by QEMU's `-netdev dgram` over unix datagram sockets: QEMU binds
its own path (the ".qemu" socket) and sends every frame the NIC transmits to ours (the ".host"
socket); one datagram is one Ethernet frame, no header, no FCS. A `Port` owns our end: a thread
records every frame that comes out of the NIC, `send` puts frames into it, paced.

Unix datagram sockets do not drop silently: when QEMU stops reading (the NIC cannot receive: link
down, receive disabled, ring full) our send blocks, and after `send_timeout` we report the frame
as not delivered instead of blaming the driver. (Over inet sockets the host kernel drops instead;
`udp_drops` reads those counters from /proc/net/udp.)

As a library: `Port`, `write_pcap`/`read_pcap`, `wait_for_file`, and frame builders
(`ether`, `vlan`, `arp_request`, `ipv4`, `udp`, `icmp_echo`, `mac`).
As a tool, for a hand-started QEMU:
    traffic.py --qemu-sock Q --host-sock H [--send in.pcap] [--ready FILE] [--listen S] --out DIR
"""

import argparse
import os
import socket
import struct
import sys
import threading
import time

# ---------------------------------------------------------------------------------------------
# Frames

BROADCAST = b"\xff" * 6
ETH_IPV4 = 0x0800
ETH_ARP = 0x0806
ETH_VLAN = 0x8100
ETH_IPV6 = 0x86DD
ETH_TEST = 0x88B5  # IEEE 802 "local experimental" ethertype: our test frames use it


def mac(text):
    """b'RT\\x00...' from '52:54:00:4d:50:01' (bytes pass through)."""
    if isinstance(text, (bytes, bytearray)):
        assert len(text) == 6
        return bytes(text)
    parts = text.split(":")
    if len(parts) != 6:
        raise ValueError(f"MAC address '{text}': expected six hex bytes like 52:54:00:4d:50:01")
    return bytes(int(p, 16) for p in parts)


def mac_str(b):
    return ":".join(f"{x:02x}" for x in b)


def ether(dst, src, ethertype, payload=b"", pad=True):
    """An Ethernet II frame; padded to the 60-byte minimum (the NIC adds no FCS here)."""
    frame = mac(dst) + mac(src) + struct.pack("!H", ethertype) + bytes(payload)
    if pad and len(frame) < 60:
        frame += bytes(60 - len(frame))
    return frame


def vlan(dst, src, vid, ethertype, payload=b"", pcp=0, pad=True):
    """An 802.1Q-tagged frame (TPID 0x8100)."""
    tci = ((pcp & 7) << 13) | (vid & 0xFFF)
    return ether(dst, src, ETH_VLAN, struct.pack("!HH", tci, ethertype) + bytes(payload), pad=pad)


def checksum(data):
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ip4(text):
    return socket.inet_aton(text) if isinstance(text, str) else bytes(text)


def ipv4(src, dst, proto, payload, ttl=64, ident=0):
    """An IPv4 header (no options) with its checksum, followed by payload."""
    total = 20 + len(payload)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ident, 0x4000, ttl, proto, 0, ip4(src), ip4(dst))
    hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
    return hdr + bytes(payload)


def udp(src, dst, sport, dport, payload):
    """An IPv4 packet carrying a UDP datagram with its checksum (pseudo-header included)."""
    length = 8 + len(payload)
    pseudo = ip4(src) + ip4(dst) + struct.pack("!BBH", 0, 17, length)
    hdr = struct.pack("!HHHH", sport, dport, length, 0)
    c = checksum(pseudo + hdr + bytes(payload)) or 0xFFFF
    return ipv4(src, dst, 17, hdr[:6] + struct.pack("!H", c) + bytes(payload))


def icmp_echo(src, dst, ident=1, seq=1, payload=b"miniport", reply=False):
    """An IPv4 packet carrying an ICMP echo request (or reply)."""
    body = struct.pack("!BBHHH", 0 if reply else 8, 0, 0, ident, seq) + bytes(payload)
    body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
    return ipv4(src, dst, 1, body)


def arp_request(src_mac, src_ip, target_ip):
    """A broadcast ARP who-has frame."""
    body = struct.pack("!HHBBH6s4s6s4s", 1, ETH_IPV4, 6, 4, 1, mac(src_mac), ip4(src_ip), bytes(6), ip4(target_ip))
    return ether(BROADCAST, src_mac, ETH_ARP, body)


def test_frame(dst, src, seq, size=64, tag=b"MINIPORT"):
    """A numbered frame of our experimental ethertype: tag, sequence number, then filler."""
    payload = tag + struct.pack("!I", seq)
    payload += bytes((seq + i) & 0xFF for i in range(max(0, size - 14 - len(payload))))
    return ether(dst, src, ETH_TEST, payload)


def describe(frame):
    """One line for a report: addresses, type, length, and the first bytes after the header."""
    if len(frame) < 14:
        return f"runt {len(frame)} bytes: {frame.hex()}"
    dst, src, et = frame[0:6], frame[6:12], struct.unpack("!H", frame[12:14])[0]
    extra = ""
    if et == ETH_VLAN and len(frame) >= 18:
        tci, et = struct.unpack("!HH", frame[14:18])
        extra = f" vlan {tci & 0xFFF}"
    return f"{mac_str(src)} > {mac_str(dst)} type 0x{et:04x}{extra} len {len(frame)}: {frame[14:30].hex()}"


# ---------------------------------------------------------------------------------------------
# pcap (classic format, microsecond timestamps, LINKTYPE_ETHERNET)

def write_pcap(path, records):
    """records: iterable of (unix_time, frame) or plain frames."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for r in records:
            t, frame = r if isinstance(r, tuple) else (time.time(), r)
            sec = int(t)
            f.write(struct.pack("<IIII", sec, int((t - sec) * 1e6), len(frame), len(frame)))
            f.write(frame)


def read_pcap(path):
    """[(time, frame)] from a classic pcap (either byte order, µs or ns)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return []
    magic = struct.unpack("<I", data[:4])[0]
    order = {0xA1B2C3D4: ("<", 1e-6), 0xD4C3B2A1: (">", 1e-6), 0xA1B23C4D: ("<", 1e-9), 0x4D3CB2A1: (">", 1e-9)}
    if magic not in order:
        raise ValueError(f"{path}: not a pcap file (magic 0x{magic:08x})")
    bo, scale = order[magic]
    out, off = [], 24
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(bo + "IIII", data[off:off + 16])
        off += 16
        out.append((sec + frac * scale, data[off:off + incl]))
        off += incl
    return out


# ---------------------------------------------------------------------------------------------
# Waiting on the guest

def wait_for_file(path, timeout, abort_paths=(), poll=0.05):
    """Waits until path exists; returns the first of abort_paths that appears instead, or raises TimeoutError.

    Lists the directory rather than stat-ing the name: a 9p mount can cache a negative lookup.
    """
    deadline = time.monotonic() + timeout
    while True:
        for p in (path, *abort_paths):
            d, name = os.path.split(p)
            try:
                if name in os.listdir(d or "."):
                    return p
            except FileNotFoundError:
                pass
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{path} did not appear within {timeout:.0f} s")
        time.sleep(poll)


def udp_drops(port):
    """Drops counted by the host kernel for the inet UDP socket bound to port (0 if none)."""
    total = 0
    for name in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if int(cols[1].split(":")[1], 16) == port:
                        total += int(cols[-1])
        except OSError:
            pass
    return total


# ---------------------------------------------------------------------------------------------
# A port: our end of one guest NIC's datagram socket

class Port:
    """The host end of one guest NIC: records what the NIC transmits, sends what it should receive."""

    def __init__(self, name, host_path, qemu_path, pace=0.001, send_timeout=2.0):
        self.name = name
        self.host_path = host_path
        self.qemu_path = qemu_path
        self.pace = pace
        self.send_timeout = send_timeout
        self.received = []  # [(time, frame)] everything the NIC transmitted, since start
        self.sent = []  # [(time, frame)] everything we delivered to QEMU
        self.undelivered = []  # [(time, frame, reason)]
        self._cond = threading.Condition()
        self._closed = False
        try:
            os.unlink(host_path)
        except FileNotFoundError:
            pass
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(host_path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.tx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.tx.settimeout(send_timeout)
        self._thread = threading.Thread(target=self._record, name=f"port-{name}", daemon=True)
        self._thread.start()

    def _record(self):
        self.sock.settimeout(0.2)
        while not self._closed:
            try:
                frame = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self._cond:
                self.received.append((time.time(), frame))
                self._cond.notify_all()

    def mark(self):
        """A position in both logs; pass it to received_since / sent_since."""
        with self._cond:
            return (len(self.received), len(self.sent), len(self.undelivered))

    def received_since(self, mark):
        with self._cond:
            return list(self.received[mark[0]:])

    def sent_since(self, mark):
        with self._cond:
            return list(self.sent[mark[1]:])

    def undelivered_since(self, mark):
        with self._cond:
            return list(self.undelivered[mark[2]:])

    def send(self, frames, pace=None):
        """Sends frames one by one, `pace` seconds apart; returns how many QEMU accepted.

        Once QEMU has not read one frame within send_timeout, the rest are recorded undelivered.
        """
        pace = self.pace if pace is None else pace
        ok = 0
        stalled = None
        for frame in frames:
            frame = bytes(frame)
            if stalled:  # QEMU stopped reading: do not wait send_timeout again for every frame
                with self._cond:
                    self.undelivered.append((time.time(), frame, f"not sent: {stalled}"))
                continue
            try:
                self.tx.sendto(frame, self.qemu_path)
                with self._cond:
                    self.sent.append((time.time(), frame))
                ok += 1
            except (socket.timeout, BlockingIOError):
                reason = f"QEMU did not read its socket for {self.send_timeout} s (the NIC cannot receive)"
                stalled = "an earlier frame was not read by QEMU"
                with self._cond:
                    self.undelivered.append((time.time(), frame, reason))
            except (FileNotFoundError, ConnectionRefusedError) as e:
                reason = f"QEMU's socket {self.qemu_path} is not there ({e.strerror}): is the guest running?"
                with self._cond:
                    self.undelivered.append((time.time(), frame, reason))
            if pace:
                time.sleep(pace)
        return ok

    def wait_received(self, since, count=1, timeout=5.0, match=None):
        """Frames received after `since` that satisfy match, once there are `count` of them or at timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [r for r in self.received[since[0]:] if match is None or match(r[1])]
                left = deadline - time.monotonic()
                if len(got) >= count or left <= 0:
                    return got
                self._cond.wait(min(left, 0.2))

    def close(self):
        self._closed = True
        self._thread.join(timeout=1)
        self.sock.close()
        self.tx.close()
        try:
            os.unlink(self.host_path)
        except FileNotFoundError:
            pass


# ---------------------------------------------------------------------------------------------
# Command line, for a QEMU started by hand

def main(argv=None):
    ap = argparse.ArgumentParser(description="Send frames into a QEMU dgram NIC socket and record what comes out.")
    ap.add_argument("--qemu-sock", required=True, help="QEMU's local.path of the -netdev dgram")
    ap.add_argument("--host-sock", required=True, help="QEMU's remote.path: this tool binds it")
    ap.add_argument("--send", help="pcap whose frames are sent")
    ap.add_argument("--ready", help="wait for this file before sending")
    ap.add_argument("--ready-timeout", type=float, default=120)
    ap.add_argument("--pace", type=float, default=0.001, help="seconds between frames (default 0.001)")
    ap.add_argument("--listen", type=float, default=2.0, help="seconds to keep recording after sending")
    ap.add_argument("--out", required=True, help="directory for sent.pcap and received.pcap")
    a = ap.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    port = Port("cli", a.host_sock, a.qemu_sock, pace=a.pace)
    try:
        if a.ready:
            wait_for_file(a.ready, a.ready_timeout)
        start = port.mark()
        frames = [f for _, f in read_pcap(a.send)] if a.send else []
        port.send(frames)
        time.sleep(a.listen)
        write_pcap(os.path.join(a.out, "sent.pcap"), port.sent_since(start))
        write_pcap(os.path.join(a.out, "received.pcap"), port.received_since(start))
        lost = port.undelivered_since(start)
        print(f"sent {len(port.sent_since(start))}, received {len(port.received_since(start))}, undelivered {len(lost)}")
        for _, f, why in lost[:5]:
            print(f"  undelivered: {describe(f)}: {why}")
        return 1 if lost else 0
    finally:
        port.close()


if __name__ == "__main__":
    sys.exit(main())
