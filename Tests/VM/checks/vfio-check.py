#!/usr/bin/env python3
"""A stand-in VFIO smoke check, in Python, run in the guest: proves the test bed hands out a NIC
that vfio can drive, independently of the project's Swift VFIO module.

    vfio-check.py --device 0000:01:00.0 [--mac 52:54:00:4d:50:01] --out DIR

Checks, in order: bound to vfio-pci, /dev/vfio/<group> exists, container API version and the
type-1 IOMMU extension, group viable, device fd, config space ids equal sysfs, device reset,
BAR0 mmap (Intel NICs: RAL0/RAH0 hold the expected MAC), and a DMA map/unmap through the IOMMU.
Writes DIR/vfio-check.json. Exit 0 when all pass.

Ioctl numbers are _IO(';', 100 + n) from linux/vfio.h (VFIO_TYPE ';', VFIO_BASE 100).
"""

import argparse
import ctypes
import fcntl
import json
import mmap
import os
import struct
import sys


def _io(n):
    return (ord(";") << 8) | (100 + n)


VFIO_GET_API_VERSION = _io(0)
VFIO_CHECK_EXTENSION = _io(1)
VFIO_SET_IOMMU = _io(2)
VFIO_GROUP_GET_STATUS = _io(3)
VFIO_GROUP_SET_CONTAINER = _io(4)
VFIO_GROUP_GET_DEVICE_FD = _io(6)
VFIO_DEVICE_GET_INFO = _io(7)
VFIO_DEVICE_GET_REGION_INFO = _io(8)
VFIO_DEVICE_RESET = _io(11)
VFIO_IOMMU_MAP_DMA = _io(13)
VFIO_IOMMU_UNMAP_DMA = _io(14)
VFIO_TYPE1v2_IOMMU = 3
VFIO_GROUP_FLAGS_VIABLE = 1
VFIO_DEVICE_FLAGS_RESET = 1 << 0
VFIO_DEVICE_FLAGS_PCI = 1 << 1
VFIO_REGION_INFO_FLAG_MMAP = 1 << 2
VFIO_PCI_BAR0_REGION_INDEX = 0
VFIO_PCI_CONFIG_REGION_INDEX = 7

# 82576 / 82574L register offsets (Intel datasheets, "Receive Address Low/High", "Device Status").
STATUS = 0x0008
RAL0 = 0x5400
RAH0 = 0x5404
RAH_AV = 1 << 31


class CheckFailed(Exception):
    pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", required=True)
    ap.add_argument("--mac")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    dev = a.device
    report = {"device": dev, "steps": []}

    def step(name, ok, detail=""):
        report["steps"].append({"step": name, "ok": bool(ok), "detail": detail})
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)
        if not ok:
            raise CheckFailed(f"{name}: {detail}")

    sysdev = f"/sys/bus/pci/devices/{dev}"
    try:
        drv = os.path.basename(os.readlink(f"{sysdev}/driver")) if os.path.islink(f"{sysdev}/driver") else None
        step("bound to vfio-pci", drv == "vfio-pci", f"driver is {drv}")
        group = os.path.basename(os.readlink(f"{sysdev}/iommu_group"))
        node = f"/dev/vfio/{group}"
        step("group node exists", os.path.exists(node), node)

        container = os.open("/dev/vfio/vfio", os.O_RDWR)
        v = fcntl.ioctl(container, VFIO_GET_API_VERSION)
        step("container API version", v == 0, f"VFIO_GET_API_VERSION = {v}")
        ext = fcntl.ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU)
        step("type-1 v2 IOMMU offered", ext == 1, f"VFIO_CHECK_EXTENSION(TYPE1v2) = {ext}")

        gfd = os.open(node, os.O_RDWR)
        st = bytearray(struct.pack("II", 8, 0))
        fcntl.ioctl(gfd, VFIO_GROUP_GET_STATUS, st)
        flags = struct.unpack("II", st)[1]
        step("group viable", flags & VFIO_GROUP_FLAGS_VIABLE, f"flags 0x{flags:x}")
        fcntl.ioctl(gfd, VFIO_GROUP_SET_CONTAINER, bytearray(struct.pack("i", container)))
        fcntl.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)
        step("group in container, IOMMU set", True, "type-1 v2")

        dfd = fcntl.ioctl(gfd, VFIO_GROUP_GET_DEVICE_FD, bytearray(dev.encode() + b"\0"))
        step("device fd", dfd >= 0, f"fd {dfd}")
        info = bytearray(struct.pack("IIIIII", 24, 0, 0, 0, 0, 0))
        fcntl.ioctl(dfd, VFIO_DEVICE_GET_INFO, info)
        _, dflags, nregions, nirqs, _, _ = struct.unpack("IIIIII", info)
        step("device info", dflags & VFIO_DEVICE_FLAGS_PCI and nregions >= 9,
             f"flags 0x{dflags:x}, {nregions} regions, {nirqs} irq types")

        def region(index):
            buf = bytearray(struct.pack("IIIIQQ", 32, 0, index, 0, 0, 0))
            fcntl.ioctl(dfd, VFIO_DEVICE_GET_REGION_INFO, buf)
            _, rflags, _, _, size, offset = struct.unpack("IIIIQQ", buf)
            return rflags, size, offset

        _, csize, coff = region(VFIO_PCI_CONFIG_REGION_INDEX)
        cfg = os.pread(dfd, 64, coff)
        vid, did = struct.unpack_from("<HH", cfg, 0)
        want = (int(open(f"{sysdev}/vendor").read(), 16), int(open(f"{sysdev}/device").read(), 16))
        step("config space ids", (vid, did) == want, f"{vid:04x}:{did:04x} (sysfs {want[0]:04x}:{want[1]:04x})")

        if dflags & VFIO_DEVICE_FLAGS_RESET:
            fcntl.ioctl(dfd, VFIO_DEVICE_RESET)
            step("device reset", True, "VFIO_DEVICE_RESET")

        rflags, bsize, boff = region(VFIO_PCI_BAR0_REGION_INDEX)
        report["bar0_size"] = bsize
        if vid == 0x8086:
            step("BAR0 mappable", rflags & VFIO_REGION_INFO_FLAG_MMAP and bsize >= 0x6000,
                 f"flags 0x{rflags:x}, size {bsize:#x}")
            bar = mmap.mmap(dfd, bsize, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=boff)
            regs = memoryview(bar).cast("I")  # 32-bit loads, as the registers require
            status, ral, rah = regs[STATUS // 4], regs[RAL0 // 4], regs[RAH0 // 4]
            macaddr = ":".join(f"{b:02x}" for b in struct.pack("<IH", ral, rah & 0xFFFF))
            report["status"] = f"0x{status:08x}"
            report["mac"] = macaddr
            step("STATUS readable", status not in (0, 0xFFFFFFFF), f"STATUS 0x{status:08x}")
            if a.mac:
                step("RAL0/RAH0 hold the MAC", macaddr == a.mac.lower() and rah & RAH_AV,
                     f"{macaddr} (AV={int(bool(rah & RAH_AV))}), expected {a.mac}")
            regs.release()
            bar.close()

        # DMA: 64 KiB of anonymous memory mapped at IOVA = its virtual address, then unmapped.
        size = 64 << 10
        buf = mmap.mmap(-1, size, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | mmap.MAP_POPULATE)
        vaddr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
        dm = bytearray(struct.pack("IIQQQ", 32, 3, vaddr, vaddr, size))
        fcntl.ioctl(container, VFIO_IOMMU_MAP_DMA, dm)
        um = bytearray(struct.pack("IIQQ", 24, 0, vaddr, size))
        fcntl.ioctl(container, VFIO_IOMMU_UNMAP_DMA, um)
        unmapped = struct.unpack("IIQQ", um)[3]
        step("DMA map/unmap", unmapped == size, f"{size} bytes at IOVA {vaddr:#x}, unmapped {unmapped}")

        os.close(dfd)
        os.close(gfd)
        os.close(container)
        report["ok"] = True
    except (CheckFailed, OSError) as e:
        if isinstance(e, OSError):
            print(f"FAIL {e}", flush=True)
        report["ok"] = False
        report["error"] = str(e)
    with open(os.path.join(a.out, "vfio-check.json"), "w") as f:
        json.dump(report, f, indent=1)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
