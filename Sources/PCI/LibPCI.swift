import CLibPCI
import Glibc

/// What libpci reports about one function: ids, class and names from the PCI ID database.
public struct LibPCIFunction: Sendable, Equatable {
    public var address: PCIAddress
    public var vendorID: UInt16
    public var deviceID: UInt16
    public var subsystemVendorID: UInt16
    public var subsystemID: UInt16
    /// Base class and subclass (0x0200 = Ethernet controller).
    public var deviceClass: UInt16
    public var vendorName: String?
    public var deviceName: String?
    public var className: String?
    public var subsystemName: String?
}

/// PCI enumeration and name lookup through libpci (pciutils).
///
/// libpci's sysfs back end reads `sysfs.path`/devices, so pointing `paths` at a fixture tree makes
/// the whole enumeration testable. libpci calls `exit` on a missing mandatory sysfs file; ``scan()``
/// checks those files first and throws instead.
public final class LibPCI {
    // Safety: owned here, created in init and released in deinit; never escapes.
    private let access: UnsafeMutablePointer<pci_access>
    public let paths: HostPaths
    /// Lookup flags: NO_NUMBERS makes an unknown id come back as `nil` rather than a hex string.
    private let lookupFlags: Int32

    /// Opens libpci on the sysfs under `paths`.
    /// - Parameters:
    ///   - paths: the root the sysfs tree is under (`/` on the real machine).
    ///   - idsFile: a PCI ID database to use instead of the system one (tests use a small fixture).
    ///   - useHardwareDatabase: also ask udev's hwdb; tests turn it off so only `idsFile` decides.
    /// - Throws: ``PCIError/idsFileUnreadable(path:)`` if `idsFile` cannot be read.
    public init(paths: HostPaths = .system, idsFile: String? = nil, useHardwareDatabase: Bool = true) throws(PCIError) {
        if let idsFile, SysFile.readBytes(idsFile, limit: 1) == nil { throw .idsFileUnreadable(path: idsFile) }
        guard let access = pci_alloc() else { fatalError("pci_alloc returned NULL (out of memory)") }
        self.access = access
        self.paths = paths
        var flags = Int32(PCI_LOOKUP_NO_NUMBERS.rawValue)
        if !useHardwareDatabase { flags |= Int32(PCI_LOOKUP_NO_HWDB.rawValue) }
        self.lookupFlags = flags
        access.pointee.method = UInt32(MINIPORT_PCI_ACCESS_SYS_BUS_PCI)
        _ = miniport_pci_set_param(access, "sysfs.path", paths.sysBusPCI)
        if let idsFile { miniport_pci_set_ids_file(access, idsFile) }
        pci_init(access)
    }

    deinit { pci_cleanup(access) }

    /// Enumerates every function with ids, class and names, sorted by address.
    /// - Throws: ``PCIError/noSysfs(path:)`` or ``PCIError/incompleteSysfs(_:missing:)``.
    public func scan() throws(PCIError) -> [LibPCIFunction] {
        try checkMandatoryFiles()
        pci_scan_bus(access)
        var result: [LibPCIFunction] = []
        var next = access.pointee.devices
        while let dev = next {
            next = dev.pointee.next
            let fill = Int32(PCI_FILL_IDENT | PCI_FILL_CLASS | PCI_FILL_SUBSYS)
            pci_fill_info(dev, fill)
            let d = dev.pointee
            let domain = d.domain_16 == 0xffff ? UInt16(truncatingIfNeeded: d.domain) : d.domain_16
            guard d.dev < 32, d.func < 8 else { continue }
            let address = PCIAddress(domain: domain, bus: d.bus, device: d.dev, function: d.func)
            let hasSubsys = d.known_fields & UInt32(PCI_FILL_SUBSYS) != 0
            result.append(LibPCIFunction(
                address: address,
                vendorID: d.vendor_id, deviceID: d.device_id,
                subsystemVendorID: hasSubsys ? d.subsys_vendor_id : 0,
                subsystemID: hasSubsys ? d.subsys_id : 0,
                deviceClass: d.device_class,
                vendorName: vendorName(d.vendor_id),
                deviceName: deviceName(vendor: d.vendor_id, device: d.device_id),
                className: className(d.device_class),
                subsystemName: hasSubsys && d.subsys_vendor_id != 0
                    ? subsystemName(vendor: d.vendor_id, device: d.device_id, subsystemVendor: d.subsys_vendor_id, subsystem: d.subsys_id)
                    : nil
            ))
        }
        return result.sorted { $0.address < $1.address }
    }

    /// libpci's sysfs back end exits the process when `vendor`, `device`, `class` or `resource`
    /// cannot be opened; look first so a half-present device becomes an error.
    private func checkMandatoryFiles() throws(PCIError) {
        guard let names = SysFile.list(paths.pciDevices) else { throw .noSysfs(path: paths.pciDevices) }
        for name in names {
            guard let address = try? PCIAddress(parsing: name) else { continue }
            for file in ["vendor", "device", "class", "resource", "irq"] {
                let path = paths.pciDevices + "/" + name + "/" + file
                if !SysFile.exists(path) { throw .incompleteSysfs(address, missing: path) }
            }
        }
    }

    public func vendorName(_ vendor: UInt16) -> String? {
        lookup { miniport_pci_lookup_vendor_flags(access, $0, $1, lookupFlags, UInt32(vendor)) }
    }

    public func deviceName(vendor: UInt16, device: UInt16) -> String? {
        lookup { miniport_pci_lookup_device_flags(access, $0, $1, lookupFlags, UInt32(vendor), UInt32(device)) }
    }

    /// Name of a base class + subclass (`0x0200` → "Ethernet controller").
    public func className(_ deviceClass: UInt16) -> String? {
        lookup { miniport_pci_lookup_class_flags(access, $0, $1, lookupFlags, UInt32(deviceClass)) }
    }

    public func subsystemName(vendor: UInt16, device: UInt16, subsystemVendor: UInt16, subsystem: UInt16) -> String? {
        lookup {
            miniport_pci_lookup_subsystem_flags(access, $0, $1, lookupFlags, UInt32(vendor), UInt32(device), UInt32(subsystemVendor), UInt32(subsystem))
        }
    }

    private func lookup(_ call: (UnsafeMutablePointer<CChar>, Int32) -> UnsafeMutablePointer<CChar>?) -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        return buffer.withUnsafeMutableBufferPointer { buf -> String? in
            // Safety: libpci writes at most `count` bytes, NUL-terminated, into the buffer or returns its own string.
            guard let result = call(buf.baseAddress!, Int32(buf.count)) else { return nil }
            return String(cString: result)
        }
    }
}
