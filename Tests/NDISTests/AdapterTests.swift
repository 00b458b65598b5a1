import Testing
@testable import NDIS

@Suite("Adapter lifecycle and requests")
struct AdapterLifecycleTests {
    @Test func initializeLeavesTheAdapterPausedAndRestartRunsIt() throws {
        let provider = HostMemoryProvider()
        let mp = LoopbackMiniport()
        let adapter = Adapter(name: "lo", miniport: mp, sharedMemory: provider)
        #expect(adapter.state == .halted)
        try adapter.initialize()
        #expect(adapter.state == .paused)
        #expect(adapter.attributes?.permanentAddress == mp.configuration.macAddress)
        try adapter.restart()
        #expect(adapter.state == .running)
        #expect(throws: NDISError.self) { try adapter.restart() }
        #expect(adapter.halt().isClean)
        #expect(provider.liveRegionCount == 0)
    }

    @Test func pausedAdapterIndicatesNothing() throws {
        // A miniport that (wrongly) receives while Paused: the framework discards and counts it.
        let rig = try Rig { $0.receivesBeforeRestart = true }
        #expect(rig.adapter.pause())
        rig.run([frame(to: macA)])
        #expect(rig.recorder.indications.isEmpty)
        #expect(rig.adapter.frameworkDrops == 1)
        #expect(rig.adapter.indicationsWhilePaused == 1)
        guard case let .statistics(s) = try rig.adapter.request(.statistics) else { Issue.record("no statistics"); return }
        #expect(s.indicationsWhilePaused == 1)
    }

    @Test func receiveStartsAtRestartAfterTheBindingQueuesAndFiltersWereSetWhilePaused() throws {
        // NDIS's order: initialize leaves the adapter Paused with receive off; requests work while
        // Paused; restart enables receive. The wire is busy from the start.
        let provider = HostMemoryProvider()
        let mp = LoopbackMiniport()
        let adapter = Adapter(name: "lo", miniport: mp, sharedMemory: provider)
        try adapter.initialize()
        let early = [frame(to: macA), frame(to: macB), frame(to: macA)]
        for f in early { mp.inject(f) }
        while adapter.poll(budget: 64) > 0 {}
        let recorder = Recorder()
        let binding = try adapter.openBinding(recorder)
        try binding.request(.setPacketFilter([.directed, .broadcast, .promiscuous]))
        guard case let .queueAllocated(q) = try binding.request(.allocateQueue(ReceiveQueueParameters(numberOfBuffers: 16))) else {
            Issue.record("no queue")
            return
        }
        _ = try binding.request(.queueAllocationComplete([q]))
        _ = try binding.request(.setFilter(ReceiveFilterParameters(queue: q, tests: [.macDestination(macA)])))
        while adapter.poll(budget: 64) > 0 {}
        #expect(recorder.indications.isEmpty)
        #expect(adapter.indicationsWhilePaused == 0 && adapter.frameworkDrops == 0)
        try adapter.restart()
        while adapter.poll(budget: 64) > 0 {}
        // Every early frame is received after restart, each on the queue its filter selects.
        #expect(recorder.indications.flatMap(\.queueIDs) == [0, q.rawValue, q.rawValue].sorted())
        #expect(recorder.indications.filter { $0.queue == q }.flatMap(\.frames) == [early[0], early[2]])
        #expect(adapter.indicationsWhilePaused == 0)
        #expect(adapter.halt().isClean)
    }

    @Test func pauseWaitsUntilEveryIndicatedReceiveIsBack() throws {
        let rig = try Rig()
        rig.recorder.hold = true
        rig.run([frame(to: macA), frame(to: macB)])
        var completed = false
        #expect(rig.adapter.pause { completed = true } == false)
        #expect(rig.adapter.state == .pausing)
        #expect(!completed)
        rig.recorder.returnHeld()
        #expect(completed)
        #expect(rig.adapter.state == .paused)
    }

    @Test func haltReportsNBLsStillHeldKeepsTheirMemoryUntilTheLateReturnAndCountsIt() throws {
        let rig = try Rig()
        rig.recorder.hold = true
        let f = frame(to: macA)
        rig.run([f])
        let report = rig.adapter.halt()
        #expect(report.outstandingNBLs == 1)
        #expect(report.sharedMemoryKeptMapped == 1)
        #expect(!report.isClean)
        #expect(rig.provider.liveRegionCount == 1, "the block under the held NBL stays mapped")
        var bytes: [[UInt8]] = []
        rig.recorder.held.forEach { bytes.append($0.dataBytes()) }
        #expect(bytes == [f], "a held NBL reads its frame after halt")
        // The late return: counted, not handed to the halted miniport, and it frees the block.
        rig.recorder.returnHeld()
        #expect(rig.adapter.lateReturns == 1)
        #expect(rig.adapter.outstandingNetBufferLists == 0)
        #expect(rig.provider.liveRegionCount == 0)
    }

    @Test func surpriseRemovalFailsSendsAndRequestsUntilHalt() throws {
        let rig = try Rig()
        let pool = try rig.binding.makeSendPool(count: 4, bufferSize: 128)
        rig.adapter.surpriseRemove()
        #expect(rig.recorder.statuses.contains(.surpriseRemoval))
        do {
            _ = try rig.binding.request(.enumerateQueues)
            Issue.record("requests must fail after surprise removal")
        } catch {
            guard case .deviceRemoved = error else { Issue.record("wrong error \(error)"); return }
        }
        let chain = pool.allocate(count: 2)
        chain.forEach { nbl in
            let bytes = frame(to: macA)
            bytes.withUnsafeBytes { _ = SendPool.fill(nbl, with: $0) }
        }
        rig.binding.send(chain)
        #expect(rig.recorder.sendCompletions == [.deviceRemoved, .deviceRemoved])
        #expect(rig.miniport.transmitted.isEmpty)
        #expect(rig.adapter.halt().isClean)
    }

    @Test func requestsAreValidatedBeforeTheMiniportSeesThem() throws {
        let rig = try Rig()
        let before = rig.miniport.requestLog.count
        #expect(throws: NDISError.self) { try rig.binding.request(.setFilter(ReceiveFilterParameters(queue: ReceiveQueueID(7), tests: [.macDestination(macA)]))) }
        #expect(throws: NDISError.self) { try rig.binding.request(.allocateQueue(ReceiveQueueParameters(processorAffinity: []))) }
        #expect(throws: NDISError.self) { try rig.binding.request(.setFilter(ReceiveFilterParameters(queue: .default, tests: [FieldTest(field: .vlanID, value: [0x10, 0x00])]))) }
        #expect(throws: NDISError.self) { try rig.binding.request(.setMulticastList([macA])) }
        #expect(rig.miniport.requestLog.count == before, "invalid requests never reach the miniport")
    }
}

@Suite("Protocol bindings")
struct BindingTests {
    @Test func receiveCallbackGetsChainCountQueueAndFlags() throws {
        let rig = try Rig()
        rig.run([frame(to: macA), frame(to: macB)])
        let ind = try #require(rig.recorder.indications.first)
        #expect(ind.count == 2)
        #expect(ind.queue == .default)
        #expect(ind.flags.contains(.singleQueue))
        #expect(ind.flags.contains(.sharedMemoryInfoValid))
        #expect(ind.queueIDs == [0, 0])
    }

    @Test func frameTypeSubscriptionRoutesFramesToTheRightBinding() throws {
        let rig = try Rig()
        rig.binding.close()
        let arp = Recorder(), ip = Recorder()
        _ = try rig.adapter.openBinding(arp, frameTypes: [0x0806])
        _ = try rig.adapter.openBinding(ip, frameTypes: [0x0800])
        rig.run([frame(to: macA, etherType: 0x0806), frame(to: macA, etherType: 0x0800), frame(to: macA, etherType: 0x86dd)])
        #expect(arp.allFrames.count == 1 && arp.allFrames[0][12] == 0x08 && arp.allFrames[0][13] == 0x06)
        #expect(ip.allFrames.count == 1 && ip.allFrames[0][13] == 0x00)
        #expect(rig.adapter.frameworkDrops == 1, "the IPv6 frame had no binding")
        #expect(rig.adapter.outstandingNetBufferLists == 0)
    }

    @Test func returnsMayComeInAnyOrderAndMixEarlierIndications() throws {
        let rig = try Rig()
        rig.recorder.hold = true
        rig.run([frame(to: macA, tag: 1), frame(to: macA, tag: 2)])
        rig.run([frame(to: macA, tag: 3), frame(to: macA, tag: 4)])
        #expect(rig.recorder.indications.count == 2)
        #expect(rig.adapter.outstandingNetBufferLists == 4)
        let free0 = rig.miniport.freeBuffers(queue: .default)
        // Return 4 and 1 first (across both indications), then the rest.
        var picked = rig.recorder.held.removeAll { $0.byte(at: 14) == 4 || $0.byte(at: 14) == 1 }
        #expect(picked.count == 2)
        rig.binding.returnNetBufferLists(picked.removeAll { _ in true })
        #expect(rig.adapter.outstandingNetBufferLists == 2)
        #expect(rig.miniport.freeBuffers(queue: .default) == free0 + 2)
        rig.recorder.returnHeld()
        #expect(rig.adapter.outstandingNetBufferLists == 0)
        _ = consume picked
    }

    @Test func sendsCompleteWithPerNBLStatus() throws {
        let rig = try Rig()
        let pool = try rig.binding.makeSendPool(count: 4, bufferSize: 256)
        let chain = pool.allocate(count: 3)
        var i: UInt8 = 0
        chain.forEach { nbl in
            i += 1
            frame(to: macB, tag: i).withUnsafeBytes { _ = SendPool.fill(nbl, with: $0) }
        }
        rig.binding.send(chain)
        #expect(rig.recorder.sendCompletions == [.success, .success, .success])
        #expect(rig.miniport.transmitted.map { $0[14] } == [1, 2, 3])
        #expect(pool.pool.freeCount == 4)
        // Paused: sends complete with NDIS_STATUS_PAUSED.
        rig.adapter.pause()
        rig.binding.send(pool.allocate(count: 1))
        #expect(rig.recorder.sendCompletions.last == .paused)
    }

    @Test func virtualConnectionStandsForAQueueAndCarriesItsSourceHandle() throws {
        let rig = try Rig()
        let (q, _) = try rig.queue([.macDestination(macA)])
        let vc = try rig.binding.openVirtualConnection(queue: q)
        #expect(vc.sourceHandle != rig.adapter.sourceHandle)
        rig.recorder.hold = true
        rig.run([frame(to: macA), frame(to: macB)])
        #expect(rig.recorder.coIndications.count == 1)
        #expect(rig.recorder.coIndications.first?.0 == vc.handle)
        #expect(rig.recorder.indications.count == 1, "the default queue still indicates connectionless")
        var sources = Set<UInt32>()
        rig.recorder.held.forEach { sources.insert($0.sourceHandle.rawValue) }
        #expect(sources == [vc.sourceHandle.rawValue, rig.adapter.sourceHandle.rawValue])
        // Returns route by SourceHandle: one call with both kinds.
        rig.recorder.returnHeld()
        #expect(rig.adapter.outstandingNetBufferLists == 0)
    }

    @Test func passThroughModuleSavesAndRestoresTheSourceHandle() throws {
        let rig = try Rig()
        rig.binding.close()
        let top = Recorder()
        top.hold = true
        let module = PassThroughModule(upper: top)
        _ = try rig.adapter.openBinding(module)
        rig.run([frame(to: macA), frame(to: macB)])
        #expect(top.allFrames.count == 2)
        var sources = Set<UInt32>()
        top.held.forEach { sources.insert($0.sourceHandle.rawValue) }
        #expect(sources == [module.sourceHandle.rawValue], "the module put its own handle on forwarded NBLs")
        #expect(module.forwarded == 2)
        top.returnHeld()
        #expect(module.forwarded == 0)
        #expect(module.badRestores == 0)
        #expect(rig.adapter.outstandingNetBufferLists == 0, "restored handles led the NBLs back to the miniport")
    }
}
