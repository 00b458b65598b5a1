import Testing
import PCI

@Suite("PCISysfs")
struct PCISysfsTests {
    let sysfs = PCISysfs(paths: Fixture.paths("igb-host"))

    @Test func everyFunctionDirectoryIsListedInAddressOrder() throws {
        let addresses = try sysfs.addresses().map(\.description)
        #expect(addresses == ["0000:00:00.0", "0000:03:00.0", "0000:03:00.1", "0000:04:00.0", "0000:05:00.0", "0000:06:00.0", "0000:06:00.1"])
    }

    @Test func an82576PortReportsIdsDriverGroupNumaAndBars() throws {
        let f = try sysfs.function(Fixture.address("03:00.0"))
        #expect(f.vendorID == 0x8086 && f.deviceID == 0x10C9)
        #expect(f.subsystemVendorID == 0x8086 && f.subsystemID == 0xA03C)
        #expect(f.classCode == 0x020000 && f.isNetwork && f.deviceClass == 0x0200)
        #expect(f.revision == 1)
        #expect(f.driver == "igb")
        #expect(f.iommuGroup == 5)
        #expect(f.numaNode == 0)
        #expect(f.driverOverride == nil)
        #expect(f.bars.map(\.index) == [0, 1, 2, 3])
        #expect(f.bars.map(\.size) == [0x20000, 0x400000, 0x20, 0x4000])
        #expect(f.bars[0].isMemory && !f.bars[0].isIO)
        #expect(f.bars[2].isIO && !f.bars[2].isMemory)
        #expect(f.interfaces == [NetworkInterface(name: "enp3s0f0", isUp: true, operState: "up")])
    }

    @Test func aVFIOBoundPortReportsItsOverrideAndNoNumaNode() throws {
        let f = try sysfs.function(Fixture.address("0000:03:00.1"))
        #expect(f.driver == "vfio-pci")
        #expect(f.driverOverride == "vfio-pci")
        #expect(f.numaNode == nil)
        #expect(f.bars.map(\.index) == [0, 2, 3])
    }

    @Test func a64BitPrefetchableBarIsRecognised() throws {
        let bar = try #require(try sysfs.function(Fixture.address("04:00.0")).bars.first)
        #expect(bar.is64Bit && bar.isPrefetchable && bar.size == 0x100000)
        #expect(try sysfs.function(Fixture.address("04:00.0")).driver == nil)
    }

    @Test func interfacesUnderAVirtioChildDeviceAreFound() throws {
        let f = try sysfs.function(Fixture.address("06:00.0"))
        #expect(f.interfaces == [NetworkInterface(name: "eth3", isUp: false, operState: "down")])
    }

    @Test func groupMembersAreReadFromTheIOMMUGroupDirectory() {
        #expect(sysfs.iommuGroupMembers(9).map(\.description) == ["0000:06:00.0", "0000:06:00.1"])
        #expect(sysfs.iommuGroupMembers(42).isEmpty)
        #expect(sysfs.hasIOMMUGroups)
        #expect(!PCISysfs(paths: Fixture.paths("no-iommu")).hasIOMMUGroups)
    }

    @Test func aMissingFunctionIsNoSuchDeviceNamingTheAddress() {
        let address = Fixture.address("0000:09:00.0")
        let expected = PCIError.noSuchDevice(address, sysfsDevices: Fixture.paths("igb-host").pciDevices)
        #expect(throws: expected) { try sysfs.function(address) }
        #expect(expected.description.contains("no PCI function 0000:09:00.0"))
        #expect(expected.description.contains("miniport list --all"))
    }

    @Test func aRootWithoutSysfsSaysSysfsIsMissing() {
        let empty = PCISysfs(paths: HostPaths(root: "/nonexistent-miniport-root"))
        #expect(throws: PCIError.noSysfs(path: "/nonexistent-miniport-root/sys/bus/pci/devices")) { try empty.addresses() }
        #expect(PCIError.noSysfs(path: "/x").description.contains("mount -t sysfs"))
    }

    @Test func emptyResourceLinesAreSkippedAndSizesAreInclusive() {
        let text = """
        0x0000000000001000 0x0000000000001fff 0x0000000000040200
        0x0000000000000000 0x0000000000000000 0x0000000000000000
        0x000000000000e000 0x000000000000e01f 0x0000000000040101
        """
        #expect(PCISysfs.parseResource(text) == [
            PCIBAR(index: 0, start: 0x1000, size: 0x1000, flags: 0x40200),
            PCIBAR(index: 2, start: 0xe000, size: 0x20, flags: 0x40101),
        ])
    }

    @Test func hostPathsPutAbsolutePathsUnderTheRoot() {
        #expect(HostPaths(root: "/tmp/x/").path("/dev/vfio") == "/tmp/x/dev/vfio")
        #expect(HostPaths.system.path("/dev/vfio") == "/dev/vfio")
    }
}
