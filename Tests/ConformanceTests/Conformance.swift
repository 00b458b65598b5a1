import MiniportRegistry
import NDIS
import Protocols
import Testing

/// A protocol module that records what it receives and returns NBLs at once, unless told to hold them.
final class Recorder: ProtocolDriver {
    struct Frame {
        var queue: UInt16
        var bytes: [UInt8]
        var resources: Bool
    }
    var frames: [Frame] = []
    var hold = false
    var held = NetBufferListChain()
    var sendStatuses: [NDISStatus] = []
    var binding: Binding?

    func bindingOpened(_ binding: Binding) { self.binding = binding }

    func receiveNetBufferLists(_ chain: consuming NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
        chain.forEach { frames.append(Frame(queue: queue.rawValue, bytes: $0.dataBytes(), resources: false)) }
        if hold { held.append(chain) } else { binding.returnNetBufferLists(chain) }
    }

    var handlesResourcesIndications: Bool { true }

    func receiveNetBufferListsWithResources(_ chain: borrowing NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
        chain.forEach { frames.append(Frame(queue: queue.rawValue, bytes: $0.dataBytes(), resources: true)) }
    }

    func sendNetBufferListsComplete(_ chain: consuming NetBufferListChain, binding: Binding) {
        chain.forEach { sendStatuses.append($0.status) }
        binding.freeSendNetBufferLists(chain)
    }

    /// Returns the held NBLs one by one, last received first (returns in any order).
    func returnHeldReversed() {
        var all = NetBufferListChain()
        swap(&all, &held)
        returnReversed(&all)
    }

    private func returnReversed(_ chain: inout NetBufferListChain) {
        guard !chain.isEmpty else { return }
        let one = chain.popFirst()
        returnReversed(&chain)
        binding?.returnNetBufferLists(one)
    }

    func frames(on queue: UInt16) -> [[UInt8]] { frames.filter { $0.queue == queue }.map(\.bytes) }
    /// The tags (last byte) of the frames indicated on `queue`: a miniport may strip an 802.1Q tag
    /// into the NBL's info, so tagged frames are recognised by their tag, not their bytes.
    func tags(on queue: UInt16) -> [UInt8] { frames.filter { $0.queue == queue }.compactMap(\.bytes.last) }
}

/// One (miniport, model) pair under test: an opened model NIC with a recording binding.
final class Pair {
    let opened: OpenedAdapter
    let recorder = Recorder()
    let binding: Binding
    var adapter: Adapter { opened.adapter }
    var mac: MACAddress { opened.adapter.attributes!.currentAddress }
    static let peer = MACAddress(0x02, 0x00, 0x00, 0x00, 0x00, 0x99)

    init(_ nic: String) throws {
        opened = try AdapterOpener.openModel(nic: nic, name: "conformance-\(nic)")
        binding = try opened.adapter.openBinding(recorder)
        try opened.start()
    }

    /// Puts frames on the wire and polls until they are handled (or `rounds` run out).
    func deliver(_ frames: [[UInt8]], rounds: Int = 20) {
        for f in frames { opened.wire!.inject(f) }
        for _ in 0..<rounds { opened.poll() }
    }

    func frame(to destination: MACAddress, vlan: UInt16? = nil, tag: UInt8 = 0, length: Int = 96) -> [UInt8] {
        var f = FrameBuilder.filler(destination: destination, source: Self.peer, vlan: vlan, length: length)
        f[f.count - 1] = tag
        return f
    }

    /// Halts and checks nothing is left: the halt report clean, no DMA mapped.
    func closeClean() {
        let (report, left) = opened.close()
        #expect(report.isClean, "\(report)")
        #expect(left == 0, "\(left) bytes of DMA memory still mapped after halt")
    }
}

/// The conformance suite: every model NIC of the registry, driven by its family's miniport
/// through NDIS, must behave the same at the framework's interface.
@Suite("Conformance: every (miniport, model) pair")
struct ConformanceTests {
    static let nics = ModelNICs.names

    @Test(arguments: nics)
    func bringUpDescribesTheAdapterAndHaltLeavesNothingMapped(nic: String) throws {
        let pair = try Pair(nic)
        let attrs = try #require(pair.adapter.attributes)
        #expect(attrs.permanentAddress == AdapterOpener.modelMAC)
        #expect(pair.opened.family == nic)
        guard case let .linkState(link) = try pair.binding.request(.linkState) else { Issue.record("no link state"); return }
        #expect(link.up)
        pair.closeClean()
    }

    @Test(arguments: nics)
    func framesToTheAdapterAndBroadcastReachTheDefaultQueueByteExact(nic: String) throws {
        let pair = try Pair(nic)
        let unicast = pair.frame(to: pair.mac, tag: 1)
        let broadcast = pair.frame(to: .broadcast, tag: 2)
        pair.deliver([unicast, broadcast])
        #expect(pair.recorder.frames(on: 0) == [unicast, broadcast])
        pair.closeClean()
    }

    @Test(arguments: nics)
    func transmittedFramesLeaveByteExactAndCompleteWithSuccess(nic: String) throws {
        let pair = try Pair(nic)
        let pool = try pair.binding.makeSendPool(count: 8, bufferSize: 2048)
        var sent: [[UInt8]] = []
        for i in 0..<5 {
            let f = pair.frame(to: Pair.peer, tag: UInt8(i), length: 60 + i * 100)
            let chain = pool.allocate(count: 1)
            let filled = f.withUnsafeBytes { SendPool.fill(chain.first!, with: $0) }
            #expect(filled)
            pair.binding.send(chain)
            sent.append(f)
        }
        for _ in 0..<20 { pair.opened.poll() }
        #expect(pair.opened.wire!.takeTransmitted() == sent)
        #expect(pair.recorder.sendStatuses == Array(repeating: .success, count: 5))
        pair.closeClean()
    }

    @Test(arguments: nics)
    func queuesSteerByMACAndVLANAsTheCapabilitiesSayAndUnmatchedGoToTheDefaultQueue(nic: String) throws {
        let pair = try Pair(nic)
        let macA = MACAddress(0x02, 0x00, 0x00, 0x00, 0x00, 0x0A)
        let macB = MACAddress(0x02, 0x00, 0x00, 0x00, 0x00, 0x0B)
        let set = try QueueSet.allocate([.mac(macA), .mac(macB), .vlan(10)], on: pair.binding, buffers: 64)
        guard case let .currentCapabilities(caps) = try pair.binding.request(.currentCapabilities) else { Issue.record("no capabilities"); return }
        guard case let .filters(all) = try pair.binding.request(.enumerateFilters(set.queues[1].id)) else { Issue.record("no filters"); return }
        // Truthful capabilities: a filter runs in hardware only if the hardware says it can.
        for f in all where f.inHardware { #expect(caps.hardware.canRunInHardware(f.parameters)) }
        let qA = set.queues[1].id.rawValue, qB = set.queues[2].id.rawValue, qV = set.queues[3].id.rawValue
        let toA = pair.frame(to: macA, tag: 1), toB = pair.frame(to: macB, tag: 2)
        let vlan = pair.frame(to: pair.mac, vlan: 10, tag: 3)
        let mine = pair.frame(to: pair.mac, tag: 4)
        let other = pair.frame(to: MACAddress(0x02, 0, 0, 0, 0, 0x77), tag: 5)
        let broadcast = pair.frame(to: .broadcast, tag: 6)
        pair.deliver([toA, toB, vlan, mine, other, broadcast])
        // Each queue gets its frames (and, where the NIC replicates it, broadcast: tag 6).
        #expect(pair.recorder.tags(on: qA).filter { $0 != 6 } == [1])
        #expect(pair.recorder.tags(on: qB).filter { $0 != 6 } == [2])
        #expect(pair.recorder.tags(on: qV).filter { $0 != 6 } == [3])
        #expect(pair.recorder.frames(on: 0).contains(mine))
        // Broadcast reaches the default queue.
        #expect(pair.recorder.frames(on: 0).contains(broadcast))
        // A unicast frame to a MAC no queue wants never reaches a protocol (packet filter: directed).
        let leaked = pair.recorder.frames.contains { $0.bytes == other }
        if nic == "igb" {
            // Known: with a VLAN-only filter in software the 82576 path indicates unicast frames for
            // other MACs on the default queue (reported to the lead; IGB is being edited by others).
            withKnownIssue("igb indicates a unicast frame for another MAC on the default queue when a VLAN-only queue exists") {
                #expect(!leaked)
            }
        } else {
            #expect(!leaked, "\(pair.recorder.frames.map { ($0.queue, $0.bytes.last!) })")
        }
        _ = vlan
        _ = set.release()
        pair.closeClean()
    }

    @Test(arguments: nics)
    func nblsReturnedInAnyOrderAreReusedAndStatisticsCountEveryFrame(nic: String) throws {
        let pair = try Pair(nic)
        pair.recorder.hold = true
        let first = (0..<8).map { pair.frame(to: pair.mac, tag: UInt8($0)) }
        pair.deliver(first)
        #expect(pair.recorder.frames.count == 8)
        pair.recorder.returnHeldReversed()
        pair.recorder.hold = false
        // More frames than the ring holds: only recycled buffers can carry them.
        let many = (0..<600).map { pair.frame(to: pair.mac, tag: UInt8(truncatingIfNeeded: $0), length: 64) }
        for chunk in stride(from: 0, to: many.count, by: 100) { pair.deliver(Array(many[chunk..<min(many.count, chunk + 100)])) }
        #expect(pair.recorder.frames.count == 608)
        guard case let .statistics(stats) = try pair.binding.request(.statistics) else { Issue.record("no statistics"); return }
        #expect(stats.global.receivedFrames == 608)
        pair.closeClean()
    }

    @Test(arguments: nics)
    func haltWithNBLsStillHeldAboveDoesNotLeaveMemoryMappedOnceTheyReturn(nic: String) throws {
        let pair = try Pair(nic)
        pair.recorder.hold = true
        pair.deliver((0..<4).map { pair.frame(to: pair.mac, tag: UInt8($0)) })
        #expect(pair.recorder.frames.count == 4)
        pair.recorder.returnHeldReversed()
        pair.closeClean()
    }
}
