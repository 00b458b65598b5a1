import DeviceAccess
import Testing
@testable import NDIS

// One test per seed rule that the other suites did not pin down: each fails when its rule is broken
// on purpose. `Tests/mutate` applies those breaks one at a time and runs these tests (see the
// "Mutation checks" section of Docs/NDIS.md).

/// The loopback miniport behind a wrapper whose hook sees every validated request before the
/// "hardware" does, with the handle it was initialized with (so a test can act as the miniport
/// inside a request, e.g. while a queue is Freeing).
final class HookedLoopback: MiniportDriver {
    let inner: LoopbackMiniport
    var handle: MiniportHandle?
    var beforeRequest: ((MiniportRequest, MiniportHandle) -> Void)?

    init(_ inner: LoopbackMiniport = LoopbackMiniport()) { self.inner = inner }

    func initialize(_ handle: MiniportHandle) throws(NDISError) -> MiniportAttributes {
        self.handle = handle
        return try inner.initialize(handle)
    }
    func restart() throws(NDISError) { try inner.restart() }
    func pause() { inner.pause() }
    func halt() { inner.halt() }
    func handleRequest(_ request: MiniportRequest) throws(NDISError) -> MiniportResponse {
        if let handle { beforeRequest?(request, handle) }
        return try inner.handleRequest(request)
    }
    func returnNetBufferLists(_ chain: consuming NetBufferListChain, flags: ReturnFlags) { inner.returnNetBufferLists(chain, flags: flags) }
    func sendNetBufferLists(_ chain: consuming NetBufferListChain, flags: SendFlags) { inner.sendNetBufferLists(chain, flags: flags) }
    func poll(budget: Int) -> Int { inner.poll(budget: budget) }
}

/// Records per-VC indications with the binding they reached.
final class VCRecorder: ProtocolDriver {
    var binding: Binding?
    struct CoIndication { let vc: VirtualConnectionHandle; let ownBinding: Bool; let frames: [[UInt8]] }
    /// The VC, whether the VC's binding is this recorder's binding, the frames.
    var coIndications: [CoIndication] = []
    var indications: [[UInt8]] = []

    func bindingOpened(_ binding: Binding) { self.binding = binding }
    func receiveNetBufferLists(_ chain: consuming NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
        chain.forEach { indications.append($0.dataBytes()) }
        binding.returnNetBufferLists(chain)
    }
    func coReceiveNetBufferLists(_ chain: consuming NetBufferListChain, vc: VirtualConnection, count: Int, flags: ReceiveFlags) {
        var frames: [[UInt8]] = []
        chain.forEach { frames.append($0.dataBytes()) }
        coIndications.append(CoIndication(vc: vc.handle, ownBinding: vc.binding === binding, frames: frames))
        vc.binding.returnNetBufferLists(chain)
    }
}

/// Every segment of `nbl` must name, by shared memory handle and offset, exactly the bytes its
/// address points at, in a block of `adapter` (NET_BUFFER_SHARED_MEMORY). Returns the problems.
func sharedMemoryProblems(_ nbl: NetBufferList, _ adapter: Adapter) -> [String] {
    var problems: [String] = []
    let blocks = adapter.sharedMemoryAllocations
    for i in 0..<nbl.segmentCount {
        let s = nbl.segment(i)
        guard let shm = blocks.first(where: { $0.sharedMemoryHandle == s.sharedMemory }) else {
            problems.append("segment \(i): \(s.sharedMemory) is no live shared memory block")
            continue
        }
        let expected = shm.unsafeVirtualAddress + Int(s.sharedMemoryOffset)
        if s.address != expected {
            let actual = s.address.map { $0 - shm.unsafeVirtualAddress }.map(String.init) ?? "nil"
            problems.append("segment \(i): SharedMemoryOffset \(s.sharedMemoryOffset) but the segment starts at offset \(actual) of \(s.sharedMemory)")
        }
        if shm.region.iova(atOffset: Int(s.sharedMemoryOffset)) != s.iova {
            problems.append("segment \(i): IOVA \(s.iova) is not the block's IOVA at offset \(s.sharedMemoryOffset)")
        }
        if Int(s.sharedMemoryOffset) + Int(s.capacity) > shm.length {
            problems.append("segment \(i): offset \(s.sharedMemoryOffset) + capacity \(s.capacity) is beyond the \(shm.length)-byte block")
        }
    }
    return problems
}

@Suite("Seed rules, each guarded by a test that fails when it is broken")
struct SeedRuleTests {
    // MARK: Shared Memory Resource Allocation (002)

    /// "If the miniport driver allocated the shared memory for a nondefault queue, it frees the shared
    /// memory in the context of the OID_RECEIVE_FILTER_FREE_QUEUE OID while it is freeing the queue."
    @Test func aNonDefaultQueuesMemoryCannotBeFreedOutsideFreeQueue() throws {
        let rig = try Rig()
        let (q, f) = try rig.queue([.macDestination(macA)])
        let shm = try #require(rig.adapter.sharedMemoryAllocations.first { $0.queue == q })
        let live = rig.provider.liveRegionCount
        let handle = MiniportHandle(rig.adapter)
        // Running (a filter set), then Paused (no filter): both are outside FREE_QUEUE.
        for state in ["running", "paused"] {
            if state == "paused" { _ = try rig.binding.request(.clearFilter(f)) }
            do {
                try handle.freeSharedMemory(shm.allocationHandle)
                Issue.record("freeing \(q)'s memory while it is \(state) must be refused")
            } catch {
                guard case .memoryInUse = error else { Issue.record("wrong error: \(error)"); continue }
                #expect(error.description.contains("OID_RECEIVE_FILTER_FREE_QUEUE"), "\(error)")
            }
            #expect(rig.provider.liveRegionCount == live, "the memory stays mapped while \(q) is \(state)")
        }
        // Inside FREE_QUEUE the miniport frees it.
        guard case .done = try rig.binding.request(.freeQueue(q)) else { Issue.record("free should finish at once"); return }
        #expect(rig.provider.liveRegionCount == live - 1)
        #expect(rig.adapter.halt().isClean)
    }

    /// "The miniport driver can allocate more memory for the queue until the queue is freed."
    @Test func noSharedMemoryIsAllocatedForAQueueBeingFreed() throws {
        let hooked = HookedLoopback()
        let provider = HostMemoryProvider()
        let adapter = Adapter(name: "hook0", miniport: hooked, sharedMemory: provider)
        try adapter.initialize()
        let recorder = Recorder()
        let binding = try adapter.openBinding(recorder)
        try adapter.restart()
        guard case let .queueAllocated(q) = try binding.request(.allocateQueue(ReceiveQueueParameters(numberOfBuffers: 8))) else {
            Issue.record("no queue"); return
        }
        _ = try binding.request(.queueAllocationComplete([q]))
        guard case let .filterSet(f) = try binding.request(.setFilter(ReceiveFilterParameters(queue: q, tests: [.macDestination(macA)]))) else {
            Issue.record("no filter"); return
        }
        recorder.hold = true
        hooked.inner.inject(frame(to: macA))
        while adapter.poll() > 0 {}
        _ = try binding.request(.clearFilter(f))
        // While Freeing (inside freeQueueResources) the miniport tries once more.
        var duringFreeing: Result<SharedMemory, NDISError>?
        hooked.beforeRequest = { request, handle in
            guard case let .freeQueueResources(id) = request, id == q else { return }
            duringFreeing = Result { () throws(NDISError) in try handle.allocateSharedMemory(queue: q, length: 4096, usage: .receive) }
        }
        guard case .pending = try binding.request(.freeQueue(q)) else { Issue.record("free must pend while an NBL is out"); return }
        // DmaStopped: the queue is being freed.
        let live = provider.liveRegionCount
        let handle = try #require(hooked.handle)
        do {
            let shm = try handle.allocateSharedMemory(queue: q, length: 4096, usage: .receive)
            Issue.record("allocating for \(q) while its DMA is stopped must be refused (got \(shm.allocationHandle))")
        } catch {
            guard case .invalidState = error else { Issue.record("wrong error: \(error)"); return }
            #expect(error.description.contains("being freed"), "\(error)")
        }
        #expect(provider.liveRegionCount == live)
        recorder.returnHeld()
        switch duringFreeing {
        case .none: Issue.record("the miniport was never asked to free \(q)'s resources")
        case .success(let shm): Issue.record("allocating for \(q) while it is Freeing must be refused (got \(shm.allocationHandle))")
        case .failure(let error): #expect(error.description.contains("being freed"), "\(error)")
        }
        #expect(adapter.statusLog.contains(.requestComplete("OID_RECEIVE_FILTER_FREE_QUEUE \(q)", .success)))
        #expect(adapter.sharedMemoryAllocations.allSatisfy { $0.queue != q })
        #expect(adapter.halt().isClean)
        #expect(provider.liveRegionCount == 0)
    }

    // MARK: VMQ Receive Queues (003)

    /// "A queue identifier that is unique to the associated network adapter": the framework gives the
    /// lowest id not in use, so ids stay small and a freed id is used again.
    @Test func queueIdsAreTheLowestFreeIdSoFreedIdsAreReused() throws {
        let rig = try Rig()
        func allocate() throws -> ReceiveQueueID {
            guard case let .queueAllocated(q) = try rig.binding.request(.allocateQueue(ReceiveQueueParameters(numberOfBuffers: 8))) else {
                throw NDISError.invalidState("no queue")
            }
            return q
        }
        let first = try (0..<3).map { _ in try allocate() }
        #expect(first == [ReceiveQueueID(1), ReceiveQueueID(2), ReceiveQueueID(3)])
        _ = try rig.binding.request(.freeQueue(ReceiveQueueID(2)))
        #expect(try allocate() == ReceiveQueueID(2), "2 is the lowest free id")
        _ = try rig.binding.request(.freeQueue(ReceiveQueueID(1)))
        _ = try rig.binding.request(.freeQueue(ReceiveQueueID(3)))
        #expect(try allocate() == ReceiveQueueID(1), "1 is the lowest free id")
        #expect(try allocate() == ReceiveQueueID(3), "3 is the lowest free id")
        #expect(try allocate() == ReceiveQueueID(4))
        guard case let .queues(list) = try rig.binding.request(.enumerateQueues) else { Issue.record("no list"); return }
        #expect(list.map(\.id.rawValue) == [1, 2, 3, 4])
    }

    /// "The default queue always exists. Other queues must be allocated."
    @Test func freeingTheDefaultQueueIsRefusedAndItKeepsReceiving() throws {
        let rig = try Rig()
        let requestsBefore = rig.miniport.requestLog.count
        do {
            _ = try rig.binding.request(.freeQueue(.default))
            Issue.record("freeing the default queue must be refused")
        } catch {
            guard case let .invalidParameter(message) = error else { Issue.record("wrong error: \(error)"); return }
            #expect(message.contains("default queue"), "the error names the default queue: \(message)")
        }
        #expect(rig.miniport.requestLog.count == requestsBefore, "the miniport never heard of it")
        #expect(!rig.recorder.statuses.contains(.receiveQueueDMAStopped(.default)))
        rig.run([frame(to: macOther, tag: 5)])
        #expect(rig.recorder.indications.map(\.queue) == [.default])
        #expect(rig.adapter.sharedMemoryAllocations.contains { $0.queue.isDefault && $0.usage.isReceive })
    }

    /// A queue without filters (Paused, NDIS: "Set" with no filter) indicates nothing, even when the
    /// hardware still steers frames to it (frames in flight as the last filter goes).
    @Test func aQueueWithNoFilterIndicatesNothingEvenWhenTheHardwareStillSteersToIt() throws {
        let rig = try Rig { $0.buffersPerQueue = 2 }
        guard case let .queueAllocated(q) = try rig.binding.request(.allocateQueue(ReceiveQueueParameters(numberOfBuffers: 2))) else {
            Issue.record("no queue"); return
        }
        _ = try rig.binding.request(.queueAllocationComplete([q]))
        guard case let .queues(list) = try rig.binding.request(.enumerateQueues) else { return }
        #expect(list.first?.state == .paused)
        // The "hardware" steers MAC A to the queue although the framework set no filter on it.
        rig.miniport.hwFilters.append(ReceiveFilter(id: ReceiveFilterID(900), parameters: ReceiveFilterParameters(queue: q, tests: [.macDestination(macA)]), inHardware: true))
        // 5 frames, 2 buffers: some go as normal indications, some with RESOURCES (the ring is dry).
        rig.run((1...5).map { frame(to: macA, tag: UInt8($0)) })
        #expect(rig.miniport.resourcesIndications > 0, "the RESOURCES path was exercised")
        #expect(rig.recorder.indications.isEmpty, "nothing indicated from a queue with no filter: \(rig.recorder.indications.map(\.queue))")
        #expect(rig.adapter.frameworkDrops == 5)
        #expect(rig.adapter.outstandingNetBufferLists == 0)
        #expect(rig.miniport.freeBuffers(queue: q) == 2, "discarded frames' buffers went straight back")
        // Running with a filter, then Paused again when the last filter is cleared.
        guard case let .filterSet(f) = try rig.binding.request(.setFilter(ReceiveFilterParameters(queue: q, tests: [.macDestination(macB)]))) else { return }
        rig.run([frame(to: macA, tag: 6)])
        #expect(rig.recorder.indications.map(\.queue) == [q], "a running queue indicates")
        _ = try rig.binding.request(.clearFilter(f))
        rig.run([frame(to: macA, tag: 7)])
        #expect(rig.recorder.indications.count == 1, "Paused again: discarded")
        #expect(rig.adapter.frameworkDrops == 6)
    }

    // MARK: Receiving NET_BUFFER structures (004)

    /// "NDIS could copy a NET_BUFFER_LIST structure with the NDIS_RECEIVE_FLAGS_RESOURCES flag set and
    /// indicate the copy to the overlying drivers with this flag cleared."
    @Test func resourcesCopiesReachTheProtocolWithTheFlagCleared() throws {
        let rig = try Rig { $0.buffersPerQueue = 1 }
        rig.recorder.hold = true
        rig.run((1...3).map { frame(to: macOther, tag: UInt8($0)) })
        #expect(rig.miniport.resourcesIndications == 2, "the ring ran dry: two frames came with RESOURCES")
        #expect(rig.recorder.allFrames.map { $0[14] } == [1, 2, 3], "the copies arrived in order")
        #expect(rig.recorder.borrowed.isEmpty, "a protocol that cannot copy gets no borrowed chain")
        for ind in rig.recorder.indications {
            #expect(!ind.flags.contains(.resources), "an indication the protocol owns has no RESOURCES flag: \(ind.flags)")
        }
        // The copies are the protocol's to hold: 3 held, of which only 1 is the miniport's.
        #expect(rig.adapter.outstandingNetBufferLists == 1)
        rig.recorder.returnHeld()
        #expect(rig.adapter.outstandingNetBufferLists == 0)
    }

    /// "If the NDIS_RECEIVE_FLAGS_STATUS_RESOURCES flag is set ... NDIS regains ownership ... immediately
    /// after ProtocolCoReceiveNetBufferLists returns": a monitor owns nothing, so every indication it
    /// sees carries the RESOURCES flag.
    @Test func monitorsSeeEveryIndicationBorrowedWithTheResourcesFlag() throws {
        let rig = try Rig()
        let monitor = Recorder()
        _ = try rig.adapter.openBinding(monitor, monitor: true)
        let (q, _) = try rig.queue([.macDestination(macA)])
        rig.run([frame(to: macA, tag: 1), frame(to: macOther, tag: 2), frame(to: macA, tag: 3)])
        #expect(monitor.indications.isEmpty, "a monitor is never given NBLs to own")
        #expect(monitor.borrowed.flatMap(\.frames).count == 3)
        #expect(Set(monitor.borrowed.map(\.queue)) == [q, .default])
        for ind in monitor.borrowed {
            #expect(ind.flags.contains(.resources), "a borrowed indication must say RESOURCES: \(ind.flags)")
        }
        #expect(rig.recorder.allFrames.count == 3, "the owner got them all")
        #expect(rig.adapter.outstandingNetBufferLists == 0)
    }

    /// "NDIS can return NET_BUFFER_LIST structures ... in any arbitrary order and in any combination":
    /// each returned NBL is charged to its own queue, even in one return mixing several queues.
    @Test func aReturnMixingQueuesIsChargedToEachNBLsOwnQueue() throws {
        let rig = try Rig()
        let (qa, fa) = try rig.queue([.macDestination(macA)])
        let (qb, _) = try rig.queue([.macDestination(macB)])
        rig.recorder.hold = true
        rig.run([frame(to: macA), frame(to: macB), frame(to: macOther), frame(to: macA), frame(to: macB)])
        #expect(rig.adapter.outstandingNetBufferLists(queue: qa) == 2)
        #expect(rig.adapter.outstandingNetBufferLists(queue: qb) == 2)
        #expect(rig.adapter.outstandingNetBufferLists(queue: .default) == 1)
        // FREE_QUEUE of A waits for A's NBLs.
        _ = try rig.binding.request(.clearFilter(fa))
        guard case .pending = try rig.binding.request(.freeQueue(qa)) else { Issue.record("must pend while A's NBLs are out"); return }
        // One return: the default queue's NBL first, then A's and B's.
        rig.recorder.returnHeld()
        #expect(rig.adapter.outstandingNetBufferLists(queue: qa) == 0)
        #expect(rig.adapter.outstandingNetBufferLists(queue: qb) == 0)
        #expect(rig.adapter.outstandingNetBufferLists(queue: .default) == 0)
        #expect(rig.adapter.outstandingNetBufferLists == 0)
        #expect(rig.adapter.statusLog.contains(.requestComplete("OID_RECEIVE_FILTER_FREE_QUEUE \(qa)", .success)),
                "A's free completed when A's last NBL came back")
        #expect(rig.miniport.freeBuffers(queue: qb) == 16)
    }

    /// "NDIS passes a subset of the list that includes only the NET_BUFFER_LIST structures that are
    /// associated with the correct binding to each protocol driver": two bindings, two VCs.
    @Test func perVCIndicationsReachOnlyTheBindingThatOpenedTheVC() throws {
        let rig = try Rig()
        rig.binding.close()
        let one = VCRecorder(), two = VCRecorder()
        let b1 = try rig.adapter.openBinding(one)
        let b2 = try rig.adapter.openBinding(two)
        func queue(_ b: Binding, _ mac: MACAddress) throws -> ReceiveQueueID {
            guard case let .queueAllocated(q) = try b.request(.allocateQueue(ReceiveQueueParameters(numberOfBuffers: 8))) else {
                throw NDISError.invalidState("no queue")
            }
            _ = try b.request(.queueAllocationComplete([q]))
            _ = try b.request(.setFilter(ReceiveFilterParameters(queue: q, tests: [.macDestination(mac)])))
            return q
        }
        let q1 = try queue(b1, macA), q2 = try queue(b2, macB)
        let vc1 = try b1.openVirtualConnection(queue: q1)
        let vc2 = try b2.openVirtualConnection(queue: q2)
        let toA = frame(to: macA, tag: 1), toB = frame(to: macB, tag: 2)
        rig.run([toA, toB, toB])
        #expect(one.coIndications.map(\.vc) == [vc1.handle])
        #expect(two.coIndications.map(\.vc) == [vc2.handle])
        #expect(one.coIndications.flatMap(\.frames) == [toA])
        #expect(two.coIndications.flatMap(\.frames) == [toB, toB])
        #expect((one.coIndications + two.coIndications).allSatisfy { $0.ownBinding })
        // The miniport's own per-VC indication (NdisMCoIndicateReceiveNetBufferLists) on VC 2.
        let handle = MiniportHandle(rig.adapter)
        let lq = try #require(rig.miniport.queues[q2.rawValue])
        let chain = lq.free.popFirst()
        guard let nbl = chain.first else { Issue.record("no free buffer on \(q2)"); _ = chain.takeAllForTesting(); return }
        rig.miniport.fill(nbl, toB)
        nbl.info.receiveQueueID = q2.rawValue
        handle.coIndicateReceive(chain, vc: vc2.handle)
        #expect(one.coIndications.count == 1, "binding 1 sees nothing of VC 2")
        #expect(two.coIndications.map(\.vc) == [vc2.handle, vc2.handle])
        #expect(two.coIndications.last?.frames == [toB])
        #expect(rig.adapter.outstandingNetBufferLists == 0)
    }

    // MARK: Shared memory in receive buffers (000, 001)

    /// NET_BUFFER_SHARED_MEMORY: "SharedMemoryOffset: the offset, in bytes, of the shared memory" —
    /// for the lookahead segment and the post-lookahead segment of a split frame, and for a whole one.
    @Test func everySegmentsSharedMemoryOffsetNamesItsOwnBytes() throws {
        let rig = try Rig()
        rig.recorder.hold = true
        let params = ReceiveQueueParameters(flags: .lookaheadSplitRequired, numberOfBuffers: 8, lookaheadSize: 42)
        let (q, _) = try rig.queue([.macDestination(macA)], params: params)
        rig.run([frame(to: macA, payload: (0..<100).map { UInt8($0) }), frame(to: macA, payload: (0..<200).map { UInt8($0 & 0x7f) }),
                 frame(to: macOther)])
        var split = 0, whole = 0
        rig.recorder.held.forEach { nbl in
            #expect(nbl.sharedMemoryInfoValid)
            if nbl.info.receiveQueueID == q.rawValue {
                #expect(nbl.segmentCount == 2)
                split += 1
            } else {
                whole += 1
            }
            let problems = sharedMemoryProblems(nbl, rig.adapter)
            #expect(problems.isEmpty, "\(problems)")
        }
        #expect(split == 2 && whole == 1)
        rig.recorder.returnHeld()
    }

    /// "lookahead size": a protocol asks only for a size the adapter advertises
    /// (NDIS_RECEIVE_FILTER_CAPABILITIES MinLookaheadSplitSize / MaxLookaheadSplitSize).
    @Test func lookaheadSizesOutsideTheAdvertisedRangeAreRefused() throws {
        let rig = try Rig()
        guard case let .hardwareCapabilities(caps) = try rig.binding.request(.hardwareCapabilities) else { Issue.record("no capabilities"); return }
        let lo = caps.minLookaheadSplitSize, hi = caps.maxLookaheadSplitSize
        #expect(lo > 0 && lo < hi)
        let before = rig.miniport.requestLog.count
        for size in [lo - 1, hi + 1, 0] {
            do {
                _ = try rig.binding.request(.allocateQueue(ReceiveQueueParameters(flags: .lookaheadSplitRequired, numberOfBuffers: 8, lookaheadSize: size)))
                Issue.record("lookahead size \(size) is outside \(lo)...\(hi) and must be refused")
            } catch {
                guard case let .invalidParameter(message) = error else { Issue.record("wrong error: \(error)"); continue }
                #expect(message.contains("\(size)") && message.contains("\(lo)...\(hi)"), "\(message)")
            }
        }
        #expect(rig.miniport.requestLog.count == before, "refused sizes never reach the miniport")
        guard case let .queues(none) = try rig.binding.request(.enumerateQueues) else { return }
        #expect(none.isEmpty)
        for size in [lo, hi] {
            guard case let .queueAllocated(q) = try rig.binding.request(.allocateQueue(ReceiveQueueParameters(flags: .lookaheadSplitRequired, numberOfBuffers: 8, lookaheadSize: size))) else {
                Issue.record("lookahead size \(size) is inside the range"); continue
            }
            _ = try rig.binding.request(.freeQueue(q))
        }
    }
}
