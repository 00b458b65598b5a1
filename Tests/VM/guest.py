#!/usr/bin/env python3
"""Runs inside the test bed's guest (started by Tests/VM/run through vng --exec).

    guest.py OUT      OUT is the --rwdir directory shared with the host; OUT/plan.json says what to do.

1. Setup: checks each NIC sits at its documented address with its MAC, loads vfio-pci, reserves
   hugepages, binds every NIC with udev/miniport-bind, and writes OUT/setup/{log.txt,result.json}.
2. For each scenario, in lockstep with the host:
     guest writes OUT/<name>/started, runs the command (it may write OUT/<name>/ready and wait for
     OUT/<name>/host-done), writes OUT/<name>/exit (the exit code) and OUT/<name>/dmesg.txt,
     then waits for the host's OUT/<name>/host-ack before the next scenario.
3. Writes OUT/dmesg.txt and OUT/suite-done.
Results go to files, never the console (vng's console can drop characters).
"""

import json
import os
import subprocess
import sys
import time


def uptime():
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def listed(path):
    """True when path exists, asked of the directory (9p may cache a negative lookup of the name)."""
    d, name = os.path.split(path)
    try:
        return name in os.listdir(d)
    except FileNotFoundError:
        return False


def wait_listed(path, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if listed(path):
            return True
        time.sleep(0.05)
    return False


def dmesg():
    return subprocess.run(["dmesg"], capture_output=True, text=True).stdout


def sysfs(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def setup(plan, out):
    d = os.path.join(out, "setup")
    os.makedirs(d, exist_ok=True)
    log = []
    errors = []
    t0 = uptime()

    def run(cmd):
        r = subprocess.run(cmd, capture_output=True, text=True)
        log.append(f"$ {' '.join(cmd)}  (exit {r.returncode})\n{r.stdout}{r.stderr}")
        return r

    # The layout the docs promise: address, ids, MAC (read before binding, from the kernel's netdev).
    for n in plan["nics"]:
        base = f"/sys/bus/pci/devices/{n['address']}"
        ids = f"{(sysfs(base + '/vendor') or '?')[2:]}:{(sysfs(base + '/device') or '?')[2:]}"
        if ids != n["vendor_device"]:
            errors.append(f"{n['name']}: expected {n['vendor_device']} at {n['address']}, found {ids}: "
                          "the NIC layout moved; fix NICS in Tests/VM/testbed.py and Docs/TESTBED.md")
            continue
        netdirs = os.listdir(base + "/net") if os.path.isdir(base + "/net") else []
        macs = [sysfs(f"{base}/net/{i}/address") for i in netdirs]
        if macs and n["mac"] not in macs:
            errors.append(f"{n['name']}: {n['address']} has MAC {macs}, expected {n['mac']}")
        log.append(f"{n['name']}: {n['address']} {ids} interfaces {netdirs} MAC {macs}")

    r = run(["modprobe", "vfio-pci"])
    if r.returncode != 0:
        errors.append(f"modprobe vfio-pci failed: {r.stderr.strip()}")
    try:
        with open("/proc/sys/vm/nr_hugepages", "w") as f:
            f.write(str(plan["hugepages"]))
    except OSError as e:
        errors.append(f"cannot reserve hugepages: {e}")
    got = int(sysfs("/proc/sys/vm/nr_hugepages") or 0)
    log.append(f"hugepages: {got} of {plan['hugepages']} requested")
    if got < plan["hugepages"]:
        errors.append(f"only {got} of {plan['hugepages']} 2 MiB hugepages could be reserved")

    t_bind = time.monotonic()
    to_bind = [n for n in plan["nics"] if n["bind"]]
    r = run([plan["bind"]] + [n["address"] for n in to_bind])
    log.append(f"binding {len(to_bind)} NICs took {time.monotonic() - t_bind:.1f} s")
    for n in to_bind:
        drv = os.path.basename(os.readlink(f"/sys/bus/pci/devices/{n['address']}/driver")) \
            if os.path.islink(f"/sys/bus/pci/devices/{n['address']}/driver") else None
        if r.returncode != 0 or drv != "vfio-pci":
            errors.append(f"{n['name']}: miniport-bind left {n['address']} on {drv} (exit {r.returncode}): "
                          f"{r.stderr.strip()}")
    r = run([plan["bind"], "--status"])

    # Which VMScenarios subcommands exist (a scenario needing a missing one is skipped, loudly).
    subcommands = None
    vms = plan["vmscenarios"]
    if os.access(vms, os.X_OK):
        r = run([vms, "--help"])
        subcommands = r.stdout + r.stderr
    else:
        log.append(f"{vms} is not built")

    result = {"ok": not errors, "errors": errors, "boot_uptime_s": t0, "setup_s": uptime() - t0,
              "vmscenarios_help": subcommands}
    write(os.path.join(d, "log.txt"), "\n".join(log) + "\n")
    write(os.path.join(d, "dmesg.txt"), dmesg())
    write(os.path.join(d, "result.json"), json.dumps(result, indent=1))
    return result


def has_subcommand(help_text, name):
    if not help_text:
        return False
    for line in help_text.splitlines():
        words = line.split()
        if words and words[0] == name:
            return True
    return False


def run_scenario(s, plan, help_text):
    d = s["out"]
    os.makedirs(d, exist_ok=True)
    env = dict(os.environ, MINIPORT_SCENARIO_DIR=d, MINIPORT_DEVICE=s["address"], MINIPORT_VM_DIR=plan["vm_dir"],
               MINIPORT_BIND=plan["bind"], PYTHONDONTWRITEBYTECODE="1")
    if s["needs"] and not has_subcommand(help_text, s["needs"]):
        write(os.path.join(d, "skipped"), f"VMScenarios has no '{s['needs']}' subcommand yet "
                                          f"(Tests/VM/Scenarios); `VMScenarios --help` does not list it\n")
        write(os.path.join(d, "started"), f"{uptime()}\n")
        code = 0
        took = 0.0
    else:
        write(os.path.join(d, "started"), f"{uptime()}\n")
        t = time.monotonic()
        with open(os.path.join(d, "guest.log"), "w") as logf:
            try:
                r = subprocess.run(["/bin/sh", "-c", s["command"]], cwd=plan["repo"], env=env,
                                   stdout=logf, stderr=subprocess.STDOUT, timeout=s["timeout"])
                code = r.returncode
            except subprocess.TimeoutExpired:
                logf.write(f"\n[guest.py] killed after {s['timeout']} s\n")
                code = 124
        took = time.monotonic() - t
    tail = dmesg().splitlines()[-60:]
    write(os.path.join(d, "dmesg.txt"), "\n".join(tail) + "\n")
    write(os.path.join(d, "exit"), json.dumps({"code": code, "seconds": took}) + "\n")
    if not wait_listed(os.path.join(d, "host-ack"), plan["ack_timeout"]):
        with open(os.path.join(out_dir, "guest-warnings.txt"), "a") as f:
            f.write(f"{s['name']}: the host did not acknowledge within {plan['ack_timeout']} s\n")


def main():
    global out_dir
    out_dir = sys.argv[1]
    with open(os.path.join(out_dir, "plan.json")) as f:
        plan = json.load(f)
    result = setup(plan, out_dir)
    help_text = result["vmscenarios_help"]
    for s in plan["scenarios"]:
        run_scenario(s, plan, help_text)
    write(os.path.join(out_dir, "dmesg.txt"), dmesg())
    write(os.path.join(out_dir, "suite-done"), f"{uptime()}\n")


out_dir = None
if __name__ == "__main__":
    main()
