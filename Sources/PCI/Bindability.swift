/// A member of an IOMMU group and the driver it is bound to.
public struct GroupMember: Sendable, Equatable, Codable {
    public var address: PCIAddress
    public var driver: String?
    public init(address: PCIAddress, driver: String?) {
        self.address = address
        self.driver = driver
    }
}

/// Whether a function can be handed to vfio-pci, and if not, why.
public enum Bindability: Sendable, Equatable {
    /// Bound to vfio-pci and its group is viable: a miniport can open it now.
    case boundToVFIO
    /// No driver: `udev/miniport-bind` can bind it.
    case unbound
    /// Bound to another driver with no interface up: `udev/miniport-bind` can take it over.
    case boundToOtherDriver(String)
    /// Not a network function (base class is not 0x02).
    case notNetwork(classCode: UInt32)
    /// The function has no IOMMU group: the IOMMU is off.
    case noIOMMUGroup
    /// The function's group is vfio's no-IOMMU fake group: usable only with the unsafe opt-in.
    case noIOMMUMode(group: Int)
    /// Bound to a driver whose interfaces are up: binding would cut the host's traffic.
    case interfaceUp(driver: String, interfaces: [String])
    /// Other members of the IOMMU group are bound to drivers VFIO does not accept.
    case groupNotViable(group: Int, offenders: [GroupMember])

    /// True if binding (or using) the function needs no other change.
    public var isBindable: Bool {
        switch self {
        case .boundToVFIO, .unbound, .boundToOtherDriver: return true
        default: return false
        }
    }

    /// A short verdict for a table cell: "yes", "yes (vfio-pci)", "no: eth0 up (virtio-pci)".
    public var summary: String {
        switch self {
        case .boundToVFIO: return "yes (vfio-pci)"
        case .unbound: return "yes"
        case let .boundToOtherDriver(driver): return "yes (from \(driver))"
        case let .notNetwork(code): return "no: not network (class \(PCIClassCode.hex(code)))"
        case .noIOMMUGroup: return "no: IOMMU off"
        case let .noIOMMUMode(group): return "no: no-IOMMU group \(group) (unsafe)"
        case let .interfaceUp(driver, names): return "no: \(names.joined(separator: ",")) up (\(driver))"
        case let .groupNotViable(group, offenders):
            return "no: group \(group) shared with " + offenders.map { "\($0.address) (\($0.driver ?? "none"))" }.joined(separator: ", ")
        }
    }

    /// What to do about it, in one sentence.
    public var advice: String {
        switch self {
        case .boundToVFIO: return "ready: open it with --device"
        case .unbound, .boundToOtherDriver: return "bind it with udev/miniport-bind"
        case .notNetwork: return "miniport drives network functions only"
        case .noIOMMUGroup: return "turn the IOMMU on: kernel parameters intel_iommu=on iommu=pt (Intel) or amd_iommu=on iommu=pt (AMD)"
        case .noIOMMUMode: return "vfio is in unsafe no-IOMMU mode: turn the IOMMU on, or opt in knowingly"
        case let .interfaceUp(_, names): return "take \(names.joined(separator: ", ")) down first, or use udev/miniport-bind --force"
        case .groupNotViable: return "bind every device of the group to vfio-pci (udev/miniport-bind lists them) or move the NIC to another slot"
        }
    }
}

enum PCIClassCode {
    static func hex(_ code: UInt32) -> String {
        let digits = String(code, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, 6 - digits.count)) + digits
    }
}

/// Drivers the kernel lets stay bound in a group that a VFIO user owns: vfio-pci itself and the
/// drivers that declare `driver_managed_dma` (pci-stub, pcieport).
public let vfioCompatibleDrivers: Set<String> = ["vfio-pci", "pci-stub", "pcieport"]

extension PCISysfs {
    /// Members of `group` other than `address` that are bound to a driver VFIO does not accept.
    public func groupOffenders(group: Int, except address: PCIAddress? = nil) -> [GroupMember] {
        iommuGroupMembers(group).compactMap { member in
            guard member != address, let driver = driver(of: member), !vfioCompatibleDrivers.contains(driver) else { return nil }
            return GroupMember(address: member, driver: driver)
        }
    }

    /// The verdict for one function.
    public func bindability(of function: PCISysfsFunction) -> Bindability {
        guard function.isNetwork else { return .notNetwork(classCode: function.classCode) }
        guard let group = function.iommuGroup else { return .noIOMMUGroup }
        if isNoIOMMUGroup(group) { return .noIOMMUMode(group: group) }
        let offenders = groupOffenders(group: group, except: function.address)
        if !offenders.isEmpty { return .groupNotViable(group: group, offenders: offenders) }
        switch function.driver {
        case nil: return .unbound
        case "vfio-pci"?: return .boundToVFIO
        case let driver?:
            let up = function.interfaces.filter(\.isUp).map(\.name)
            return up.isEmpty ? .boundToOtherDriver(driver) : .interfaceUp(driver: driver, interfaces: up)
        }
    }
}
