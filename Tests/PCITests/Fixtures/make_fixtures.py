#!/usr/bin/env python3
"""Writes the sysfs fixture trees the PCI and VFIO tests read (run from this directory).

Each tree stands for `/` of a machine: sys/bus/pci/devices/<addr>/{vendor,device,class,config,...},
driver and iommu_group links, net interfaces, sys/kernel/iommu_groups/<n>/devices links, dev/vfio.
The shapes copy what a Debian 12 kernel shows; the ids are the real ones of each chip.
"""
import os, shutil, struct

def device(root, addr, vendor, dev, cls, rev=1, sub=(0, 0), driver=None, group=None, numa=-1,
           resources=(), override=None, nets=(), virtio_child=None):
    d = os.path.join(root, "sys/bus/pci/devices", addr)
    os.makedirs(d, exist_ok=True)
    def put(name, text):
        with open(os.path.join(d, name), "w") as f:
            f.write(text + "\n")
    put("vendor", "0x%04x" % vendor)
    put("device", "0x%04x" % dev)
    put("class", "0x%06x" % cls)
    put("revision", "0x%02x" % rev)
    put("subsystem_vendor", "0x%04x" % sub[0])
    put("subsystem_device", "0x%04x" % sub[1])
    put("numa_node", str(numa))
    put("irq", "0")
    put("driver_override", override or "(null)")
    lines = []
    for i in range(13):
        if i < len(resources) and resources[i] and resources[i][1]:
            start, size, flags = resources[i]
            lines.append("0x%016x 0x%016x 0x%016x" % (start, start + size - 1, flags))
        else:
            lines.append("0x%016x 0x%016x 0x%016x" % (0, 0, 0))
    put("resource", "\n".join(lines))
    # Config space header: ids, revision, class, header type 0, subsystem ids (PCI 3.0 section 6.1).
    config = bytearray(256)
    struct.pack_into("<HH", config, 0, vendor, dev)
    config[8] = rev
    config[9], config[10], config[11] = cls & 0xff, (cls >> 8) & 0xff, (cls >> 16) & 0xff
    struct.pack_into("<HH", config, 0x2c, sub[0], sub[1])
    with open(os.path.join(d, "config"), "wb") as f:
        f.write(bytes(config))
    if driver:
        os.symlink("../../../bus/pci/drivers/" + driver, os.path.join(d, "driver"))
    if group is not None:
        os.symlink("../../../kernel/iommu_groups/%d" % group, os.path.join(d, "iommu_group"))
        g = os.path.join(root, "sys/kernel/iommu_groups/%d/devices" % group)
        os.makedirs(g, exist_ok=True)
        os.symlink("../../../../bus/pci/devices/" + addr, os.path.join(g, addr))
    netdir = os.path.join(d, virtio_child, "net") if virtio_child else os.path.join(d, "net")
    for name, up in nets:
        n = os.path.join(netdir, name)
        os.makedirs(n, exist_ok=True)
        with open(os.path.join(n, "flags"), "w") as f:
            f.write("0x1003\n" if up else "0x1002\n")
        with open(os.path.join(n, "operstate"), "w") as f:
            f.write("up\n" if up else "down\n")

MEM, MEM64, PREF, IO = 0x40200, 0x140204, 0x2000, 0x40101

def igb_host(root):
    """A host with two 82576 ports, an I350, an 82574L, a virtio-net sharing its group, a host bridge."""
    device(root, "0000:00:00.0", 0x8086, 0x29c0, 0x060000, rev=2, group=0, numa=0)
    device(root, "0000:03:00.0", 0x8086, 0x10c9, 0x020000, sub=(0x8086, 0xa03c), driver="igb", group=5, numa=0,
           resources=[(0xfe800000, 0x20000, MEM), (0xfe400000, 0x400000, MEM), (0xe020, 0x20, IO), (0xfe8c4000, 0x4000, MEM)],
           nets=[("enp3s0f0", True)])
    device(root, "0000:03:00.1", 0x8086, 0x10c9, 0x020000, sub=(0x8086, 0xa03c), driver="vfio-pci", group=6,
           resources=[(0xfe820000, 0x20000, MEM), (0, 0, 0), (0xe000, 0x20, IO), (0xfe8c0000, 0x4000, MEM)],
           override="vfio-pci")
    device(root, "0000:04:00.0", 0x8086, 0x1521, 0x020000, sub=(0x8086, 0x0001), group=7, numa=1,
           resources=[(0x38000000000, 0x100000, MEM64 | PREF)])
    device(root, "0000:05:00.0", 0x8086, 0x10d3, 0x020000, driver="e1000e", group=8,
           resources=[(0xfea00000, 0x20000, MEM)], nets=[("enp5s0", False)])
    device(root, "0000:06:00.0", 0x1af4, 0x1041, 0x020000, sub=(0x1af4, 0x1100), driver="virtio-pci", group=9,
           resources=[(0, 0, 0), (0xfeb00000, 0x1000, MEM), (0, 0, 0), (0, 0, 0), (0xfe000000, 0x4000, MEM64 | PREF)],
           virtio_child="virtio3", nets=[("eth3", False)])
    device(root, "0000:06:00.1", 0x8086, 0x293e, 0x040300, driver="snd_hda_intel", group=9)
    os.makedirs(os.path.join(root, "dev/vfio"), exist_ok=True)
    for name in ["vfio", "6"]:
        open(os.path.join(root, "dev/vfio", name), "w").close()

def no_iommu(root):
    """This machine's shape: a VM with virtio devices, a virtio-net with eth0 up, and no IOMMU."""
    device(root, "0000:00:00.0", 0x8086, 0x0d57, 0x060000)
    device(root, "0000:00:01.0", 0x1af4, 0x1045, 0xffff00, driver="virtio-pci")
    device(root, "0000:00:03.0", 0x1af4, 0x1041, 0x020000, sub=(0x1af4, 0x1041), driver="virtio-pci",
           resources=[(0x4000100000, 0x80000, MEM64)], virtio_child="virtio2", nets=[("eth0", True)])

def block(root, addr, path, disk, partitions=()):
    """A block device (and its partitions) below a PCI function, as sysfs shows them: a directory
    with a dev file and a subsystem link to class/block (nvme: nvme/nvme0/nvme0n1; ahci:
    ata1/host0/target0:0:0/0:0:0:0/block/sda)."""
    d = os.path.join(root, "sys/bus/pci/devices", addr, path, disk)
    for name, sub in [(disk, d)] + [(p, os.path.join(d, p)) for p in partitions]:
        os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, "dev"), "w") as f:
            f.write("259:%d\n" % len(name))
        if sub != d:
            with open(os.path.join(sub, "partition"), "w") as f:
                f.write(name[-1] + "\n")
        depth = sub[len(root):].count("/") - 1
        os.symlink("../" * depth + "sys/class/block", os.path.join(sub, "subsystem"))
    os.makedirs(os.path.join(root, "sys/class/block"), exist_ok=True)

def storage_host(root):
    """A host with an NVMe disk (mounted), a SATA controller with a disk, a NIC no miniport drives,
    and an 82576: what miniport-bind must refuse, and what it may bind."""
    device(root, "0000:00:00.0", 0x8086, 0x29c0, 0x060000, rev=2, group=0)
    device(root, "0000:01:00.0", 0x144d, 0xa808, 0x010802, driver="nvme", group=10,
           resources=[(0xfe600000, 0x4000, MEM64)])
    block(root, "0000:01:00.0", "nvme/nvme0", "nvme0n1", partitions=["nvme0n1p1", "nvme0n1p2"])
    device(root, "0000:00:1f.2", 0x8086, 0x2922, 0x010601, driver="ahci", group=11)
    block(root, "0000:00:1f.2", "ata1/host0/target0:0:0/0:0:0:0/block", "sda", partitions=["sda1"])
    device(root, "0000:02:00.0", 0x10ec, 0x8168, 0x020000, driver="r8169", group=12, nets=[("enp2s0", False)])
    device(root, "0000:03:00.0", 0x8086, 0x10c9, 0x020000, driver="igb", group=13, nets=[("enp3s0", False)])
    os.makedirs(os.path.join(root, "proc/self"), exist_ok=True)
    with open(os.path.join(root, "proc/self/mounts"), "w") as f:
        f.write("/dev/nvme0n1p2 / ext4 rw,relatime 0 0\n"
                "/dev/nvme0n1p1 /boot/efi vfat rw 0 0\n"
                "proc /proc proc rw 0 0\n"
                "/dev/sdb1 /mnt/usb vfat rw 0 0\n")

def no_network(root):
    """No network function at all."""
    device(root, "0000:00:00.0", 0x8086, 0x0d57, 0x060000)
    device(root, "0000:00:02.0", 0x1af4, 0x1042, 0x018000, driver="virtio-pci")

for name, build in [("igb-host", igb_host), ("no-iommu", no_iommu), ("no-network", no_network), ("storage-host", storage_host)]:
    shutil.rmtree(name, ignore_errors=True)
    build(name)
