"""Shared by the host scripts of the miniport CLI scenarios (cli_*.py): waiting for the guest
command's exit, reading its JSON, and reading its capture files with tshark and with our own
pcapng reader (the two must agree).

Not a scenario itself: no run(ctx).
"""

import json
import os
import shutil
import struct
import subprocess
import time

import traffic
from testbed import Failure


def exited(ctx):
    return "exit" in os.listdir(ctx.out)


def wait_exit(ctx, timeout=60.0, host_done=False):
    """Waits for the guest command to exit; returns its exit code (the harness judges it too)."""
    return ctx.finish_guest(timeout=timeout, host_done=host_done)


def wait_file(ctx, name, timeout=60.0):
    """Waits for the guest to write `name` in the scenario directory; fails if the command exits first."""
    path = os.path.join(ctx.out, name)
    try:
        hit = traffic.wait_for_file(path, timeout, abort_paths=[os.path.join(ctx.out, "exit")])
    except TimeoutError:
        raise Failure(f"the guest did not write {name} within {timeout:.0f} s") from None
    if hit != path:
        raise Failure(f"the guest command exited before it wrote {name} (see guest.log)")
    ctx.log(f"guest wrote {name}")


def nonempty(ctx, name):
    try:
        return os.path.getsize(os.path.join(ctx.out, name)) > 0
    except OSError:
        return False


def wait_nonempty(ctx, name, timeout=60.0):
    """Waits until the guest has written something to `name` (a command's redirected stdout)."""
    deadline = time.monotonic() + timeout
    while not nonempty(ctx, name):
        if exited(ctx) and not nonempty(ctx, name):
            raise Failure(f"the guest command exited without writing {name} (see guest.log)")
        if time.monotonic() > deadline:
            raise Failure(f"the guest wrote nothing to {name} within {timeout:.0f} s")
        time.sleep(0.05)


def guest_json_object(ctx, name, settle=5.0):
    """The guest's file `name` holding one (multi-line) JSON object (read again while incomplete)."""
    deadline = time.monotonic() + settle
    while True:
        try:
            with open(os.path.join(ctx.out, name)) as f:
                return json.load(f)
        except FileNotFoundError:
            problem = f"the guest wrote no {name}"
        except ValueError as e:
            problem = f"the guest's {name} is not JSON: {e}"
        if time.monotonic() > deadline:
            raise Failure(problem)
        time.sleep(0.1)


def guest_json(ctx, name, settle=5.0):
    """The guest's JSON file `name` (a command's --json output redirected there): its last line.

    The file can be seen while the guest is still writing it (created empty, then written), so
    an empty or unparsable file is read again for up to `settle` seconds before it counts as broken.
    """
    path = os.path.join(ctx.out, name)
    deadline = time.monotonic() + settle
    while True:
        try:
            with open(path) as f:
                text = f.read()
        except FileNotFoundError:
            text = None
        lines = [ln for ln in (text or "").splitlines() if ln.strip()]
        try:
            if lines:
                return json.loads(lines[-1])
            problem = f"the guest wrote no {name}" if text is None else \
                f"the guest's {name} is empty (the command printed nothing: see guest.log)"
        except ValueError as e:
            problem = f"the guest's {name} is not JSON ({e}): {lines[-1][:200]}"
        if time.monotonic() > deadline:
            raise Failure(problem)
        time.sleep(0.1)


# ---------------------------------------------------------------------------------------------
# Capture files

def tshark_frames(path):
    """Every frame of a capture file as tshark reads it: interface, lengths, time and raw bytes."""
    if not shutil.which("tshark"):
        raise Failure("tshark is not installed on the host (Tests/setup --vm installs it)")
    r = subprocess.run(["tshark", "-r", path, "-T", "json", "-x"], capture_output=True, text=True)
    if r.returncode != 0:
        raise Failure(f"tshark cannot read {os.path.basename(path)}: {r.stderr.strip()[-300:]}")
    try:
        packets = json.loads(r.stdout or "[]")
    except ValueError as e:
        raise Failure(f"tshark's JSON for {os.path.basename(path)} does not parse: {e}") from None
    out = []
    for p in packets:
        layers = p["_source"]["layers"]
        fr = layers["frame"]
        tree = fr.get("frame.interface_id_tree", {})
        out.append({
            "interface_id": int(fr["frame.interface_id"]),
            "name": tree.get("frame.interface_name"),
            "description": tree.get("frame.interface_description"),
            "len": int(fr["frame.len"]),
            "cap_len": int(fr["frame.cap_len"]),
            "time": float(fr["frame.time_epoch"]),
            "bytes": bytes.fromhex(layers["frame_raw"][0]),
        })
    return out


def read_pcapng(path):
    """Our own pcapng reader (SHB, IDB, EPB only), to check what tshark does not show directly.

    Returns {"interfaces": [{"linktype", "snaplen", "name", "description", "tsresol"}],
             "packets": [{"interface", "time_ns", "cap_len", "orig_len", "bytes"}]}.
    """
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 28 or struct.unpack("<I", data[:4])[0] != 0x0A0D0D0A:
        raise Failure(f"{os.path.basename(path)} is not a pcapng file")
    bom = data[8:12]
    bo = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
    interfaces, packets = [], []
    off = 0
    while off + 12 <= len(data):
        btype, blen = struct.unpack(bo + "II", data[off:off + 8])
        if blen < 12 or off + blen > len(data):
            raise Failure(f"{os.path.basename(path)}: broken block at offset {off} (type 0x{btype:x}, length {blen})")
        body = data[off + 8:off + blen - 4]
        if btype == 1:  # Interface Description Block
            linktype, _, snaplen = struct.unpack(bo + "HHI", body[:8])
            opts = _options(body[8:], bo)
            interfaces.append({"linktype": linktype, "snaplen": snaplen,
                               "name": opts.get(2, b"").decode(errors="replace"),
                               "description": opts.get(3, b"").decode(errors="replace"),
                               "tsresol": opts.get(9, b"\x06")[0]})
        elif btype == 6:  # Enhanced Packet Block
            iface, hi, lo, caplen, origlen = struct.unpack(bo + "IIIII", body[:20])
            packets.append({"interface": iface, "time_ns": (hi << 32 | lo), "cap_len": caplen,
                            "orig_len": origlen, "bytes": body[20:20 + caplen]})
        off += blen
    return {"interfaces": interfaces, "packets": packets}


def _options(raw, bo):
    opts, i = {}, 0
    while i + 4 <= len(raw):
        code, length = struct.unpack(bo + "HH", raw[i:i + 4])
        if code == 0:
            break
        opts[code] = raw[i + 4:i + 4 + length]
        i += 4 + (length + 3) // 4 * 4
    return opts
