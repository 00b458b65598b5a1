/// Everything `miniport list` shows about one function: libpci's ids and names, sysfs's binding
/// state, the bind verdict and the miniport that supports it.
public struct PCIDeviceInfo: Sendable, Equatable {
    public var address: PCIAddress
    public var vendorID: UInt16
    public var deviceID: UInt16
    public var subsystemVendorID: UInt16
    public var subsystemID: UInt16
    /// 24-bit class code (0x020000 = Ethernet controller).
    public var classCode: UInt32
    public var revision: UInt8
    public var vendorName: String?
    public var deviceName: String?
    public var className: String?
    public var subsystemName: String?
    public var driver: String?
    public var iommuGroup: Int?
    public var numaNode: Int?
    public var bars: [PCIBAR]
    public var driverOverride: String?
    public var interfaces: [NetworkInterface]
    public var bindability: Bindability
    public var support: SupportedDevice?

    public var isNetwork: Bool { classCode >> 16 == 0x02 }

    /// What to do about the function, in one sentence. Binding is advised only for a function a
    /// miniport of this build drives: a disk, or a NIC no miniport drives, stays with its driver.
    public var advice: String {
        switch bindability {
        case .unbound, .boundToOtherDriver, .interfaceUp, .groupNotViable:
            guard let support, support.status == .supported else {
                let ids = "\(Self.hex4(vendorID)):\(Self.hex4(deviceID))"
                if let support {
                    return "the \(support.miniport) miniport for \(ids) is planned, not in this build: leave it with its driver"
                }
                return "no miniport in this build drives \(ids): leave it with its driver"
            }
            return bindability.advice
        default:
            return bindability.advice
        }
    }

    static func hex4(_ v: UInt16) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: max(0, 4 - s.count)) + s
    }
}

/// Finds PCI functions: libpci for ids and names, sysfs for driver, IOMMU group, NUMA node, BARs.
public struct PCIDiscovery: Sendable {
    public var paths: HostPaths
    /// A PCI ID database to use instead of the system's (tests).
    public var idsFile: String?
    /// Ask udev's hwdb for names too (off in tests, so only `idsFile` decides).
    public var useHardwareDatabase: Bool
    public var supportTable: SupportTable

    public init(paths: HostPaths = .system, idsFile: String? = nil, useHardwareDatabase: Bool = true, supportTable: SupportTable = .empty) {
        self.paths = paths
        self.idsFile = idsFile
        self.useHardwareDatabase = useHardwareDatabase
        self.supportTable = supportTable
    }

    /// Every function, sorted by address.
    /// - Throws: ``PCIError`` if sysfs or the ID database cannot be read.
    public func functions() throws(PCIError) -> [PCIDeviceInfo] {
        let sysfs = PCISysfs(paths: paths)
        let libpci = try LibPCI(paths: paths, idsFile: idsFile, useHardwareDatabase: useHardwareDatabase)
        let named = try libpci.scan()
        var byAddress: [PCIAddress: LibPCIFunction] = [:]
        for function in named { byAddress[function.address] = function }
        var result: [PCIDeviceInfo] = []
        for address in try sysfs.addresses() {
            // A function that vanished between the two listings is skipped, not an error.
            guard let facts = try? sysfs.function(address) else { continue }
            result.append(merge(facts, byAddress[address], sysfs: sysfs, libpci: libpci))
        }
        return result
    }

    /// One function.
    /// - Throws: ``PCIError/noSuchDevice(_:sysfsDevices:)`` if it does not exist.
    public func function(_ address: PCIAddress) throws(PCIError) -> PCIDeviceInfo {
        let sysfs = PCISysfs(paths: paths)
        let facts = try sysfs.function(address)
        let libpci = try LibPCI(paths: paths, idsFile: idsFile, useHardwareDatabase: useHardwareDatabase)
        let named = try libpci.scan().first { $0.address == address }
        return merge(facts, named, sysfs: sysfs, libpci: libpci)
    }

    private func merge(_ facts: PCISysfsFunction, _ named: LibPCIFunction?, sysfs: PCISysfs, libpci: LibPCI) -> PCIDeviceInfo {
        let vendor = named?.vendorID ?? facts.vendorID
        let device = named?.deviceID ?? facts.deviceID
        return PCIDeviceInfo(
            address: facts.address,
            vendorID: vendor,
            deviceID: device,
            subsystemVendorID: facts.subsystemVendorID,
            subsystemID: facts.subsystemID,
            classCode: facts.classCode,
            revision: facts.revision,
            vendorName: named?.vendorName ?? libpci.vendorName(vendor),
            deviceName: named?.deviceName ?? libpci.deviceName(vendor: vendor, device: device),
            className: named?.className ?? libpci.className(facts.deviceClass),
            subsystemName: named?.subsystemName,
            driver: facts.driver,
            iommuGroup: facts.iommuGroup,
            numaNode: facts.numaNode,
            bars: facts.bars,
            driverOverride: facts.driverOverride,
            interfaces: facts.interfaces,
            bindability: sysfs.bindability(of: facts),
            support: supportTable.entry(vendorID: vendor, deviceID: device)
        )
    }
}
