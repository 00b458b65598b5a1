"""Host-side helpers for the IGB miniport's scenarios (Tests/VM/hosts/igb-*.py).

The guest side is `VMScenarios igb-traffic` (and igb-transmit, igb-pair): it writes JSON with
every frame it received (queue, bytes, segments, VLAN, checksum verdicts). These helpers match
what the host sent to what the guest saw, and run the differential test: the same frames through
the same driver on the 82576 model (`VMScenarios igb-traffic --model`, run here on the host),
compared with QEMU's igb queue by queue and byte by byte.
"""

import json
import os
import shlex
import struct
import subprocess

import traffic
from testbed import REPO, Failure

VMSCENARIOS = os.path.join(REPO, ".build", "debug", "VMScenarios")


def finish(ctx, name):
    """host-done, wait for the guest to exit, load its JSON; fails with the guest's own errors."""
    code = ctx.finish_guest()
    d = ctx.guest_json(name)
    if not d.get("ok"):
        raise Failure(f"guest (exit {code}): " + "; ".join(d.get("errors") or ["no errors listed"]))
    return d


def strip_vlan(frame):
    """(frame without its 802.1Q tag, VLAN id or None, priority or None)."""
    if len(frame) >= 18 and frame[12:14] == b"\x81\x00":
        tci = struct.unpack("!H", frame[14:16])[0]
        return frame[:12] + frame[16:], tci & 0xFFF, tci >> 13
    return frame, None, None


def forms_of(frame):
    """The forms a sent frame can be indicated in: as sent or with its tag stripped, padded to 60 bytes."""
    body, _, _ = strip_vlan(frame)
    return {f + bytes(max(0, 60 - len(f))) for f in (frame, body)} | {frame, body}


def guest_frames(d):
    """The guest's frames with their bytes decoded."""
    out = []
    for f in d.get("frames", []):
        g = dict(f)
        g["raw"] = bytes.fromhex(f["bytes"])
        out.append(g)
    return out


def queue_names(d):
    """NDIS queue id -> name: 'default', or the filter spec the queue was made for."""
    names = {0: "default"}
    for q in d.get("queues", []):
        names[q["id"]] = q["filter"]
    return names


def check_delivery(ctx, d, cases):
    """cases: [(label, frame sent, expected queue names, optional check(frame_records))].

    Every frame must reach exactly the expected queues (a broadcast once per pool), with the
    VLAN tag stripped into the frame's info. Returns the table rows it checked, for the log.
    """
    names = queue_names(d)
    by_name = {v: k for k, v in names.items()}
    frames = guest_frames(d)
    problems, rows = [], []
    for case in cases:
        label, sent, want = case[0], case[1], case[2]
        extra = case[3] if len(case) > 3 else None
        body, vid, prio = strip_vlan(sent)
        got = [f for f in frames if f["raw"] == body]
        got_names = sorted(names.get(f["queue"], f"queue {f['queue']}") for f in got)
        rows.append(f"{label}: {', '.join(got_names) or 'dropped'}")
        for w in want:
            if w not in by_name:
                problems.append(f"{label}: no queue named {w} in the guest's setup {names}")
        if got_names != sorted(want):
            problems.append(f"{label} ({traffic.describe(sent)}): on {got_names or 'no queue'}, expected {sorted(want) or 'dropped'}")
            continue
        for f in got:
            if vid is not None and f.get("vlan") != vid:
                problems.append(f"{label}: VLAN {vid} was not stripped into the info (vlan {f.get('vlan')})")
        if extra:
            msg = extra(got)
            if msg:
                problems.append(f"{label}: {msg}")
    for r in rows:
        ctx.log("  " + r)
    if problems:
        raise Failure("; ".join(problems[:8]) + (f" (+{len(problems) - 8} more)" if len(problems) > 8 else ""))
    return rows


# ---------------------------------------------------------------------------------------------
# The differential test: the same frames through the model

def model_arguments(command, pcap, out, mac, fidelity):
    """The scenario's guest command turned into the same run on the model."""
    words = shlex.split(command)
    i = words.index("igb-traffic")
    args = words[i + 1:]
    keep = []
    skip_value = {"--device", "--out", "--seconds", "--sleep-ms", "--frames", "--fidelity", "--mac"}
    skip_flag = {"--echo", "--interrupts", "--trace-bringup", "--model"}
    j = 0
    while j < len(args):
        a = args[j]
        if a in skip_value:
            j += 2
            continue
        if a in skip_flag:
            j += 1
            continue
        keep.append(a)
        j += 1
    return [VMSCENARIOS, "igb-traffic", "--model", "--frames", pcap, "--fidelity", fidelity, "--mac", mac,
            "--out", out] + keep


def run_model(ctx, frames, fidelity):
    """Runs the scenario's frames through the driver on the model; returns its JSON."""
    out = os.path.join(ctx.out, f"model-{fidelity}")
    os.makedirs(out, exist_ok=True)
    pcap = os.path.join(ctx.out, "differential-frames.pcap")
    traffic.write_pcap(pcap, frames)
    cmd = model_arguments(ctx.scenario.command, pcap, out, ctx.guest_mac, fidelity)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    with open(os.path.join(out, "output.txt"), "w") as f:
        f.write(" ".join(cmd) + "\n" + r.stdout + r.stderr)
    try:
        with open(os.path.join(out, "igb-traffic.json")) as f:
            d = json.load(f)
    except (OSError, ValueError) as e:
        raise Failure(f"the model run ({fidelity}) wrote no result: {e}; exit {r.returncode}: {r.stdout[-300:]}{r.stderr[-300:]}")
    if not d.get("ok"):
        raise Failure(f"the model run ({fidelity}) failed: {'; '.join(d.get('errors', []))}")
    return d


def deliveries(d):
    """frame bytes (as indicated) -> sorted [(queue, vlan, segments, checksum verdicts)]."""
    out = {}
    for f in guest_frames(d):
        out.setdefault(f["raw"], []).append((f["queue"], f.get("vlan"), tuple(f["segments"]), tuple(f["checksum"])))
    for k in out:
        out[k].sort(key=repr)
    return out


def compare(qemu, model, sent):
    """Differences between two runs of the same frames: queue assignment, bytes, segments, info."""
    a, b = deliveries(qemu), deliveries(model)
    diffs = []
    known = set()
    for i, frame in enumerate(sent):
        # a frame may arrive stripped of its tag or not (STRVLAN per pool), and padded to 60 bytes
        forms = forms_of(frame)
        known |= forms
        qa = sorted((x for k in forms for x in a.get(k, [])), key=repr)
        qb = sorted((x for k in forms for x in b.get(k, [])), key=repr)
        if qa != qb:
            diffs.append({"frame": i, "what": traffic.describe(frame),
                          "qemu": [list(map(str, x)) for x in qa], "model": [list(map(str, x)) for x in qb]})
    for side, d, other in (("qemu", a, b), ("model", b, a)):
        for raw in d:
            if raw not in known:
                diffs.append({"frame": None, "what": f"{side} delivered a frame nobody sent: {traffic.describe(raw)}"})
    return diffs


def differential(ctx, qemu_result, sent, must_agree=("qemu",), also=("datasheet",)):
    """Runs `sent` through the model in each fidelity and compares with QEMU's result.

    The model in `.qemu` fidelity must agree with QEMU exactly (else the scenario fails: the
    model or the driver is wrong, and Docs/MODEL.md records the finding). Other fidelities are
    compared and recorded in differential.json (the datasheet's own answers, for the docs).
    """
    report = {}
    failures = []
    for fidelity in tuple(must_agree) + tuple(also):
        model = run_model(ctx, sent, fidelity)
        diffs = compare(qemu_result, model, sent)
        report[fidelity] = {"frames": len(sent), "differences": diffs}
        ctx.log(f"differential vs model ({fidelity} fidelity): {len(sent)} frames, {len(diffs)} differences")
        for x in diffs[:10]:
            ctx.log(f"  frame {x['frame']}: {x['what']}: qemu {x.get('qemu')} model {x.get('model')}")
        if fidelity in must_agree and diffs:
            failures.append(f"the model ({fidelity} fidelity) and QEMU disagree on {len(diffs)} of {len(sent)} frames, "
                            f"first: frame {diffs[0]['frame']} {diffs[0]['what']}: qemu {diffs[0].get('qemu')} "
                            f"model {diffs[0].get('model')}")
    with open(os.path.join(ctx.out, "differential.json"), "w") as f:
        json.dump(report, f, indent=1)
    if failures:
        raise Failure("; ".join(failures))
    return report


def summary(ctx, **values):
    """Measured numbers for Docs/IGB.md's closing note (host-summary.json in the scenario's directory)."""
    path = os.path.join(ctx.out, "host-summary.json")
    old = {}
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
    old.update(values)
    with open(path, "w") as f:
        json.dump(old, f, indent=1)
    for k, v in values.items():
        ctx.log(f"measured {k}: {v}")
