"""The VM test bed's shared facts: the guest's NIC layout, the scenario list, the QEMU options.

Used by Tests/VM/run (host) and read by the host-side scenario scripts through `Context`.
Docs/TESTBED.md explains the whole; keep its NIC table in step with NICS below.
"""

import os
import re
import shlex
import sys
import time
from dataclasses import dataclass, field

import traffic

VM_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(VM_DIR))
SCENARIO_LIST = os.path.join(VM_DIR, "scenarios.txt")
HOST_SCRIPTS = os.path.join(VM_DIR, "hosts")

# The MAC the host scripts use as their own source address (locally administered).
HOST_MAC = "02:4d:50:00:00:fe"


@dataclass(frozen=True)
class Nic:
    """One guest NIC: its QEMU device, where it sits, and which host socket carries its wire."""
    name: str  # the name scenarios use
    model: str  # QEMU -device
    address: str  # PCI address in the guest (fixed by the root port's slot: checked at guest setup)
    mac: str
    vendor_device: str  # as in sysfs, checked at guest setup
    interface: str  # the kernel's name for it before binding (predictable naming: enpXs0)
    root_port: int  # pcie-root-port N at slot 0x10+N-1 of pcie.0; the NIC is alone on bus N
    port: str  # host socket name: its own, or "link" for the back-to-back pair's hub
    options: str = ""
    bus: str = ""  # the bus it sits on, when not alone behind root port N
    bind_at_setup: bool = True


NICS = [
    Nic("igb0", "igb", "0000:01:00.0", "52:54:00:4d:50:01", "8086:10c9", "enp1s0", 1, "igb0"),
    Nic("e1000e0", "e1000e", "0000:02:00.0", "52:54:00:4d:50:02", "8086:10d3", "enp2s0", 2, "e1000e0"),
    Nic("virtio0", "virtio-net-pci", "0000:03:00.0", "52:54:00:4d:50:03", "1af4:1041", "enp3s0", 3, "virtio0",
        # modern only, and DMA through the vIOMMU (without iommu_platform virtio bypasses it)
        "disable-legacy=on,iommu_platform=on"),
    # The back-to-back pair: both on one QEMU hub, whose third port is the host socket "link",
    # so the host sees (and may inject into) the wire between them.
    Nic("igb-a", "igb", "0000:04:00.0", "52:54:00:4d:50:11", "8086:10c9", "enp4s0", 4, "link"),
    Nic("igb-b", "igb", "0000:05:00.0", "52:54:00:4d:50:12", "8086:10c9", "enp5s0", 5, "link"),
    # Two conventional-PCI e1000 behind one PCIe-to-PCI bridge share an IOMMU group (the bridge
    # aliases their requester IDs): they test miniport-bind's group checks, and stay on the
    # kernel's e1000 driver at setup. Their wire is hub 2, to each other only.
    Nic("grp-a", "e1000", "0000:07:01.0", "52:54:00:4d:50:21", "8086:100e", "ens1", 6, "none",
        bus="pcibr6", bind_at_setup=False),
    Nic("grp-b", "e1000", "0000:07:02.0", "52:54:00:4d:50:22", "8086:100e", "ens2", 6, "none",
        bus="pcibr6", bind_at_setup=False),
]
NIC_BY_NAME = {n.name: n for n in NICS}
PORTS = ["igb0", "e1000e0", "virtio0", "link"]
HUB_ID = 1


def qmp_path(sock_dir):
    """The QMP monitor socket of the guest's QEMU (host scripts: ctx.qmp, ctx.set_link, ctx.device_del)."""
    return f"{sock_dir}/qmp.sock"


def qemu_options(sock_dir, dump_dir=None):
    """The -machine/-device/-netdev options for the guest (appended to what vng passes)."""
    o = ["-machine", "q35,kernel-irqchip=split",
         # a QMP monitor for the fault scenarios (set_link, device_del/device_add)
         "-qmp", f"unix:{qmp_path(sock_dir)},server=on,wait=off",
         # vng passes -cpu max; without SVM/VMX the guest's udev does not try to load kvm (seconds under TCG)
         "-cpu", "max,svm=off,vmx=off",
         # before the NICs; caching-mode lets the guest's vfio map DMA through the vIOMMU
         "-device", "intel-iommu,intremap=on,caching-mode=on"]
    for rp in sorted({n.root_port for n in NICS}):
        o += ["-device", f"pcie-root-port,id=rp{rp},bus=pcie.0,chassis={rp},addr=0x{0x10 + rp - 1:x}.0"]
    for bus in sorted({n.bus for n in NICS if n.bus}):
        rp = next(n.root_port for n in NICS if n.bus == bus)
        o += ["-device", f"pcie-pci-bridge,id={bus},bus=rp{rp},addr=0.0"]
    for p in PORTS:
        o += ["-netdev", f"dgram,id=sock-{p},local.type=unix,local.path={sock_dir}/{p}.qemu,"
                         f"remote.type=unix,remote.path={sock_dir}/{p}.host"]
        if dump_dir:
            o += ["-object", f"filter-dump,id=dump-{p},netdev=sock-{p},file={dump_dir}/qemu-{p}.pcap"]
    for n in NICS:
        if n.port == "link":
            o += ["-netdev", f"hubport,id=hub-{n.name},hubid={HUB_ID}"]
        elif n.port == "none":
            o += ["-netdev", f"hubport,id=hub-{n.name},hubid={HUB_ID + 1}"]
    o += ["-netdev", f"hubport,id=hub-link,hubid={HUB_ID},netdev=sock-link"]
    for n in NICS:
        netdev = f"hub-{n.name}" if n.port in ("link", "none") else f"sock-{n.port}"
        opts = f",{n.options}" if n.options else ""
        where = f"bus={n.bus},addr=0x{int(n.address[-4:-2], 16):x}.0" if n.bus else f"bus=rp{n.root_port},addr=0.0"
        o += ["-device", f"{n.model},id={device_id(n)},netdev={netdev},{where},mac={n.mac}{opts}"]
    return o


def device_id(nic):
    """The QEMU device id of a NIC (for device_del / device_add), `nic-<name>`."""
    return f"nic-{nic.name}"


def device_add_arguments(nic, sock_dir=None):
    """The device_add arguments that put a removed NIC back where it was."""
    netdev = f"hub-{nic.name}" if nic.port in ("link", "none") else f"sock-{nic.port}"
    args = {"driver": nic.model, "id": device_id(nic), "netdev": netdev, "mac": nic.mac}
    if nic.bus:
        args.update(bus=nic.bus, addr=f"0x{int(nic.address[-4:-2], 16):x}.0")
    else:
        args.update(bus=f"rp{nic.root_port}", addr="0.0")
    for kv in filter(None, nic.options.split(",")):
        k, v = kv.split("=", 1)
        args[k] = v
    return args


class QMP:
    """A minimal QMP client (QEMU Machine Protocol: JSON lines over a unix socket)."""

    def __init__(self, path, timeout=10.0):
        import socket
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buffer = b""
        self.events = []
        greeting = self._read()
        if "QMP" not in greeting:
            raise Failure(f"QMP at {path} did not greet: {greeting}")
        self.execute("qmp_capabilities")

    def _read(self):
        import json
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Failure("QMP closed the connection")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def execute(self, command, **arguments):
        """Runs a command; returns its "return" value, or raises Failure naming QEMU's error."""
        import json
        msg = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self._read()
            if "event" in r:
                self.events.append(r)
                continue
            if "error" in r:
                raise Failure(f"QMP {command} {arguments}: {r['error'].get('class')}: {r['error'].get('desc')}")
            return r.get("return")

    def wait_event(self, name, timeout=30.0):
        """Waits for an asynchronous event (e.g. DEVICE_DELETED); returns it or raises Failure."""
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events:
                if e["event"] == name:
                    self.events.remove(e)
                    return e
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure(f"QMP: no {name} event within {timeout:.0f} s")
            self.sock.settimeout(left)
            try:
                r = self._read()
            except OSError:
                continue
            if "event" in r:
                self.events.append(r)

    def close(self):
        self.sock.close()


# ---------------------------------------------------------------------------------------------
# The scenario list

@dataclass
class Scenario:
    name: str
    nic: Nic
    expect: str  # "pass" or "fail"
    timeout: float
    host: str | None  # path of the host script, or None
    command: str  # guest command, placeholders filled
    line: int
    needs: str | None = None  # VMScenarios subcommand this needs (checked in the guest)


class ListError(Exception):
    pass


def load_scenarios(path=SCENARIO_LIST, out_root=None):
    """Parses the list: `name | nic | expect | timeout | host script | guest command` per line."""
    out = []
    names = set()
    with open(path) as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            cols = [c.strip() for c in line.split("|", 5)]
            where = f"{os.path.relpath(path, REPO)}:{lineno}"
            if len(cols) != 6:
                raise ListError(f"{where}: expected 6 columns 'name | nic | expect | timeout | host | command', got {len(cols)}")
            name, nic, expect, timeout, host, command = cols
            if name in names:
                raise ListError(f"{where}: scenario '{name}' is listed twice")
            names.add(name)
            if nic not in NIC_BY_NAME:
                raise ListError(f"{where}: unknown NIC '{nic}'; one of {', '.join(NIC_BY_NAME)}")
            if expect not in ("pass", "fail"):
                raise ListError(f"{where}: expect must be 'pass' or 'fail', not '{expect}'")
            try:
                timeout_s = float(timeout)
            except ValueError:
                raise ListError(f"{where}: timeout '{timeout}' is not a number of seconds") from None
            host_path = None
            if host != "-":
                host_path = os.path.join(HOST_SCRIPTS, host)
                if not os.path.isfile(host_path):
                    raise ListError(f"{where}: host script {os.path.relpath(host_path, REPO)} does not exist")
            out_dir = os.path.join(out_root or "OUT", name)
            subst = {"dev": NIC_BY_NAME[nic].address, "mac": NIC_BY_NAME[nic].mac, "out": out_dir,
                     "bin": os.path.join(REPO, ".build", "debug"), "vm": VM_DIR, "repo": REPO,
                     "name": name}
            for n in NICS:
                subst[f"dev:{n.name}"] = n.address
                subst[f"mac:{n.name}"] = n.mac
            cmd = command
            for k, v in subst.items():
                cmd = cmd.replace("{" + k + "}", v)
            unknown = re.search(r"\{[A-Za-z][\w:-]*\}", cmd)
            if unknown:
                raise ListError(f"{where}: unknown placeholder {unknown.group(0)}")
            needs = None
            words = shlex.split(cmd)
            if words and os.path.basename(words[0]) == "VMScenarios" and len(words) > 1:
                needs = words[1]
            out.append(Scenario(name, NIC_BY_NAME[nic], expect, timeout_s, host_path, cmd, lineno, needs))
    return out


# ---------------------------------------------------------------------------------------------
# What a host-side scenario script gets

class Failure(Exception):
    """A scenario's check failed; the message says what was expected and what was seen."""


@dataclass
class Context:
    """Handed to a host script's run(ctx): the scenario, its NIC's port and the guest handshake."""
    scenario: Scenario
    out: str
    ports: dict
    marks: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    qmp_socket: str = None  # the guest QEMU's QMP monitor (testbed.qmp_path)

    @property
    def nic(self):
        return self.scenario.nic

    @property
    def port(self):
        return self.ports[self.scenario.nic.port]

    @property
    def guest_mac(self):
        return self.scenario.nic.mac

    host_mac = HOST_MAC

    def log(self, msg):
        self.notes.append(msg)
        with open(os.path.join(self.out, "host.log"), "a") as f:
            f.write(f"{time.strftime('%H:%M:%S')} {msg}\n")

    def wait_ready(self, timeout=60.0):
        """Waits for the guest command's ready file; fails if the command exits first."""
        ready = os.path.join(self.out, "ready")
        try:
            hit = traffic.wait_for_file(ready, timeout, abort_paths=[os.path.join(self.out, "exit")])
        except TimeoutError:
            raise Failure(f"the guest command did not write {ready} within {timeout:.0f} s") from None
        if hit != ready:
            raise Failure("the guest command exited before it wrote its ready file")
        self.log("guest is ready")

    def send(self, frames, port=None, pace=None):
        p = self.ports[port] if port else self.port
        frames = list(frames)
        n = p.send(frames, pace=pace)
        self.log(f"sent {n} of {len(frames)} frames on {p.name}")
        if n != len(frames):
            why = p.undelivered[-1][2] if p.undelivered else "unknown"
            raise Failure(f"only {n} of {len(frames)} frames reached QEMU on {p.name}: {why}")
        return n

    def expect_frames(self, count, timeout=5.0, match=None, port=None, what="frames"):
        """Waits for count frames (matching `match`) out of the NIC since the scenario began."""
        p = self.ports[port] if port else self.port
        got = p.wait_received(self.marks[p.name], count, timeout, match)
        self.log(f"received {len(got)} {what} on {p.name} (wanted {count})")
        if len(got) < count:
            raise Failure(f"expected {count} {what} out of {p.name} within {timeout:.1f} s, saw {len(got)}")
        return [f for _, f in got]

    def check(self, condition, message):
        if not condition:
            raise Failure(message)

    def finish_guest(self, timeout=60.0, host_done=True):
        """Tells the guest command the host is done (host-done) and waits for it to exit.

        Lets a host script assert on what the guest wrote after its traffic (its JSON results).
        With host_done=False it only waits (for a guest command that stops on its own).
        Returns the guest's exit code; the harness still judges the code itself afterwards.
        """
        if host_done:
            open(os.path.join(self.out, "host-done"), "w").close()
        path = os.path.join(self.out, "exit")
        try:
            traffic.wait_for_file(path, timeout)
        except TimeoutError:
            after = " of host-done" if host_done else ""
            raise Failure(f"the guest command did not exit within {timeout:.0f} s{after}") from None
        import json
        with open(path) as f:
            code = json.load(f)["code"]
        self.log(f"guest exited with {code}")
        return code

    def qmp(self, command, **arguments):
        """Runs one QMP command on the guest's QEMU; returns its result (Failure on an error)."""
        if not self.qmp_socket:
            raise Failure("this run has no QMP monitor (Context.qmp_socket unset)")
        q = QMP(self.qmp_socket)
        try:
            r = q.execute(command, **arguments)
        finally:
            q.close()
        self.log(f"qmp {command} {arguments}: ok")
        return r

    def set_link(self, up, nic=None):
        """Cable in (up=True) or out for a NIC (default: the scenario's), as QEMU's set_link."""
        n = nic or self.nic
        return self.qmp("set_link", name=device_id(n), up=bool(up))

    def device_del(self, nic=None, wait=30.0):
        """Hot-unplugs a NIC (the guest gets a removal request); waits for DEVICE_DELETED if wait."""
        n = nic or self.nic
        q = QMP(self.qmp_socket)
        try:
            q.execute("device_del", id=device_id(n))
            self.log(f"qmp device_del {device_id(n)}: requested")
            if wait:
                q.wait_event("DEVICE_DELETED", wait)
                self.log(f"qmp DEVICE_DELETED {device_id(n)}")
        finally:
            q.close()

    def device_add(self, nic=None):
        """Puts a removed NIC back where it was (same id, bus, MAC, netdev)."""
        n = nic or self.nic
        return self.qmp("device_add", **device_add_arguments(n))

    def guest_json(self, name):
        """The guest's JSON result file `name` in the scenario directory (fails if absent or broken)."""
        import json
        path = os.path.join(self.out, name)
        try:
            with open(path) as f:
                return json.load(f)
        except FileNotFoundError:
            raise Failure(f"the guest wrote no {name}") from None
        except ValueError as e:
            raise Failure(f"the guest's {name} is not JSON: {e}") from None


def load_host_script(path):
    """Imports a host script as a module (it can `import traffic` and `import testbed`)."""
    import importlib.util
    if VM_DIR not in sys.path:
        sys.path.insert(0, VM_DIR)
    name = "host_" + os.path.splitext(os.path.basename(path))[0].replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if not hasattr(mod, "run"):
        raise ListError(f"{os.path.relpath(path, REPO)} has no run(ctx) function")
    return mod
