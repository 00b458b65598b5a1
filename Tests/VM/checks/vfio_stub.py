"""A minimal VFIO user, Python standard library only, for the test bed's own checks in the guest.

It is not the project's driver (that is Sources/VFIO + the miniports, run through VMScenarios): it
exists so the test bed can prove, independently, that the NICs it hands out can be driven through
vfio-pci and the vIOMMU, and so its self-tests can break a driver step on purpose.

Ioctl numbers are _IO(';', 100 + n) from linux/vfio.h (VFIO_TYPE ';', VFIO_BASE 100).
"""

import ctypes
import fcntl
import mmap
import os
import struct


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
VFIO_DMA_MAP_FLAG_READ_WRITE = 3
BAR0 = 0
CONFIG = 7
PCI_COMMAND = 0x04
PCI_COMMAND_MEMORY = 1 << 1
PCI_COMMAND_MASTER = 1 << 2


class Device:
    """Container + group + device fd for one PCI address bound to vfio-pci."""

    def __init__(self, address):
        self.address = address
        sysdev = f"/sys/bus/pci/devices/{address}"
        self.group = os.path.basename(os.readlink(f"{sysdev}/iommu_group"))
        self.container = os.open("/dev/vfio/vfio", os.O_RDWR)
        self.api_version = fcntl.ioctl(self.container, VFIO_GET_API_VERSION)
        self.type1v2 = fcntl.ioctl(self.container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU)
        self.group_fd = os.open(f"/dev/vfio/{self.group}", os.O_RDWR)
        st = bytearray(struct.pack("II", 8, 0))
        fcntl.ioctl(self.group_fd, VFIO_GROUP_GET_STATUS, st)
        self.group_flags = struct.unpack("II", st)[1]
        fcntl.ioctl(self.group_fd, VFIO_GROUP_SET_CONTAINER, bytearray(struct.pack("i", self.container)))
        fcntl.ioctl(self.container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)
        self.fd = fcntl.ioctl(self.group_fd, VFIO_GROUP_GET_DEVICE_FD, bytearray(address.encode() + b"\0"))
        info = bytearray(struct.pack("IIIIII", 24, 0, 0, 0, 0, 0))
        fcntl.ioctl(self.fd, VFIO_DEVICE_GET_INFO, info)
        _, self.flags, self.num_regions, self.num_irqs, _, _ = struct.unpack("IIIIII", info)
        self._maps = []
        self._bars = []

    def region(self, index):
        """(flags, size, offset) of a region."""
        buf = bytearray(struct.pack("IIIIQQ", 32, 0, index, 0, 0, 0))
        fcntl.ioctl(self.fd, VFIO_DEVICE_GET_REGION_INFO, buf)
        _, flags, _, _, size, offset = struct.unpack("IIIIQQ", buf)
        return flags, size, offset

    def config_read(self, offset, size):
        return os.pread(self.fd, size, self.region(CONFIG)[2] + offset)

    def config_write(self, offset, data):
        os.pwrite(self.fd, data, self.region(CONFIG)[2] + offset)

    def set_command_bits(self, bits, on=True):
        cmd = struct.unpack("<H", self.config_read(PCI_COMMAND, 2))[0]
        cmd = (cmd | bits) if on else (cmd & ~bits)
        self.config_write(PCI_COMMAND, struct.pack("<H", cmd))
        return cmd

    def reset(self):
        fcntl.ioctl(self.fd, VFIO_DEVICE_RESET)

    def map_bar(self, index=BAR0):
        """BAR registers as a memoryview of 32-bit words (loads and stores are 32-bit, aligned)."""
        flags, size, offset = self.region(index)
        if not flags & VFIO_REGION_INFO_FLAG_MMAP:
            raise OSError(f"{self.address}: BAR{index} cannot be mmapped (flags 0x{flags:x})")
        m = mmap.mmap(self.fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=offset)
        self._bars.append(m)
        return memoryview(m).cast("I")

    def dma(self, size):
        """Anonymous memory mapped through the IOMMU at IOVA = its virtual address: (buffer, iova)."""
        buf = mmap.mmap(-1, size, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | mmap.MAP_POPULATE)
        vaddr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
        fcntl.ioctl(self.container, VFIO_IOMMU_MAP_DMA,
                    bytearray(struct.pack("IIQQQ", 32, VFIO_DMA_MAP_FLAG_READ_WRITE, vaddr, vaddr, size)))
        self._maps.append((vaddr, size))
        return buf, vaddr

    def unmap(self, iova, size):
        um = bytearray(struct.pack("IIQQ", 24, 0, iova, size))
        fcntl.ioctl(self.container, VFIO_IOMMU_UNMAP_DMA, um)
        self._maps = [m for m in self._maps if m[0] != iova]
        return struct.unpack("IIQQ", um)[3]
