import DeviceAccess
import IGB
import IGBModel
import NDIS
import Testing

/// OID_GEN_CURRENT_PACKET_FILTER on the IGB miniport: the 82576 drops in hardware what its
/// registers can express (VT_CTL.DIS_DEF_POOL, VMOLR.BAM/ROMPE/MPME, the MTA), the framework
/// the rest (the adapter's own address without `directed`).
@Suite("IGB packet filter on the model, per setting")
struct IGBPacketFilterTests {
    static let stranger = MACAddress(0x02, 0xCC, 0, 0, 0, 0x03)
    static let listed = MACAddress(0x01, 0x00, 0x5e, 0x00, 0x00, 0x01)
    static let unlisted = MACAddress(0x01, 0x00, 0x5e, 0x00, 0x00, 0x02)
    static let kinds = ["directed", "unknown unicast", "broadcast", "listed multicast", "unlisted multicast"]

    static func expected(_ f: PacketFilter) -> [String] {
        if f.contains(.promiscuous) { return kinds }
        var k: [String] = []
        if f.contains(.directed) { k.append("directed") }
        if f.contains(.broadcast) { k.append("broadcast") }
        if f.contains(.multicast) || f.contains(.allMulticast) { k.append("listed multicast") }
        if f.contains(.allMulticast) { k.append("unlisted multicast") }
        return k
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var filter: PacketFilter
        var fidelity: IGBModel.Fidelity
        var testDescription: String { "0x\(String(filter.rawValue, radix: 16)) on \(fidelity)" }
    }

    static let cases: [Case] = [IGBModel.Fidelity.qemu, .datasheet].flatMap { fidelity in
        ([[], [.directed], [.broadcast], [.multicast], [.allMulticast], [.promiscuous],
          [.directed, .broadcast], [.directed, .multicast, .broadcast], [.directed, .allMulticast, .broadcast]] as [PacketFilter])
            .map { Case(filter: $0, fidelity: fidelity) }
    }

    @Test(arguments: cases)
    func eachSettingDeliversExactlyItsFramesAndTheHardwareDropsWhatItCan(c: Case) throws {
        let bench = try Bench(fidelity: c.fidelity)
        try bench.binding.request(.setMulticastList([Self.listed]))
        try bench.binding.request(.setPacketFilter(c.filter))
        let mix = [bench.address, Self.stranger, .broadcast, Self.listed, Self.unlisted].map { Frames.udp(to: $0, payload: Frames.payload(60)) }
        let filteredBefore = bench.model.wireCounters.filtered
        for f in mix { bench.model.inject(f) }
        bench.pump(rounds: 6)
        let got = bench.recorder.frames.compactMap { f in mix.firstIndex(of: f.bytes).map { Self.kinds[$0] } }
        let want = Self.expected(c.filter)
        #expect(got == Self.kinds.filter { want.contains($0) })
        // Only the adapter's own address, which RAR0 always admits, is left to the framework.
        let inSoftware = want.contains("directed") ? 0 : 1
        #expect(bench.adapter.packetFilterRejects == UInt64(inSoftware))
        #expect(bench.model.wireCounters.filtered - filteredBefore == 5 - want.count - inSoftware)
        #expect(bench.adapter.frameworkDrops == 0)
        bench.haltAndCheck()
    }

    @Test(arguments: [IGBModel.Fidelity.qemu, .datasheet])
    func aVMQQueueTakesBroadcastAndItsOwnMACOnlyAsThePacketFilterSays(fidelity: IGBModel.Fidelity) throws {
        let bench = try Bench(fidelity: fidelity)
        let macA = MACAddress(0x02, 0xAA, 0, 0, 0, 0x01)
        let q = try bench.allocateQueue()
        let f = try bench.setFilter(q, [.macDestination(macA)])
        try bench.binding.request(.setPacketFilter([.directed]))
        let toA = Frames.udp(to: macA, payload: Frames.payload(60, seed: 1))
        let broadcast = Frames.udp(to: .broadcast, payload: Frames.payload(60, seed: 2))
        bench.model.inject(toA)
        bench.model.inject(broadcast)
        bench.pump(rounds: 6)
        #expect(bench.recorder.frames(on: q.rawValue).map(\.bytes) == [toA])
        #expect(bench.recorder.frames(on: 0).isEmpty)
        // The hardware dropped the broadcast (no pool has VMOLR.BAM): nothing was left to the framework.
        #expect(bench.adapter.packetFilterRejects == 0, "a pool took the broadcast although the packet filter has no broadcast")
        try bench.binding.request(.setPacketFilter([.directed, .broadcast]))
        bench.model.inject(broadcast)
        bench.pump(rounds: 6)
        #expect(bench.recorder.frames(on: q.rawValue).map(\.bytes) == [toA, broadcast])
        #expect(bench.recorder.frames(on: 0).map(\.bytes) == [broadcast])
        try bench.binding.request(.clearFilter(f))
        #expect(try bench.binding.request(.freeQueue(q)).isDone)
        bench.haltAndCheck()
    }
}
