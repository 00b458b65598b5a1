import Testing
import PCI

@Suite("PCIDiscovery")
struct DiscoveryTests {
    @Test func discoveryMergesNamesSysfsFactsVerdictsAndSupport() throws {
        let functions = try Fixture.discovery("igb-host").functions()
        #expect(functions.count == 7)
        let igb = try #require(functions.first { $0.address == Fixture.address("03:00.1") })
        #expect(igb.deviceName == "82576 Gigabit Network Connection (fixture)")
        #expect(igb.driver == "vfio-pci" && igb.iommuGroup == 6)
        #expect(igb.bindability == .boundToVFIO)
        #expect(igb.support?.miniport == "igb")
        #expect(functions.filter(\.isNetwork).count == 5)
    }

    @Test func oneFunctionCanBeLookedUpAndAMissingOneIsNamed() throws {
        let discovery = Fixture.discovery("igb-host")
        #expect(try discovery.function(Fixture.address("04:00.0")).deviceName == "I350 Gigabit Network Connection (fixture)")
        #expect(throws: PCIError.noSuchDevice(Fixture.address("07:00.0"), sysfsDevices: Fixture.paths("igb-host").pciDevices)) {
            try discovery.function(Fixture.address("07:00.0"))
        }
    }

    @Test func aMachineWithoutIOMMUStillListsItsFunctions() throws {
        let functions = try Fixture.discovery("no-iommu").functions()
        #expect(functions.map(\.address.description) == ["0000:00:00.0", "0000:00:01.0", "0000:00:03.0"])
        let net = try #require(functions.first { $0.isNetwork })
        #expect(net.interfaces.map(\.name) == ["eth0"])
        #expect(net.bindability == .noIOMMUGroup)
        #expect(net.support?.status == .planned)
    }
}
