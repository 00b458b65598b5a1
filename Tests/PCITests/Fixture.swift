import Foundation
import PCI

/// The fixture trees in Fixtures/ (written by Fixtures/make_fixtures.py).
enum Fixture {
    static var directory: String { Bundle.module.resourcePath! + "/Fixtures" }
    static func paths(_ name: String) -> HostPaths { HostPaths(root: directory + "/" + name) }
    static var idsFile: String { directory + "/pci.ids" }
    static func discovery(_ name: String) -> PCIDiscovery {
        PCIDiscovery(paths: paths(name), idsFile: idsFile, useHardwareDatabase: false, supportTable: table)
    }

    /// A support table like the registry's (which PCI cannot see): one driven id, two planned.
    static let table = SupportTable(entries: [
        SupportedDevice(vendorID: 0x8086, deviceID: 0x10C9, miniport: "igb", model: "82576"),
        SupportedDevice(vendorID: 0x8086, deviceID: 0x10D3, miniport: "e1000e", model: "82574L", status: .planned),
        SupportedDevice(vendorID: 0x1AF4, deviceID: 0x1041, miniport: "virtio-net", model: "virtio 1.0 net", status: .planned),
    ])

    /// A private copy of a fixture tree that a test may change.
    static func copy(_ name: String) throws -> String {
        let target = NSTemporaryDirectory() + "miniport-fixture-\(UUID().uuidString)"
        try FileManager.default.copyItem(atPath: directory + "/" + name, toPath: target)
        return target
    }

    static func address(_ text: String) -> PCIAddress {
        try! PCIAddress(parsing: text)
    }
}
