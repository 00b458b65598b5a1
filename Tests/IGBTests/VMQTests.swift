import DeviceAccess
import IGB
import IGBModel
import NDIS
import Testing

@Suite("IGB VMQ queues and filters on the model")
struct VMQTests {
    static let macA = MACAddress(0x02, 0xAA, 0, 0, 0, 0x01)
    static let macB = MACAddress(0x02, 0xBB, 0, 0, 0, 0x02)
    static let stranger = MACAddress(0x02, 0xCC, 0, 0, 0, 0x03)

    @Test func theCapabilitiesSayWhatThe82576Does() throws {
        let bench = try Bench()
        guard case let .hardwareCapabilities(caps) = try bench.binding.request(.hardwareCapabilities) else {
            Issue.record("no capabilities")
            return
        }
        #expect(caps.numberOfQueues == 7)
        #expect(caps.maxMACHeaderFilters == 23)
        #expect(caps.supportedFields == [.macDestination, .vlanID])
        #expect(caps.supportedFieldCombinations == [[.macDestination], [.macDestination, .vlanID]])
        #expect(caps.lookaheadSplitSupported)
        #expect(caps.minLookaheadSplitSize == 64 && caps.maxLookaheadSplitSize == 960)
        bench.haltAndCheck()
    }

    @Test(arguments: [IGBModel.Fidelity.qemu, .datasheet])
    func framesForMACAAndMACBLandOnTheirQueuesAndTheRestOnTheDefaultQueue(fidelity: IGBModel.Fidelity) throws {
        let bench = try Bench(fidelity: fidelity)
        let qA = try bench.allocateQueue()
        let qB = try bench.allocateQueue()
        let fA = try bench.setFilter(qA, [.macDestination(Self.macA)])
        let fB = try bench.setFilter(qB, [.macDestination(Self.macB)])
        #expect(try bench.filter(fA, on: qA)?.inHardware == true)
        #expect(try bench.filter(fB, on: qB)?.inHardware == true)
        let toA = Frames.udp(to: Self.macA, payload: Frames.payload(60, seed: 1))
        let toB = Frames.udp(to: Self.macB, payload: Frames.payload(60, seed: 2))
        let toUs = Frames.udp(to: bench.address, payload: Frames.payload(60, seed: 3))
        let unknown = Frames.udp(to: Self.stranger, payload: Frames.payload(60, seed: 4))
        let broadcast = Frames.udp(to: .broadcast, payload: Frames.payload(60, seed: 5))
        for f in [toA, toB, toUs, unknown, broadcast] { bench.model.inject(f) }
        bench.pump(rounds: 6)
        let r = bench.recorder
        #expect(r.frames(on: qA.rawValue).map(\.bytes) == [toA, broadcast])
        #expect(r.frames(on: qB.rawValue).map(\.bytes) == [toB, broadcast])
        #expect(r.frames(on: 0).map(\.bytes) == [toUs, unknown, broadcast])
        #expect(r.frames.allSatisfy { UInt16($0.info.receiveQueueID) == $0.queue })
        try bench.binding.request(.clearFilter(fA))
        try bench.binding.request(.clearFilter(fB))
        #expect(try bench.binding.request(.freeQueue(qA)).isDone)
        #expect(try bench.binding.request(.freeQueue(qB)).isDone)
        bench.haltAndCheck()
    }

    @Test func taggedFramesFollowTheMACAndVLANFilter() throws {
        let bench = try Bench()
        let q = try bench.allocateQueue()
        let f = try bench.setFilter(q, [.macDestination(Self.macA), .vlanID(10)])
        #expect(try bench.filter(f, on: q)?.inHardware == true)
        let tagged10 = Frames.udp(to: Self.macA, vlan: 10, payload: Frames.payload(60, seed: 1))
        let tagged20 = Frames.udp(to: Self.macA, vlan: 20, payload: Frames.payload(60, seed: 2))
        let untagged = Frames.udp(to: Self.macA, payload: Frames.payload(60, seed: 3))
        for frame in [tagged10, tagged20, untagged] { bench.model.inject(frame) }
        bench.pump(rounds: 6)
        let onQueue = bench.recorder.frames(on: q.rawValue)
        #expect(onQueue.count == 1)
        #expect(onQueue.first?.info.vlanPresent == true && onQueue.first?.info.vlanID == 10)
        // VLAN 20 and untagged frames for MAC A match no pool: the default pool takes them.
        #expect(bench.recorder.frames(on: 0).count == 2)
        bench.haltAndCheck()
    }

    @Test func aVLANOnlyFilterRunsInSoftwareOnTheDefaultQueue() throws {
        let bench = try Bench()
        let q = try bench.allocateQueue()
        let f = try bench.setFilter(q, [.vlanID(30)])
        #expect(try bench.filter(f, on: q)?.inHardware == false)
        let tagged = Frames.udp(to: bench.address, vlan: 30, payload: Frames.payload(60, seed: 1))
        let other = Frames.udp(to: bench.address, vlan: 31, payload: Frames.payload(60, seed: 2))
        bench.model.inject(tagged)
        bench.model.inject(other)
        bench.pump()
        #expect(bench.recorder.frames(on: q.rawValue).count == 1)
        #expect(bench.recorder.frames(on: q.rawValue).first?.info.vlanID == 30)
        #expect(bench.recorder.frames(on: 0).count == 1)
        bench.haltAndCheck()
    }

    @Test(arguments: [IGBModel.Fidelity.qemu, .datasheet])
    func softwareFiltersApplyToRESOURCESIndicationsWhenTheProtocolHoldsItsNBLs(fidelity: IGBModel.Fidelity) throws {
        // A VLAN-only queue runs in software on the default queue's frames. The protocol holds every
        // NBL it owns, so the default ring runs low and the miniport lends frames with RESOURCES:
        // those must reach the VLAN queue too, not rxq0.
        let bench = try Bench(fidelity: fidelity)
        let q = try bench.allocateQueue()
        let f = try bench.setFilter(q, [.vlanID(100)])
        #expect(try bench.filter(f, on: q)?.inHardware == false)
        bench.recorder.hold = true
        var sent: [[UInt8]] = []
        for round in 0..<12 {
            for i in 0..<32 {
                let frame = Frames.udp(to: bench.address, vlan: 100, sourcePort: UInt16(round * 32 + i), payload: Frames.payload(60))
                sent.append(frame)
                bench.model.inject(frame)
            }
            bench.pump(rounds: 4)
        }
        #expect(sent.count == 384)
        let r = bench.recorder
        #expect(r.frames.contains { $0.resources }, "the test needs RESOURCES indications")
        #expect(r.frames(on: 0).count == 0, "VLAN-100 frames landed on rxq0")
        #expect(r.frames(on: q.rawValue).count == 384)
        #expect(r.frames.allSatisfy { UInt16($0.info.receiveQueueID) == $0.queue })
        #expect(r.frames.allSatisfy { $0.info.vlanID == 100 })
        r.returnHeld()
        try bench.binding.request(.clearFilter(f))
        #expect(try bench.binding.request(.freeQueue(q)).isDone)
        bench.haltAndCheck()
    }

    @Test func mixingMACOnlyAndMACVLANFiltersFallsBackToSoftwareRatherThanMisroute() throws {
        let bench = try Bench()
        let q1 = try bench.allocateQueue()
        let q2 = try bench.allocateQueue()
        let f1 = try bench.setFilter(q1, [.macDestination(Self.macA)])
        let f2 = try bench.setFilter(q2, [.macDestination(Self.macB), .vlanID(7)])
        #expect(try bench.filter(f1, on: q1)?.inHardware == true)
        #expect(try bench.filter(f2, on: q2)?.inHardware == false)
        // A tagged frame for MAC A still reaches queue 1 (RCTL.VFE stayed off).
        bench.model.inject(Frames.udp(to: Self.macA, vlan: 99, payload: Frames.payload(60)))
        bench.model.inject(Frames.udp(to: Self.macB, vlan: 7, payload: Frames.payload(60)))
        bench.pump()
        #expect(bench.recorder.frames(on: q1.rawValue).count == 1)
        #expect(bench.recorder.frames(on: q2.rawValue).count == 1)
        bench.haltAndCheck()
    }

    @Test func lookaheadSplitSegmentsHoldTheHeaderAndThePayload() throws {
        let bench = try Bench()
        let q = try bench.allocateQueue(ReceiveQueueParameters(flags: [.lookaheadSplitRequired], numberOfBuffers: 64, lookaheadSize: 128))
        try bench.setFilter(q, [.macDestination(Self.macA)])
        let payload = Frames.payload(300, seed: 9)
        let f = Frames.udp(to: Self.macA, payload: payload)
        let small = Frames.ethernet(to: Self.macA, type: 0x88B5, payload: Frames.payload(50))
        bench.model.inject(f)
        bench.model.inject(small)
        bench.pump()
        let got = bench.recorder.frames(on: q.rawValue)
        #expect(got.count == 2)
        guard got.count == 2 else { bench.haltAndCheck(); return }
        #expect(got[0].bytes == f)
        #expect(got[0].segments.count == 2)
        // The device splits after the UDP header (14 + 20 + 8 bytes); the driver tops the lookahead
        // segment up to the requested 128 bytes, so the split lies at the lookahead, not before it.
        let header = got[0].segments[0], data = got[0].segments[1]
        #expect(header.length == 128)
        #expect(data.length == UInt32(f.count - 128))
        #expect(data.sharedMemoryOffset % 2048 == 128 - 42, "the post-lookahead segment starts where the moved bytes ended")
        #expect(bench.adapter.lookaheadSplitViolations == 0)
        #expect(header.sharedMemory != data.sharedMemory)
        let memory = bench.adapter.sharedMemoryAllocations
        #expect(memory.first { $0.sharedMemoryHandle == header.sharedMemory }?.usage == .receiveLookahead)
        #expect(memory.first { $0.sharedMemoryHandle == data.sharedMemory }?.usage == .receive)
        // A small non-IP frame fits the header buffer whole.
        #expect(got[1].bytes == small)
        #expect(got[1].segments.count == 1)
        bench.haltAndCheck()
    }

    @Test func lookaheadSplitLiesAtOrBeyondTheRequestedSizeForEveryFrameLongerThanIt() throws {
        let bench = try Bench()
        // 100 bytes: not a multiple of 64, so the header buffer (128) is longer than the lookahead.
        let q = try bench.allocateQueue(ReceiveQueueParameters(flags: [.lookaheadSplitRequired], numberOfBuffers: 64, lookaheadSize: 100))
        try bench.setFilter(q, [.macDestination(Self.macA)])
        let frames: [[UInt8]] = [
            Frames.udp(to: Self.macA, payload: Frames.payload(300, seed: 1)),        // 342: [100, 242]
            Frames.udp(to: Self.macA, payload: Frames.payload(60, seed: 2)),         // 102: whole in the header buffer
            Frames.udp(to: Self.macA, payload: Frames.payload(1472, seed: 3)),       // 1514
            Frames.ethernet(to: Self.macA, type: 0x88B5, payload: Frames.payload(46)), // 60: shorter than the lookahead
            Frames.ethernet(to: Self.macA, type: 0x88B5, payload: Frames.payload(400)), // non-IP: split at the header buffer
        ]
        for f in frames { bench.model.inject(f) }
        bench.pump()
        let got = bench.recorder.frames(on: q.rawValue)
        #expect(got.count == frames.count)
        for (g, f) in zip(got, frames) {
            #expect(g.bytes == f)
            let first = Int(g.segments[0].length)
            if f.count > 100 {
                #expect(first >= 100, "a \(f.count)-byte frame split at \(first), before the 100-byte lookahead")
            } else {
                #expect(g.segments.count == 1 && first == f.count, "a \(f.count)-byte frame lies whole in the lookahead segment")
            }
            #expect(g.segments.reduce(0) { $0 + Int($1.length) } == f.count)
        }
        #expect(got.first?.segments.map(\.length) == [100, 242])
        #expect(bench.adapter.lookaheadSplitViolations == 0)
        bench.haltAndCheck()
    }

    @Test func freeingAQueueStopsDMAWaitsForItsBuffersThenFreesItsMemory() throws {
        let bench = try Bench()
        let regionsBefore = bench.function.dma.liveRegionCount
        let q = try bench.allocateQueue()
        let regionsWithQueue = bench.function.dma.liveRegionCount
        #expect(regionsWithQueue == regionsBefore + 2)
        let f = try bench.setFilter(q, [.macDestination(Self.macA)])
        bench.recorder.hold = true
        bench.model.inject(Frames.udp(to: Self.macA, payload: Frames.payload(60)))
        bench.pump()
        #expect(bench.recorder.held.count == 1)
        try bench.binding.request(.clearFilter(f))
        // Step 1–3: DMA stops, NDIS says so, and the free waits for the held NBL.
        guard case .pending = try bench.binding.request(.freeQueue(q)) else {
            Issue.record("FREE_QUEUE should pend while an NBL is held")
            return
        }
        #expect(bench.adapter.statusLog.contains(.receiveQueueDMAStopped(q)))
        #expect(bench.model.readRegister(0xC028 + 0x40 * 1) & (1 << 25) == 0, "RXDCTL1.ENABLE reads back 0")
        #expect(bench.function.dma.liveRegionCount == regionsWithQueue, "memory stays mapped while the NBL is out")
        // Step 4–5: the last NBL comes back; the memory goes.
        bench.recorder.returnHeld()
        #expect(bench.adapter.statusLog.contains(.requestComplete("OID_RECEIVE_FILTER_FREE_QUEUE \(q)", .success)))
        #expect(bench.function.dma.liveRegionCount == regionsBefore)
        // The pool can be allocated again.
        let again = try bench.allocateQueue()
        try bench.setFilter(again, [.macDestination(Self.macB)])
        bench.recorder.hold = false
        bench.recorder.frames.removeAll()
        bench.model.inject(Frames.udp(to: Self.macB, payload: Frames.payload(60)))
        bench.pump()
        #expect(bench.recorder.frames(on: again.rawValue).count == 1)
        bench.haltAndCheck()
    }

    @Test func haltWithQueuesStillAllocatedFreesEverything() throws {
        let bench = try Bench()
        let q1 = try bench.allocateQueue()
        let q2 = try bench.allocateQueue(ReceiveQueueParameters(flags: [.lookaheadSplitRequired], numberOfBuffers: 32, lookaheadSize: 64))
        try bench.setFilter(q1, [.macDestination(Self.macA)])
        try bench.setFilter(q2, [.macDestination(Self.macB)])
        bench.model.inject(Frames.udp(to: Self.macA, payload: Frames.payload(60)))
        bench.model.inject(Frames.udp(to: Self.macB, payload: Frames.payload(60)))
        bench.pump()
        #expect(bench.recorder.frames.count == 2)
        bench.haltAndCheck()
    }
}

extension OIDResponse {
    var isDone: Bool { if case .done = self { true } else { false } }
}
