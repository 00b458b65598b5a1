import NDIS
import Testing
@testable import Protocols

@Suite struct QueueSetupTests {
    @Test func macAndVLANFiltersParseInOrderMACsFirst() throws {
        let specs = try QueueFilterSpec.parse(macs: ["52:54:00:aa:00:01", "52-54-00-AA-00-02"], vlans: ["100", "4094"])
        #expect(specs == [.mac(Addr.mac1), .mac(Addr.mac2), .vlan(100), .vlan(4094)])
        #expect(specs.map(\.description) == ["mac 52:54:00:aa:00:01", "mac 52:54:00:aa:00:02", "vlan 100", "vlan 4094"])
    }

    @Test(arguments: ["zz", "52:54:00:aa:00", "52:54:00:aa:00:01:02", "52:54:00:aa:00:1", "5254.00aa.0001", "52:54:00:aa:00:0g", ""])
    func aBadMACIsRejectedWithItsText(_ text: String) {
        #expect(throws: InputError.badMAC(text)) { try QueueFilterSpec.parse(macs: [text], vlans: []) }
        #expect(InputError.badMAC(text).description.contains("'\(text)'"))
    }

    @Test(arguments: ["0", "4095", "4096", "-1", "abc", "", "1e2", "+5", "99999999999"])
    func aBadVLANIdIsRejected(_ text: String) {
        #expect(throws: InputError.badVLAN(text)) { try QueueFilterSpec.parse(macs: [], vlans: [text]) }
    }

    @Test func theSameMACTwiceIsAConflictEvenInAnotherSpelling() {
        #expect(throws: InputError.duplicateMAC(Addr.mac1)) {
            try QueueFilterSpec.parse(macs: ["52:54:00:aa:00:01", "52:54:00:AA:00:01"], vlans: [])
        }
    }

    @Test func theSameVLANTwiceIsAConflict() {
        #expect(throws: InputError.duplicateVLAN(100)) { try QueueFilterSpec.parse(macs: [], vlans: ["100", "100"]) }
    }

    @Test func aBroadcastMACFilterIsRefusedBecauseTheDefaultQueueOwnsBroadcast() {
        #expect(throws: InputError.broadcastFilter) { try QueueFilterSpec.parse(macs: ["ff:ff:ff:ff:ff:ff"], vlans: []) }
    }

    @Test func queuesAreAllocatedFilteredAndFreedThroughTheBinding() throws {
        let bed = try LoopbackBed()
        let counter = Counter()
        let binding = try bed.adapter.openBinding(counter)
        let set = try QueueSet.allocate([.mac(Addr.mac1), .vlan(100)], on: binding, buffers: 16)
        #expect(set.queues.map(\.id.rawValue) == [0, 1, 2])
        #expect(set.queues.map(\.filterSummary) == ["default", "mac 52:54:00:aa:00:01", "vlan 100"])
        #expect(set.captureInterfaces.map(\.name) == ["rxq0", "rxq1", "rxq2"])
        guard case let .queues(infos) = try bed.adapter.request(.enumerateQueues) else { Issue.record("no queue list"); return }
        #expect(infos.map(\.state) == [.running, .running])
        #expect(set.release().isEmpty)
        guard case let .queues(after) = try bed.adapter.request(.enumerateQueues) else { Issue.record("no queue list"); return }
        #expect(after.isEmpty)
        #expect(bed.halt().isClean)
    }

    @Test func aFailedAllocationFreesTheQueuesItAlreadyMade() throws {
        let bed = try LoopbackBed(hardwareQueues: 1)
        let binding = try bed.adapter.openBinding(Counter())
        // 1 hardware + 16 software queues: the 18th filter cannot get a queue.
        let specs = (1...18).map { QueueFilterSpec.vlan(UInt16($0)) }
        #expect(throws: NDISError.self) { try QueueSet.allocate(specs, on: binding, buffers: 8) }
        guard case let .queues(infos) = try bed.adapter.request(.enumerateQueues) else { Issue.record("no queue list"); return }
        #expect(infos.isEmpty)
        #expect(bed.halt().isClean)
    }

    @Test func theReportPrintsTheDocumentedJSONShape() {
        let r = QueueReport(queues: [
            .init(id: 0, isDefault: true, filters: [], frames: 3, bytes: 180),
            .init(id: 1, isDefault: false, filters: [.mac(Addr.mac1)], frames: 2, bytes: 120),
            .init(id: 2, isDefault: false, filters: [.vlan(100)], frames: 1, bytes: 64),
        ], drops: 4)
        #expect(r.json == #"{"queues": [{"id": 0, "default": true, "filters": [], "frames": 3, "bytes": 180}, {"id": 1, "default": false, "filters": [{"mac": "52:54:00:aa:00:01"}], "frames": 2, "bytes": 120}, {"id": 2, "default": false, "filters": [{"vlan": 100}], "frames": 1, "bytes": 64}], "drops": 4}"#)
        #expect(r.table.split(separator: "\n").contains { $0.hasPrefix("rxq1") && $0.contains("mac 52:54:00:aa:00:01") && $0.hasSuffix("120") })
        #expect(r.table.hasSuffix("drops: 4"))
    }
}

@Suite struct QueueAcceptanceTests {
    @Test func multicastCopiesAreKeptOnlyOnQueuesWhoseFiltersAcceptThem() {
        let group = MACAddress(0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb)
        let a = QueueAcceptance(queues: [
            QueueDescriptor(id: .default, filters: []),
            QueueDescriptor(id: ReceiveQueueID(1), filters: [.mac(Addr.mac1)]),
            QueueDescriptor(id: ReceiveQueueID(2), filters: [.mac(group)]),
            QueueDescriptor(id: ReceiveQueueID(3), filters: [.vlan(100)]),
        ])
        let multicast = HandMadeNBL(FrameBuilder.filler(destination: group, source: Addr.peer, length: 80))
        #expect(a.keeps(multicast.nbl, queue: 0))
        #expect(!a.keeps(multicast.nbl, queue: 1))
        #expect(a.keeps(multicast.nbl, queue: 2))
        #expect(!a.keeps(multicast.nbl, queue: 3))
        let taggedInline = HandMadeNBL(FrameBuilder.filler(destination: group, source: Addr.peer, vlan: 100, length: 80))
        #expect(a.keeps(taggedInline.nbl, queue: 3))
        let stripped = HandMadeNBL(FrameBuilder.filler(destination: group, source: Addr.peer, length: 80), vlan: 100)
        #expect(a.keeps(stripped.nbl, queue: 3))
        let broadcast = HandMadeNBL(FrameBuilder.filler(destination: .broadcast, source: Addr.peer, length: 80))
        #expect(a.keeps(broadcast.nbl, queue: 1))
        let unicast = HandMadeNBL(FrameBuilder.filler(destination: Addr.other, source: Addr.peer, length: 80))
        #expect(a.keeps(unicast.nbl, queue: 1))
    }
}
