import Foundation
import PCI

/// The fixture trees in Fixtures/ (written by Fixtures/make_fixtures.py).
enum Fixture {
    static var directory: String { Bundle.module.resourcePath! + "/Fixtures" }
    static func paths(_ name: String) -> HostPaths { HostPaths(root: directory + "/" + name) }
    static var idsFile: String { directory + "/pci.ids" }
    static func discovery(_ name: String) -> PCIDiscovery {
        PCIDiscovery(paths: paths(name), idsFile: idsFile, useHardwareDatabase: false)
    }

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
