/// One PCI id a miniport drives (or will).
public struct SupportedDevice: Sendable, Equatable, Codable {
    public enum Status: String, Sendable, Codable {
        /// A miniport exists for it.
        case supported
        /// Planned; listed so `miniport list` can say so.
        case planned
    }

    public var vendorID: UInt16
    public var deviceID: UInt16
    /// Name of the miniport (`igb`, `e1000e`, `virtio-net`).
    public var miniport: String
    /// Chip or board name (`82576`, `I350`).
    public var model: String
    public var status: Status

    public init(vendorID: UInt16, deviceID: UInt16, miniport: String, model: String, status: Status = .supported) {
        self.vendorID = vendorID
        self.deviceID = deviceID
        self.miniport = miniport
        self.model = model
        self.status = status
    }
}

/// Which miniport drives which PCI id, as discovery reports it. A value; the build's table comes
/// from the driver registry (`MiniportRegistry.supportTable`), which adds each family's ids.
public struct SupportTable: Sendable, Equatable {
    public private(set) var entries: [SupportedDevice]

    public init(entries: [SupportedDevice]) {
        self.entries = []
        add(entries)
    }

    /// Adds entries; a later entry for the same vendor:device replaces the earlier one.
    public mutating func add(_ more: [SupportedDevice]) {
        for entry in more {
            entries.removeAll { $0.vendorID == entry.vendorID && $0.deviceID == entry.deviceID }
            entries.append(entry)
        }
    }

    /// The entry for a vendor:device pair, `nil` if no miniport knows it.
    public func entry(vendorID: UInt16, deviceID: UInt16) -> SupportedDevice? {
        entries.first { $0.vendorID == vendorID && $0.deviceID == deviceID }
    }

    /// No entries: discovery without a registry knows no miniport. The list of what this build
    /// drives is `MiniportRegistry.supportTable`, derived from each miniport family's own ids.
    public static let empty = SupportTable(entries: [])
}
