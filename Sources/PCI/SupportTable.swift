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

/// Which miniport drives which PCI id. A value, so a driver module can add its ids
/// (`var table = SupportTable.builtIn; table.add(IGB.extraDevices)`).
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

    /// 82576 physical functions (igb's e1000_hw.h device ids; the VF 0x10CA is igbvf's, not ours).
    public static let igb82576: [SupportedDevice] = [
        (0x10C9, "82576"), (0x10E6, "82576 fiber"), (0x10E7, "82576 SerDes"), (0x10E8, "82576 quad copper"),
        (0x1526, "82576 quad copper ET2"), (0x150A, "82576 NS"), (0x1518, "82576 NS SerDes"), (0x150D, "82576 SerDes quad"),
    ].map { SupportedDevice(vendorID: 0x8086, deviceID: $0.0, miniport: "igb", model: $0.1) }

    /// I350 physical functions.
    public static let igbI350: [SupportedDevice] = [
        (0x1521, "I350 copper"), (0x1522, "I350 fiber"), (0x1523, "I350 SerDes"), (0x1524, "I350 SGMII"),
    ].map { SupportedDevice(vendorID: 0x8086, deviceID: $0.0, miniport: "igb", model: $0.1) }

    /// Miniports on the plan: e1000e for the 82574L and modern virtio-net.
    public static let planned: [SupportedDevice] = [
        SupportedDevice(vendorID: 0x8086, deviceID: 0x10D3, miniport: "e1000e", model: "82574L", status: .planned),
        SupportedDevice(vendorID: 0x1AF4, deviceID: 0x1041, miniport: "virtio-net", model: "virtio 1.0 net", status: .planned),
    ]

    /// Everything this build knows.
    public static let builtIn = SupportTable(entries: igb82576 + igbI350 + planned)
}
