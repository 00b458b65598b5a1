import Testing
import PCI

@Suite("SupportTable")
struct SupportTableTests {
    @Test func discoveryWithoutARegistryClaimsNothing() {
        #expect(SupportTable.empty.entries.isEmpty)
        #expect(PCIDiscovery().supportTable.entries.isEmpty)
    }

    @Test func aDriverCanAddOrReplaceEntries() {
        var table = Fixture.table
        table.add([SupportedDevice(vendorID: 0x8086, deviceID: 0x10D3, miniport: "e1000e", model: "82574L")])
        #expect(table.entry(vendorID: 0x8086, deviceID: 0x10D3)?.status == .supported)
        #expect(table.entries.count == Fixture.table.entries.count)
        #expect(table.entry(vendorID: 0x8086, deviceID: 0x10CA) == nil)
    }
}
