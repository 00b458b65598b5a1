import DriverKit
import Foundation
import IGB
import MiniportRegistry
import NDIS
import PCI
import Testing

@Suite("MiniportRegistry")
struct RegistryTests {
    @Test func listClaimsExactlyTheIdsTheIGBMiniportAccepts() throws {
        let table = MiniportRegistry.supportTable
        let igb = table.entries.filter { $0.miniport == "igb" }
        #expect(Set(igb.map(\.deviceID)) == Set(IGBDeviceID.supported.map(\.id)))
        for entry in igb {
            #expect(entry.status == .supported)
            #expect(IGBDeviceID.isSupported(vendor: entry.vendorID, device: entry.deviceID))
        }
        // The 82576 fiber/SerDes ids the old table claimed are not driven: not listed.
        for id: UInt16 in [0x10E6, 0x10E7, 0x10E8, 0x1526, 0x150A, 0x1518, 0x150D, 0x10CA] {
            #expect(table.entry(vendorID: 0x8086, deviceID: id) == nil)
        }
    }

    @Test func everyClaimedIdHasExactlyOneFamily() {
        var seen = Set<UInt32>()
        for family in MiniportRegistry.families {
            for d in family.devices {
                #expect(seen.insert(UInt32(d.vendorID) << 16 | UInt32(d.deviceID)).inserted, "\(family.name) claims an id twice")
                #expect(MiniportRegistry.family(vendorID: d.vendorID, deviceID: d.deviceID)?.name == family.name)
            }
        }
        #expect(MiniportRegistry.family(vendorID: 0x8086, deviceID: 0x10D3) == nil)
        #expect(MiniportRegistry.supportTable.entry(vendorID: 0x8086, deviceID: 0x10D3)?.status == .planned)
    }

    @Test func theModelNICOpensThroughItsFamilyAndClosesClean() throws {
        let opened = try AdapterOpener.openModel(nic: "igb", name: "registry-test")
        #expect(opened.family == "igb")
        #expect(opened.adapter.attributes?.permanentAddress == AdapterOpener.modelMAC)
        // Opened Paused (receive off) so the caller sets filters and queues first; start runs it.
        #expect(opened.adapter.state == .paused)
        try opened.start()
        #expect(opened.adapter.state == .running)
        let (report, left) = opened.close()
        #expect(report.isClean, "\(report)")
        #expect(left == 0)
    }

    @Test func anUnknownModelNICIsNamedWithTheChoices() {
        #expect(throws: OpenError.unknownModel("e1000")) { try AdapterOpener.openModel(nic: "e1000") }
        #expect(OpenError.unknownModel("e1000").description.contains("igb"))
    }

    @Test func aDeviceNoFamilyClaimsIsRefusedByIdBeforeVFIO() throws {
        let root = NSTemporaryDirectory() + "miniport-registry-\(UUID().uuidString)"
        let dir = root + "/0000:00:05.0"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        try "0x8086\n".write(toFile: dir + "/vendor", atomically: true, encoding: .utf8)
        try "0x10d3\n".write(toFile: dir + "/device", atomically: true, encoding: .utf8)
        #expect(throws: OpenError.noMiniport("0000:00:05.0", 0x8086, 0x10D3)) { try AdapterOpener.openDevice("00:05.0", sysfs: root) }
        let text = OpenError.noMiniport("0000:00:05.0", 0x8086, 0x10D3).description
        #expect(text.contains("8086:10d3") && text.contains("igb (8086:10c9"))
        #expect(throws: OpenError.unknownDevice("0000:00:06.0")) { try AdapterOpener.openDevice("00:06.0", sysfs: root) }
        #expect(throws: OpenError.badAddress("zz")) { try AdapterOpener.openDevice("zz", sysfs: root) }
    }
}

@Suite("MiniportRegistry: virtio-net")
struct VirtioRegistryTests {
    @Test func modernVirtioNetIsDrivenAndTheLegacyDeviceIsRefusedWithTheFix() throws {
        #expect(MiniportRegistry.family(vendorID: 0x1AF4, deviceID: 0x1041)?.name == "virtio-net")
        #expect(MiniportRegistry.supportTable.entry(vendorID: 0x1AF4, deviceID: 0x1041)?.status == .supported)
        #expect(MiniportRegistry.family(vendorID: 0x1AF4, deviceID: 0x1000) == nil)
        let reason = try #require(MiniportRegistry.refusal(vendorID: 0x1AF4, deviceID: 0x1000))
        #expect(reason.contains("disable-legacy=on"))
        let root = NSTemporaryDirectory() + "miniport-registry-\(UUID().uuidString)"
        let dir = root + "/0000:00:07.0"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        try "0x1af4\n".write(toFile: dir + "/vendor", atomically: true, encoding: .utf8)
        try "0x1000\n".write(toFile: dir + "/device", atomically: true, encoding: .utf8)
        #expect(throws: OpenError.refused("0000:00:07.0", reason)) { try AdapterOpener.openDevice("00:07.0", sysfs: root) }
    }

    @Test func theVirtioNetModelNICOpensThroughItsFamily() throws {
        let opened = try AdapterOpener.openModel(nic: "virtio-net", name: "registry-virtio")
        #expect(opened.family == "virtio-net")
        try opened.start()
        let (report, left) = opened.close()
        #expect(report.isClean && left == 0)
    }
}
