import Testing
@testable import NDIS

/// OID_GEN_CURRENT_PACKET_FILTER on the loopback miniport, whose "hardware" filters nothing: every
/// rule here is the framework's, per binding and per queue.
@Suite("Packet filter: what each NDIS_PACKET_TYPE setting delivers")
struct PacketFilterTests {
    static let own = LoopbackMiniport.Configuration().macAddress
    static let stranger = MACAddress(0x02, 0xCC, 0, 0, 0, 0x03)
    static let listed = MACAddress(0x01, 0x00, 0x5e, 0x00, 0x00, 0x01)
    static let unlisted = MACAddress(0x01, 0x00, 0x5e, 0x00, 0x00, 0x02)

    /// One frame of each kind, in this order: directed, unknown unicast, broadcast, listed multicast,
    /// unlisted multicast.
    static let kinds = ["directed", "unknown unicast", "broadcast", "listed multicast", "unlisted multicast"]
    static var mix: [[UInt8]] {
        [own, stranger, .broadcast, listed, unlisted].enumerated().map { frame(to: $1, payload: [UInt8($0)]) }
    }

    /// The kinds a filter admits.
    static func expected(_ f: PacketFilter) -> [String] {
        if f.contains(.promiscuous) { return kinds }
        var k: [String] = []
        if f.contains(.directed) { k.append("directed") }
        if f.contains(.broadcast) { k.append("broadcast") }
        if f.contains(.multicast) || f.contains(.allMulticast) { k.append("listed multicast") }
        if f.contains(.allMulticast) { k.append("unlisted multicast") }
        return k
    }

    static func kinds(of frames: [[UInt8]]) -> [String] {
        let mix = Self.mix
        return frames.compactMap { f in mix.firstIndex(of: f).map { kinds[$0] } }.sorted { kinds.firstIndex(of: $0)! < kinds.firstIndex(of: $1)! }
    }

    static let settings: [PacketFilter] = [
        [], [.directed], [.broadcast], [.multicast], [.allMulticast], [.promiscuous],
        [.directed, .broadcast], [.directed, .multicast, .broadcast], [.directed, .allMulticast, .broadcast],
    ]

    @Test(arguments: settings)
    func eachSettingDeliversExactlyTheFramesNDISDefinesForIt(filter: PacketFilter) throws {
        let rig = try Rig()
        try rig.binding.request(.setMulticastList([Self.listed]))
        try rig.binding.request(.setPacketFilter(filter))
        rig.run(Self.mix)
        #expect(Self.kinds(of: rig.recorder.allFrames) == Self.expected(filter).sorted { Self.kinds.firstIndex(of: $0)! < Self.kinds.firstIndex(of: $1)! })
        // What the filter leaves out is given back and counted apart from drops.
        #expect(rig.adapter.packetFilterRejects == UInt64(5 - Self.expected(filter).count))
        #expect(rig.adapter.frameworkDrops == 0)
        #expect(rig.adapter.outstandingNetBufferLists == 0)
        #expect(rig.adapter.halt().isClean)
    }

    @Test func aBindingThatSetNoFilterFollowsTheAdaptersAndTakesEverythingWithoutOne() throws {
        let rig = try Rig()
        rig.run(Self.mix)
        #expect(rig.recorder.allFrames.count == 5)
        try rig.adapter.request(.setPacketFilter([.broadcast]))
        rig.run(Self.mix)
        #expect(Self.kinds(of: Array(rig.recorder.allFrames.dropFirst(5))) == ["broadcast"])
        #expect(rig.binding.packetFilter == nil)
    }

    @Test func onAVMQQueueTheQueuesOwnMACIsDirected() throws {
        let rig = try Rig()
        let (q, _) = try rig.queue([.macDestination(macA)])
        let (v, _) = try rig.queue([.vlanID(7)])
        try rig.binding.request(.setPacketFilter([.directed]))
        let toA = frame(to: macA)
        let tagged = frame(to: Self.own, vlan: 7)
        let taggedStranger = frame(to: Self.stranger, vlan: 7)
        rig.run([toA, tagged, taggedStranger])
        #expect(rig.recorder.indications.filter { $0.queue == q }.flatMap(\.frames) == [toA])
        #expect(rig.recorder.indications.filter { $0.queue == v }.flatMap(\.frames) == [tagged])
        #expect(rig.adapter.packetFilterRejects == 1)
    }

    @Test func eachBindingGetsWhatItsOwnFilterTakes() throws {
        let rig = try Rig()
        let second = Recorder()
        let b2 = try rig.adapter.openBinding(second)
        try rig.binding.request(.setPacketFilter([.directed]))
        try b2.request(.setPacketFilter([.broadcast]))
        rig.run(Self.mix)
        #expect(Self.kinds(of: rig.recorder.allFrames) == ["directed"])
        #expect(Self.kinds(of: second.allFrames) == ["broadcast"])
        // The miniport is asked for the union.
        #expect(rig.adapter.hardwarePacketFilter == [.directed, .broadcast])
        b2.close()
        #expect(rig.adapter.hardwarePacketFilter == [.directed])
    }

    @Test func resourcesIndicationsHonourThePacketFilterToo() throws {
        // One buffer per queue: the second frame of a poll comes with RESOURCES.
        let rig = try Rig { $0.buffersPerQueue = 1 }
        rig.recorder.hold = true
        rig.recorder.copiesResources = true
        try rig.binding.request(.setPacketFilter([.broadcast]))
        rig.run([frame(to: .broadcast, payload: [1]), frame(to: Self.stranger), frame(to: .broadcast, payload: [2]), frame(to: Self.own)])
        let seen = rig.recorder.allFrames + rig.recorder.borrowed.flatMap(\.frames)
        #expect(!rig.recorder.borrowed.isEmpty, "the test needs RESOURCES indications")
        #expect(seen.count == 2)
        #expect(seen.allSatisfy { $0.prefix(6).allSatisfy { $0 == 0xff } })
        rig.recorder.returnHeld()
    }

    @Test func unknownPacketFilterBitsAreRefusedByName() throws {
        let rig = try Rig()
        #expect(throws: NDISError.self) { try rig.binding.request(.setPacketFilter(PacketFilter(rawValue: 0x1000))) }
    }
}
