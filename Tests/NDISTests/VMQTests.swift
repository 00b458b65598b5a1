import Testing
@testable import NDIS

@Suite("VMQ receive queues and filters")
struct VMQTests {
    @Test func queueIdsAreAssignedByTheFrameworkAndTheDefaultQueueAlwaysExists() throws {
        let rig = try Rig()
        let (q1, _) = try rig.queue([.macDestination(macA)])
        let (q2, _) = try rig.queue([.macDestination(macB)])
        #expect(q1 == ReceiveQueueID(1) && q2 == ReceiveQueueID(2))
        #expect(throws: NDISError.self) { try rig.binding.request(.freeQueue(.default)) }
        guard case let .queues(list) = try rig.binding.request(.enumerateQueues) else { Issue.record("no list"); return }
        #expect(list.map(\.id) == [q1, q2])
        #expect(list.allSatisfy { $0.state == .running })
    }

    @Test func framesFollowMacFiltersAndUnmatchedGoToTheDefaultQueue() throws {
        let rig = try Rig()
        let (qa, _) = try rig.queue([.macDestination(macA)])
        let (qb, _) = try rig.queue([.macDestination(macB)])
        rig.run([frame(to: macA, tag: 1), frame(to: macB, tag: 2), frame(to: macOther, tag: 3), frame(to: macA, tag: 4)])
        var byQueue: [UInt16: [UInt8]] = [:]
        for ind in rig.recorder.indications {
            for (i, f) in ind.frames.enumerated() {
                byQueue[ind.queueIDs[i], default: []].append(f[14])
                #expect(ind.queueIDs[i] == ind.queue.rawValue, "each NBL carries its queue id")
            }
        }
        #expect(byQueue[qa.rawValue] == [1, 4])
        #expect(byQueue[qb.rawValue] == [2])
        #expect(byQueue[0] == [3])
    }

    @Test func testsAreANDedWithinAFilterAndFiltersORedOnAQueue() throws {
        let rig = try Rig()
        let (q, _) = try rig.queue([.macDestination(macA), .vlanID(100)])
        _ = try rig.binding.request(.setFilter(ReceiveFilterParameters(queue: q, tests: [.macDestination(macB)])))
        rig.run([frame(to: macA, vlan: 100, tag: 1), frame(to: macA, vlan: 200, tag: 2), frame(to: macA, tag: 3), frame(to: macB, tag: 4)])
        let onQ = rig.recorder.indications.filter { $0.queue == q }.flatMap(\.frames).map { f in f.count > 18 && f[12] == 0x81 ? f[18] : f[14] }
        #expect(onQ == [1, 4])
    }

    @Test func vlanUntaggedOrZeroRule() throws {
        let rig = try Rig()
        let (q0, _) = try rig.queue([.vlanID(0)], flags: .vlanUntaggedOrZero)
        rig.run([frame(to: macOther, tag: 7)])
        #expect(rig.recorder.indications.last?.queue == q0, "untagged matches VLAN 0 with the flag")
        let rig2 = try Rig()
        let (q, _) = try rig2.queue([.macDestination(macA), .vlanID(0)])
        rig2.run([frame(to: macA, tag: 7)])
        #expect(rig2.recorder.indications.last?.queue == .default, "without the flag, a VLAN filter excludes untagged frames")
        _ = q
    }

    @Test func filtersTheHardwareCannotDoRunInSoftwareOnTheDefaultQueue() throws {
        let rig = try Rig()
        guard case let .queueAllocated(q) = try rig.binding.request(.allocateQueue(ReceiveQueueParameters(numberOfBuffers: 8))) else { return }
        _ = try rig.binding.request(.queueAllocationComplete([q]))
        guard case let .filterSet(fid) = try rig.binding.request(.setFilter(ReceiveFilterParameters(queue: q, tests: [.etherType(0x0806)]))) else { return }
        guard case let .filters(filters) = try rig.binding.request(.enumerateFilters(q)) else { return }
        #expect(filters.first?.id == fid)
        #expect(filters.first?.inHardware == false, "the loopback hardware has no EtherType filter")
        guard case let .currentCapabilities(caps) = try rig.binding.request(.currentCapabilities) else { return }
        #expect(caps.placement(of: ReceiveFilterParameters(queue: q, tests: [.etherType(0x0806)])) == false)
        #expect(caps.placement(of: ReceiveFilterParameters(queue: q, tests: [.macDestination(macA)])) == true)
        rig.run([frame(to: macOther, etherType: 0x0806, tag: 1), frame(to: macOther, etherType: 0x0800, tag: 2)])
        let arp = rig.recorder.indications.filter { $0.queue == q }
        #expect(arp.flatMap(\.frames).map { $0[14] } == [1])
        #expect(arp.first?.queueIDs == [q.rawValue])
        #expect(rig.recorder.indications.filter { $0.queue == .default }.flatMap(\.frames).map { $0[14] } == [2])
        #expect(rig.adapter.outstandingNetBufferLists == 0)
    }

    @Test func queueWithoutFiltersDiscardsAndStateMachineIsEnforced() throws {
        let rig = try Rig()
        let (q, f) = try rig.queue([.macDestination(macA)])
        _ = try rig.binding.request(.clearFilter(f))
        guard case let .queues(list) = try rig.binding.request(.enumerateQueues) else { return }
        #expect(list.first?.state == .paused)
        // The hardware still steers (filter removed from the hardware too, so it lands on default):
        rig.run([frame(to: macA)])
        #expect(rig.recorder.indications.allSatisfy { $0.queue != q })
        // Filters before allocation complete are refused.
        guard case let .queueAllocated(q2) = try rig.binding.request(.allocateQueue(ReceiveQueueParameters(numberOfBuffers: 8))) else { return }
        #expect(throws: NDISError.self) { try rig.binding.request(.setFilter(ReceiveFilterParameters(queue: q2, tests: [.macDestination(macB)]))) }
    }

    @Test func freeIsRefusedWhileFiltersExist() throws {
        let rig = try Rig()
        let (q, f) = try rig.queue([.macDestination(macA)])
        do {
            _ = try rig.binding.request(.freeQueue(q))
            Issue.record("free with filters must fail")
        } catch {
            #expect(error.description.contains("clear them first"))
        }
        _ = try rig.binding.request(.clearFilter(f))
        guard case .done = try rig.binding.request(.freeQueue(q)) else { Issue.record("free should finish at once"); return }
        #expect(rig.adapter.sharedMemoryAllocations.allSatisfy { $0.queue != q })
    }

    @Test func freeFollowsTheFiveStepTeardown() throws {
        let rig = try Rig()
        let (q, f) = try rig.queue([.macDestination(macA)])
        rig.recorder.hold = true
        rig.run([frame(to: macA), frame(to: macA)])
        _ = try rig.binding.request(.clearFilter(f))
        let liveBefore = rig.provider.liveRegionCount
        guard case .pending = try rig.binding.request(.freeQueue(q)) else { Issue.record("must pend while NBLs are out"); return }
        // Steps 1–2 happened: DMA stopped, status indicated.
        #expect(rig.miniport.requestLog.contains { $0.hasPrefix("stopQueueDMA") })
        #expect(rig.recorder.statuses.contains(.receiveQueueDMAStopped(q)))
        // Step 3: memory still mapped while NBLs are out.
        #expect(rig.provider.liveRegionCount == liveBefore)
        #expect(!rig.miniport.requestLog.contains { $0.hasPrefix("freeQueueResources") })
        rig.recorder.returnHeld()
        // Steps 4–5.
        #expect(rig.miniport.requestLog.contains { $0.hasPrefix("freeQueueResources") })
        #expect(rig.provider.liveRegionCount == liveBefore - 1)
        #expect(rig.adapter.statusLog.contains(.requestComplete("OID_RECEIVE_FILTER_FREE_QUEUE \(q)", .success)))
        guard case let .queues(list) = try rig.binding.request(.enumerateQueues) else { return }
        #expect(list.isEmpty)
    }

    @Test func onlyTheAllocatingBindingMayChangeItsQueue() throws {
        let rig = try Rig()
        let (q, f) = try rig.queue([.macDestination(macA)])
        let other = try rig.adapter.openBinding(Recorder(), frameTypes: [0x88b5])
        #expect(throws: NDISError.self) { try other.request(.clearFilter(f)) }
        #expect(throws: NDISError.self) { try other.request(.setFilter(ReceiveFilterParameters(queue: q, tests: [.macDestination(macB)]))) }
        _ = try rig.binding.request(.setQueueParameters(q, ReceiveQueueParameterChange(processorAffinity: [1], name: "vm1")))
        guard case let .queues(list) = try rig.binding.request(.enumerateQueues) else { return }
        #expect(list.first?.parameters.name == "vm1" && list.first?.parameters.processorAffinity == [1])
    }

    @Test func queuesBeyondTheHardwareAreSoftwareOnly() throws {
        let rig = try Rig { $0.hardwareQueues = 1 }
        let (q1, _) = try rig.queue([.macDestination(macA)])
        let (q2, _) = try rig.queue([.macDestination(macB)])
        guard case let .queues(list) = try rig.binding.request(.enumerateQueues) else { return }
        #expect(list.first { $0.id == q1 }?.softwareOnly == false)
        #expect(list.first { $0.id == q2 }?.softwareOnly == true)
        rig.run([frame(to: macA, tag: 1), frame(to: macB, tag: 2)])
        #expect(rig.recorder.indications.first { $0.queue == q2 }?.frames.first?[14] == 2)
    }
}

@Suite("RESOURCES and lookahead split")
struct ResourcesAndSplitTests {
    @Test func dryPoolsIndicateWithResourcesAndLoseNoFrame() throws {
        let rig = try Rig { $0.buffersPerQueue = 4 }
        rig.recorder.hold = true
        let frames = (1...10).map { frame(to: macOther, tag: UInt8($0)) }
        rig.run(frames)
        // 4 frames owned (held), 6 indicated with RESOURCES and copied by NDIS for the recorder.
        #expect(rig.miniport.resourcesIndications == 6)
        #expect(rig.recorder.allFrames.map { $0[14] } == (1...10).map { UInt8($0) })
        var held = 0
        rig.recorder.held.forEach { _ in held += 1 }
        #expect(held == 10)
        // No NBL is owned twice: the miniport kept its reserve; the copies belong to NDIS.
        #expect(rig.adapter.outstandingNetBufferLists == 4)
        rig.recorder.returnHeld()
        #expect(rig.adapter.outstandingNetBufferLists == 0)
        #expect(rig.miniport.freeBuffers(queue: .default) == 4)
    }

    @Test func protocolThatCopiesSeesTheBorrowedChainWithTheFlag() throws {
        let rig = try Rig { $0.buffersPerQueue = 1 }
        rig.recorder.hold = true
        rig.recorder.copiesResources = true
        rig.run([frame(to: macOther, tag: 1), frame(to: macOther, tag: 2)])
        #expect(rig.recorder.borrowed.count == 1)
        #expect(rig.recorder.borrowed.first?.flags.contains(.resources) == true)
        #expect(rig.recorder.borrowed.first?.frames.first?[14] == 2)
        rig.recorder.returnHeld()
    }

    @Test func lookaheadSplitGivesTwoSegmentsWithBackfillForTheHeader() throws {
        let rig = try Rig()
        rig.recorder.hold = true
        let params = ReceiveQueueParameters(flags: .lookaheadSplitRequired, numberOfBuffers: 8, lookaheadSize: 42)
        let (q, _) = try rig.queue([.macDestination(macA)], params: params)
        let f = frame(to: macA, payload: (0..<100).map { UInt8($0) })
        rig.run([f])
        var checked = false
        rig.recorder.held.forEach { nbl in
            guard nbl.info.receiveQueueID == q.rawValue else { return }
            #expect(nbl.segmentCount == 2)
            #expect(nbl.segment(0).length == 42)
            #expect(nbl.segment(1).headroom >= 42, "post-lookahead buffer keeps backfill room for the lookahead bytes")
            #expect(nbl.dataBytes() == f)
            #expect(nbl.sharedMemoryInfoValid)
            #expect(nbl.segment(0).sharedMemory != nbl.segment(1).sharedMemory)
            checked = true
        }
        #expect(checked)
        let usages = Set(rig.adapter.sharedMemoryAllocations.filter { $0.queue == q }.map(\.usage))
        #expect(usages == [.receiveLookahead, .receivePostLookahead])
        rig.recorder.returnHeld()
    }

    @Test func theFrameworkCountsEveryFrameAMiniportSplitsBeforeTheRequestedLookahead() throws {
        // A miniport that splits 10 bytes early: every frame longer than 118 bytes breaks the rule.
        let rig = try Rig { $0.lookaheadSplitShortfall = 10 }
        let params = ReceiveQueueParameters(flags: .lookaheadSplitRequired, numberOfBuffers: 8, lookaheadSize: 128)
        _ = try rig.queue([.macDestination(macA)], params: params)
        let long = frame(to: macA, payload: (0..<200).map { UInt8(truncatingIfNeeded: $0) })
        let short = frame(to: macA, payload: [1, 2, 3])   // within 118 bytes: whole in segment 0
        rig.run([long, long, short])
        #expect(rig.recorder.allFrames.count == 3)
        #expect(rig.adapter.lookaheadSplitViolations == 2)
    }

    @Test func aSplitAtTheLookaheadAndShortFramesWholeInTheLookaheadSegmentPassTheCheck() throws {
        let rig = try Rig()
        rig.recorder.hold = true
        let params = ReceiveQueueParameters(flags: .lookaheadSplitRequired, numberOfBuffers: 8, lookaheadSize: 64)
        let (q, _) = try rig.queue([.macDestination(macA)], params: params)
        let long = frame(to: macA, payload: (0..<200).map { UInt8(truncatingIfNeeded: $0) })
        let short = frame(to: macA, payload: [1, 2, 3])
        rig.run([long, short])
        var seen = 0
        rig.recorder.held.forEach { nbl in
            guard nbl.info.receiveQueueID == q.rawValue else { return }
            seen += 1
            #expect(Adapter.meetsLookaheadSplit(nbl, lookahead: 64))
            if nbl.dataLength > 64 { #expect(nbl.segment(0).length >= 64) } else { #expect(Int(nbl.segment(0).length) == nbl.dataLength) }
        }
        #expect(seen == 2)
        #expect(rig.adapter.lookaheadSplitViolations == 0)
        rig.recorder.returnHeld()
    }

    @Test func lookaheadSplitIsRefusedClearlyWhenTheMiniportCannot() throws {
        let rig = try Rig { $0.lookaheadSplit = false }
        do {
            _ = try rig.binding.request(.allocateQueue(ReceiveQueueParameters(flags: .lookaheadSplitRequired, lookaheadSize: 64)))
            Issue.record("must fail")
        } catch {
            guard case .notSupported = error else { Issue.record("wrong error \(error)"); return }
            #expect(error.description.contains("LOOKAHEAD_SPLIT_REQUIRED"))
        }
    }
}
