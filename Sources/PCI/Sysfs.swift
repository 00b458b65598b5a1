/// One base address register as the kernel reports it in a function's `resource` file.
public struct PCIBAR: Sendable, Equatable, Codable {
    /// BAR number, 0...5.
    public var index: Int
    /// Bus address of the BAR (what the host sees; not used for DMA).
    public var start: UInt64
    /// Size in bytes.
    public var size: UInt64
    /// The kernel's IORESOURCE_* flags.
    public var flags: UInt64

    public init(index: Int, start: UInt64, size: UInt64, flags: UInt64) {
        self.index = index
        self.start = start
        self.size = size
        self.flags = flags
    }

    // IORESOURCE_* bits from the kernel's include/linux/ioport.h.
    public var isIO: Bool { flags & 0x100 != 0 }
    public var isMemory: Bool { flags & 0x200 != 0 }
    public var isPrefetchable: Bool { flags & 0x2000 != 0 }
    public var is64Bit: Bool { flags & 0x0010_0000 != 0 }
}

/// A network interface the kernel made for a function (`eth0`, `enp3s0`).
public struct NetworkInterface: Sendable, Equatable, Codable {
    public var name: String
    /// IFF_UP is set in the interface's `flags`.
    public var isUp: Bool
    /// `operstate` (up, down, unknown…), if readable.
    public var operState: String?

    public init(name: String, isUp: Bool, operState: String? = nil) {
        self.name = name
        self.isUp = isUp
        self.operState = operState
    }
}

/// What sysfs says about one PCI function.
public struct PCISysfsFunction: Sendable, Equatable {
    public var address: PCIAddress
    public var vendorID: UInt16
    public var deviceID: UInt16
    public var subsystemVendorID: UInt16
    public var subsystemID: UInt16
    /// 24-bit class code: base class, subclass, programming interface (0x020000 = Ethernet).
    public var classCode: UInt32
    public var revision: UInt8
    /// The driver bound now (`driver` link), `nil` if none.
    public var driver: String?
    /// The `iommu_group` link's number, `nil` if the function has none (IOMMU off).
    public var iommuGroup: Int?
    /// `numa_node`; `nil` when the kernel says -1 (no NUMA information).
    public var numaNode: Int?
    /// Non-empty BARs 0...5.
    public var bars: [PCIBAR]
    /// `driver_override`, `nil` when the kernel prints `(null)`.
    public var driverOverride: String?
    /// Network interfaces of the function (also those under a virtio child device).
    public var interfaces: [NetworkInterface]

    /// Base class 0x02: a network controller.
    public var isNetwork: Bool { classCode >> 16 == 0x02 }
    /// Base class and subclass (`0x0200`), the form libpci's class names use.
    public var deviceClass: UInt16 { UInt16(truncatingIfNeeded: classCode >> 8) }
}

/// Reads PCI facts from sysfs under a root directory, so tests can run against fixture trees.
public struct PCISysfs: Sendable {
    public var paths: HostPaths

    public init(paths: HostPaths = .system) {
        self.paths = paths
    }

    /// The sysfs directory of a function.
    public func directory(of address: PCIAddress) -> String {
        paths.pciDevices + "/" + address.description
    }

    /// Every function's address, sorted.
    /// - Throws: ``PCIError/noSysfs(path:)`` if the devices directory is missing.
    public func addresses() throws(PCIError) -> [PCIAddress] {
        guard let names = SysFile.list(paths.pciDevices) else { throw .noSysfs(path: paths.pciDevices) }
        return names.compactMap { try? PCIAddress(parsing: $0) }.sorted()
    }

    /// All facts about one function.
    /// - Throws: ``PCIError/noSuchDevice(_:sysfsDevices:)`` if the function does not exist.
    public func function(_ address: PCIAddress) throws(PCIError) -> PCISysfsFunction {
        let dir = directory(of: address)
        guard SysFile.isDirectory(dir) else {
            if !SysFile.isDirectory(paths.pciDevices) { throw .noSysfs(path: paths.pciDevices) }
            throw .noSuchDevice(address, sysfsDevices: paths.pciDevices)
        }
        func number(_ name: String) -> Int64? { SysFile.readInteger(dir + "/" + name) }
        guard let vendor = number("vendor") else { throw .incompleteSysfs(address, missing: dir + "/vendor") }
        guard let device = number("device") else { throw .incompleteSysfs(address, missing: dir + "/device") }
        let numa = number("numa_node").flatMap { $0 < 0 ? nil : Int($0) }
        var override = SysFile.readText(dir + "/driver_override")
        if override == "(null)" || override == "" { override = nil }
        return PCISysfsFunction(
            address: address,
            vendorID: UInt16(truncatingIfNeeded: vendor),
            deviceID: UInt16(truncatingIfNeeded: device),
            subsystemVendorID: UInt16(truncatingIfNeeded: number("subsystem_vendor") ?? 0),
            subsystemID: UInt16(truncatingIfNeeded: number("subsystem_device") ?? 0),
            classCode: UInt32(truncatingIfNeeded: number("class") ?? 0),
            revision: UInt8(truncatingIfNeeded: number("revision") ?? 0),
            driver: SysFile.linkName(dir + "/driver"),
            iommuGroup: SysFile.linkName(dir + "/iommu_group").flatMap { Int($0) },
            numaNode: numa,
            bars: Self.parseResource(SysFile.readText(dir + "/resource") ?? ""),
            driverOverride: override,
            interfaces: interfaces(in: dir)
        )
    }

    /// Parses a `resource` file: one `start end flags` line per resource, BARs 0...5 first.
    public static func parseResource(_ text: String) -> [PCIBAR] {
        var bars: [PCIBAR] = []
        for (index, line) in text.split(separator: "\n").prefix(6).enumerated() {
            let fields = line.split(separator: " ").compactMap { SysFile.parseInteger(String($0)).map { UInt64(bitPattern: $0) } }
            // An unused BAR reads 0 0 0; a size that wraps to 0 (end = all ones, start 0) is not a BAR either.
            guard fields.count == 3, fields[1] != 0, fields[1] >= fields[0] else { continue }
            let size = fields[1] &- fields[0] &+ 1
            guard size != 0 else { continue }
            bars.append(PCIBAR(index: index, start: fields[0], size: size, flags: fields[2]))
        }
        return bars
    }

    /// Interfaces in `net/` of the function, or of a virtio child (`virtio2/net/eth0`).
    func interfaces(in dir: String) -> [NetworkInterface] {
        var netDirs = [dir + "/net"]
        for child in SysFile.list(dir) ?? [] where child.hasPrefix("virtio") {
            netDirs.append(dir + "/" + child + "/net")
        }
        var result: [NetworkInterface] = []
        for netDir in netDirs {
            for name in SysFile.list(netDir) ?? [] {
                let ifDir = netDir + "/" + name
                // IFF_UP is bit 0 of the interface flags (linux/if.h).
                let flags = SysFile.readInteger(ifDir + "/flags") ?? 0
                result.append(NetworkInterface(name: name, isUp: flags & 1 != 0, operState: SysFile.readText(ifDir + "/operstate")))
            }
        }
        return result
    }

    /// Members of IOMMU group `group`, sorted.
    public func iommuGroupMembers(_ group: Int) -> [PCIAddress] {
        let names = SysFile.list(paths.iommuGroups + "/\(group)/devices") ?? []
        return names.compactMap { try? PCIAddress(parsing: $0) }.sorted()
    }

    /// The driver bound to `address`, `nil` if none.
    public func driver(of address: PCIAddress) -> String? {
        SysFile.linkName(directory(of: address) + "/driver")
    }

    /// True if the kernel made any IOMMU group (an IOMMU is on, or vfio's no-IOMMU mode made one).
    public var hasIOMMUGroups: Bool {
        !(SysFile.list(paths.iommuGroups) ?? []).isEmpty
    }

    /// True if group `group` is a fake group of vfio's no-IOMMU mode (the kernel names it `vfio-noiommu`).
    public func isNoIOMMUGroup(_ group: Int) -> Bool {
        SysFile.readText(paths.iommuGroups + "/\(group)/name") == "vfio-noiommu"
            || SysFile.exists(paths.devVFIO + "/noiommu-\(group)")
    }

    /// vfio's `enable_unsafe_noiommu_mode` module parameter (Y/N), `false` if vfio is not loaded.
    public var noIOMMUModeEnabled: Bool {
        SysFile.readText(paths.path("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode")) == "Y"
    }
}
