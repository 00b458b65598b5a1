import Foundation
import Testing
import PCI

@Suite("LibPCI")
struct LibPCITests {
    @Test func scanningAFixtureTreeGivesIdsClassesAndNamesFromTheGivenIdsFile() throws {
        let libpci = try LibPCI(paths: Fixture.paths("igb-host"), idsFile: Fixture.idsFile, useHardwareDatabase: false)
        let functions = try libpci.scan()
        #expect(functions.count == 7)
        let igb = try #require(functions.first { $0.address == Fixture.address("03:00.0") })
        #expect(igb.vendorID == 0x8086 && igb.deviceID == 0x10C9 && igb.deviceClass == 0x0200)
        #expect(igb.vendorName == "Intel Corporation (fixture)")
        #expect(igb.deviceName == "82576 Gigabit Network Connection (fixture)")
        #expect(igb.className == "Ethernet controller")
        #expect(igb.subsystemVendorID == 0x8086 && igb.subsystemID == 0xA03C)
        #expect(igb.subsystemName == "Gigabit ET Dual Port Server Adapter (fixture)")
    }

    @Test func anIdMissingFromTheDatabaseHasNoName() throws {
        let libpci = try LibPCI(paths: Fixture.paths("igb-host"), idsFile: Fixture.idsFile, useHardwareDatabase: false)
        #expect(libpci.deviceName(vendor: 0x8086, device: 0xFFFE) == nil)
        #expect(libpci.vendorName(0x1234) == nil)
        #expect(libpci.className(0x0200) == "Ethernet controller")
    }

    @Test func aFunctionMissingAFileLibpciNeedsIsAnErrorNotAnExit() throws {
        let root = try Fixture.copy("igb-host")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let classFile = root + "/sys/bus/pci/devices/0000:05:00.0/class"
        try FileManager.default.removeItem(atPath: classFile)
        let libpci = try LibPCI(paths: HostPaths(root: root), idsFile: Fixture.idsFile, useHardwareDatabase: false)
        let expected = PCIError.incompleteSysfs(Fixture.address("05:00.0"), missing: classFile)
        #expect(throws: expected) { try libpci.scan() }
        #expect(expected.description.contains("0000:05:00.0"))
        #expect(expected.description.contains("class is missing"))
    }

    @Test func anUnreadableIdsFileIsNamedWithTheFix() {
        let expected = PCIError.idsFileUnreadable(path: "/nonexistent/pci.ids")
        #expect(throws: expected) { try LibPCI(paths: Fixture.paths("igb-host"), idsFile: "/nonexistent/pci.ids") }
        #expect(expected.description.contains("/nonexistent/pci.ids"))
        #expect(expected.description.contains("apt-get install pci.ids"))
    }

    @Test func aMissingSysfsTreeIsAnErrorNotAnExit() throws {
        let libpci = try LibPCI(paths: HostPaths(root: "/nonexistent-miniport-root"), idsFile: Fixture.idsFile)
        #expect(throws: PCIError.noSysfs(path: "/nonexistent-miniport-root/sys/bus/pci/devices")) { try libpci.scan() }
    }

    @Test func thisMachinesOwnPCIFunctionsHaveVendorNames() throws {
        guard FileManager.default.fileExists(atPath: "/sys/bus/pci/devices"),
              FileManager.default.fileExists(atPath: "/usr/share/misc/pci.ids") else {
            print("skipped: this machine has no /sys/bus/pci or no /usr/share/misc/pci.ids")
            return
        }
        let functions = try LibPCI().scan()
        let sysfsCount = try PCISysfs().addresses().count
        #expect(functions.count == sysfsCount)
        #expect(functions.allSatisfy { $0.vendorName != nil })
    }
}
