import Testing
import PCI

@Suite("SupportTable")
struct SupportTableTests {
    @Test(arguments: [0x10C9, 0x10E6, 0x10E7, 0x10E8, 0x1526, 0x150A, 0x1518, 0x150D, 0x1521, 0x1522, 0x1523, 0x1524] as [UInt16])
    func every82576AndI350IdIsDrivenByIGB(device: UInt16) throws {
        let entry = try #require(SupportTable.builtIn.entry(vendorID: 0x8086, deviceID: device))
        #expect(entry.miniport == "igb" && entry.status == .supported)
    }

    @Test func e1000eAndVirtioNetArePlanned() {
        #expect(SupportTable.builtIn.entry(vendorID: 0x8086, deviceID: 0x10D3)?.status == .planned)
        #expect(SupportTable.builtIn.entry(vendorID: 0x1AF4, deviceID: 0x1041)?.miniport == "virtio-net")
    }

    @Test func the82576VirtualFunctionIsNotClaimed() {
        #expect(SupportTable.builtIn.entry(vendorID: 0x8086, deviceID: 0x10CA) == nil)
    }

    @Test func aDriverCanAddOrReplaceEntries() {
        var table = SupportTable.builtIn
        table.add([SupportedDevice(vendorID: 0x8086, deviceID: 0x10D3, miniport: "e1000e", model: "82574L")])
        #expect(table.entry(vendorID: 0x8086, deviceID: 0x10D3)?.status == .supported)
        #expect(table.entries.count == SupportTable.builtIn.entries.count)
    }
}
