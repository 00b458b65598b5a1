import DriverKit
import IGB
import VirtioNet
import PCI

/// Which miniport family drives which PCI id: the one list `miniport list`, the CLI and the C API use.
///
/// A family declares its ids and its adapter factory (`MiniportFamily`); the registry lists the
/// families of this build. Adding a family is one line here (Docs/WRITING-A-MINIPORT.md).
public enum MiniportRegistry {
    /// Every miniport family in this build, in lookup order.
    public static let families: [any MiniportFamily.Type] = [IGBFamily.self, VirtioNetFamily.self]

    /// Ids on the plan: no miniport yet, listed so `miniport list` can say so.
    public static let planned: [SupportedDevice] = [
        SupportedDevice(vendorID: 0x8086, deviceID: 0x10D3, miniport: "e1000e", model: "82574L", status: .planned),
    ]

    /// The family that claims `vendorID:deviceID`, nil if none does.
    public static func family(vendorID: UInt16, deviceID: UInt16) -> (any MiniportFamily.Type)? {
        families.first { $0.claims(vendorID: vendorID, deviceID: deviceID) }
    }

    /// The family named `name` (`igb`, `virtio-net`).
    public static func family(named name: String) -> (any MiniportFamily.Type)? {
        families.first { $0.name == name }
    }

    /// The reason a family refuses an id it recognises (a legacy virtio device), nil otherwise.
    public static func refusal(vendorID: UInt16, deviceID: UInt16) -> String? {
        for family in families {
            if let reason = family.refusal(vendorID: vendorID, deviceID: deviceID) { return reason }
        }
        return nil
    }

    /// The support table for discovery: every claimed id as supported, then the planned ones
    /// (a claimed id replaces a planned entry for the same id).
    public static var supportTable: SupportTable {
        var table = SupportTable(entries: planned)
        for family in families {
            table.add(family.devices.map {
                SupportedDevice(vendorID: $0.vendorID, deviceID: $0.deviceID, miniport: family.name, model: $0.name)
            })
        }
        return table
    }

    /// One line naming what this build drives, for error messages.
    public static var summary: String {
        families.map { f in "\(f.name) (\(f.devices.map { hex4($0.vendorID) + ":" + hex4($0.deviceID) }.joined(separator: ", ")))" }
            .joined(separator: "; ")
    }

    static func hex4(_ v: UInt16) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: max(0, 4 - s.count)) + s
    }
}
