import Glibc
import PCI

/// Why a VFIO operation failed. Each message names the device or file and what to do.
public enum VFIOError: Error, Equatable, CustomStringConvertible {
    /// Address parsing or discovery failed (wrong address, no such device).
    case pci(PCIError)
    /// The function is bound to another driver (or none).
    case notBoundToVFIO(PCIAddress, driver: String?)
    /// The function has no IOMMU group: the IOMMU is off.
    case iommuOff(PCIAddress)
    /// The function's group is vfio's no-IOMMU group and the caller did not opt in.
    case noIOMMUModeRefused(PCIAddress, group: Int)
    /// Other devices of the group are bound to drivers VFIO does not accept.
    case groupNotViable(PCIAddress, group: Int, offenders: [GroupMember])
    /// open(2) of a /dev/vfio node failed with EACCES or EPERM.
    case noPermission(path: String, device: PCIAddress?)
    /// /dev/vfio/N does not exist although sysfs names group N.
    case groupNodeMissing(path: String, device: PCIAddress)
    /// /dev/vfio/vfio does not exist: the vfio modules are not loaded.
    case vfioUnavailable(path: String)
    /// The group is open in another process.
    case groupBusy(path: String, device: PCIAddress)
    /// VFIO_GET_API_VERSION answered something other than VFIO_API_VERSION.
    case unsupportedAPIVersion(Int32)
    /// The container offers neither type-1 IOMMU (nor the no-IOMMU type when that was asked for).
    case noType1IOMMU(path: String)
    /// RLIMIT_MEMLOCK is below what pinning the DMA memory needs.
    case memlockTooLow(needed: Int, limit: Int)
    /// 2 MiB hugepages were required but none could be had.
    case noHugepages(requested: Int)
    /// BAR `bar` cannot be memory-mapped (an I/O BAR, empty, or not offered for mmap).
    case barNotMappable(PCIAddress, bar: Int)
    /// The device offers no function-level reset through VFIO.
    case resetNotSupported(PCIAddress)
    /// More MSI-X vectors were asked for than the device has.
    case msixUnavailable(PCIAddress, requested: Int, available: Int)
    /// A config-space access outside the 4 KiB extended config space.
    case configOutOfRange(PCIAddress, offset: Int)
    /// freeDMA of a region this allocator does not hold.
    case unknownDMARegion(id: UInt32)
    /// No free IOVA range of this size inside the container's valid ranges.
    case iovaExhausted(length: Int)
    /// The device (or allocator) was used after close().
    case closed(String)
    /// Memory for DMA could not be allocated.
    case outOfMemory(requested: Int, errno: Int32)
    /// A system call failed.
    case system(call: String, target: String, errno: Int32)

    public var description: String {
        switch self {
        case let .pci(error):
            return error.description
        case let .notBoundToVFIO(address, driver?):
            return "\(address) is bound to \(driver), not vfio-pci: run udev/miniport-bind \(address)"
        case let .notBoundToVFIO(address, nil):
            return "\(address) is bound to no driver, not vfio-pci: run udev/miniport-bind \(address)"
        case let .iommuOff(address):
            return "\(address) has no IOMMU group: the IOMMU is off. Add intel_iommu=on iommu=pt (Intel) or amd_iommu=on iommu=pt (AMD) to the kernel command line (GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub) and reboot"
        case let .noIOMMUModeRefused(address, group):
            return "\(address) is in vfio's unsafe no-IOMMU group \(group): the device could DMA anywhere in memory. Turn the IOMMU on (intel_iommu=on / amd_iommu=on iommu=pt), or opt in with allowNoIOMMU (--unsafe-noiommu) if you accept the risk"
        case let .groupNotViable(address, group, offenders):
            let list = offenders.isEmpty
                ? "a device the kernel does not accept"
                : offenders.map { "\($0.address) (bound to \($0.driver ?? "no driver"))" }.joined(separator: ", ")
            return "IOMMU group \(group) of \(address) is not viable: it also holds \(list). Every device of the group must be bound to vfio-pci or to no driver: run udev/miniport-bind for each, or move the NIC to a slot with its own group"
        case let .noPermission(path, device):
            let of = device.map { " (for \($0))" } ?? ""
            return "no permission to open \(path)\(of): install udev/70-miniport-vfio.rules into /etc/udev/rules.d, add yourself to the group `miniport` (usermod -aG miniport $USER, then log in again), or run as root"
        case let .groupNodeMissing(path, device):
            return "\(path) does not exist although \(device) is in that IOMMU group: load vfio-pci (modprobe vfio-pci) and bind the device with udev/miniport-bind \(device)"
        case let .vfioUnavailable(path):
            return "\(path) does not exist: load the VFIO modules (modprobe vfio-pci) and bind the device with udev/miniport-bind"
        case let .groupBusy(path, device):
            return "\(path) for \(device) is already open in another process (a VM or another miniport): stop that process first"
        case let .unsupportedAPIVersion(version):
            return "the kernel's VFIO API version is \(version), miniport needs \(VFIOConstants.apiVersion): use a Linux kernel with the standard VFIO interface"
        case let .noType1IOMMU(path):
            return "\(path) offers no type-1 IOMMU: the IOMMU is off or unsupported. Add intel_iommu=on iommu=pt (Intel) or amd_iommu=on iommu=pt (AMD) to the kernel command line"
        case let .memlockTooLow(needed, limit):
            return "pinning DMA memory needs a memlock limit of at least \(Self.size(needed)) but RLIMIT_MEMLOCK is \(Self.size(limit)): raise it with `ulimit -l unlimited` (or ulimit -l \(needed / 1024)) in the shell, a line `@miniport - memlock unlimited` in /etc/security/limits.conf, or LimitMEMLOCK=infinity in the systemd unit"
        case let .noHugepages(requested):
            return "no free 2 MiB hugepages for \(Self.size(requested)) of DMA memory: reserve some with `echo 64 > /proc/sys/vm/nr_hugepages` (as root; vm.nr_hugepages=64 in /etc/sysctl.d to keep it), or allow the 4 KiB fallback"
        case let .barNotMappable(address, bar):
            return "BAR \(bar) of \(address) cannot be memory-mapped (empty, an I/O BAR, or not offered for mmap by vfio-pci): use a memory BAR the miniport's datasheet names"
        case let .resetNotSupported(address):
            return "\(address) offers no reset through VFIO (no FLR or other reset method): reset it through its own registers (CTRL.RST) instead"
        case let .msixUnavailable(address, requested, available):
            return "\(address) has \(available) MSI-X vectors, \(requested) were asked for: ask for at most \(available)"
        case let .configOutOfRange(address, offset):
            return "config-space offset \(offset) of \(address) is outside 0..<4096: fix the offset"
        case let .unknownDMARegion(id):
            return "DMA region \(id) is not held by this allocator (freed twice, or from another device): free each region once, with the allocator that made it"
        case let .iovaExhausted(length):
            return "no free IOVA range of \(Self.size(length)) inside the container's valid ranges: free DMA memory first or allocate less"
        case let .closed(what):
            return "\(what) is closed: open the device again"
        case let .outOfMemory(requested, err):
            return "cannot allocate \(Self.size(requested)) for DMA: \(String(cString: strerror(err))): free memory or allocate less"
        case let .system(call, target, err):
            return "\(call) on \(target) failed: \(String(cString: strerror(err))) (errno \(err))"
        }
    }

    /// Bytes as KiB / MiB / GiB for messages.
    static func size(_ bytes: Int) -> String {
        if bytes >= 1 << 30 && bytes % (1 << 30) == 0 { return "\(bytes >> 30) GiB" }
        if bytes >= 1 << 20 && bytes % (1 << 20) == 0 { return "\(bytes >> 20) MiB" }
        if bytes >= 1 << 10 && bytes % (1 << 10) == 0 { return "\(bytes >> 10) KiB" }
        return "\(bytes) bytes"
    }
}

/// VFIO constants from linux/vfio.h that Swift imports as plain integers, named for our use.
enum VFIOConstants {
    static let apiVersion: Int32 = 0  // VFIO_API_VERSION
    static let type1IOMMU: UInt = 1  // VFIO_TYPE1_IOMMU
    static let type1v2IOMMU: UInt = 3  // VFIO_TYPE1v2_IOMMU
    static let noIOMMU: UInt = 8  // VFIO_NOIOMMU_IOMMU
    static let groupViable: UInt32 = 1 << 0  // VFIO_GROUP_FLAGS_VIABLE
    static let deviceFlagsReset: UInt32 = 1 << 0  // VFIO_DEVICE_FLAGS_RESET
    static let regionFlagMmap: UInt32 = 1 << 2  // VFIO_REGION_INFO_FLAG_MMAP
    static let iommuInfoCaps: UInt32 = 1 << 1  // VFIO_IOMMU_INFO_CAPS
    static let capIOVARange: UInt16 = 1  // VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE
    static let dmaMapRead: UInt32 = 1 << 0  // VFIO_DMA_MAP_FLAG_READ
    static let dmaMapWrite: UInt32 = 1 << 1  // VFIO_DMA_MAP_FLAG_WRITE
    static let irqSetDataNone: UInt32 = 1 << 0  // VFIO_IRQ_SET_DATA_NONE
    static let irqSetDataEventfd: UInt32 = 1 << 2  // VFIO_IRQ_SET_DATA_EVENTFD
    static let irqSetActionTrigger: UInt32 = 1 << 5  // VFIO_IRQ_SET_ACTION_TRIGGER
    static let configRegionIndex: UInt32 = 7  // VFIO_PCI_CONFIG_REGION_INDEX
    static let msixIRQIndex: UInt32 = 2  // VFIO_PCI_MSIX_IRQ_INDEX
}
