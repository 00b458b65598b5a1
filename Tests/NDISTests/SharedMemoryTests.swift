import Testing
@testable import NDIS

@Suite("Shared memory")
struct SharedMemoryTests {
    @Test func allocationReturnsAddressScatterGatherListAndBothHandles() throws {
        let rig = try Rig()
        let before = rig.provider.liveRegionCount
        let (q, _) = try rig.queue([.macDestination(macA)])
        let blocks = rig.adapter.sharedMemoryAllocations.filter { $0.queue == q }
        #expect(blocks.count == 1)
        let shm = try #require(blocks.first)
        #expect(shm.usage == .receive)
        #expect(shm.sharedMemoryHandle.rawValue != 0)
        #expect(shm.allocationHandle.rawValue == shm.sharedMemoryHandle.rawValue)
        #expect(shm.scatterGatherList.reduce(0) { $0 + $1.length } == shm.length)
        #expect(rig.provider.liveRegionCount == before + 1)
    }

    @Test func contiguousFlagGivesOneIOVARangeAndNoFlagMayGiveSeveral() throws {
        let provider = HostMemoryProvider()
        let mp = LoopbackMiniport()
        let adapter = Adapter(name: "t", miniport: mp, sharedMemory: provider)
        try adapter.initialize()
        let handle = MiniportHandle(adapter)
        let c = try handle.allocateSharedMemory(queue: .default, length: 64 * 1024, usage: .transmit, flags: .contiguous)
        #expect(c.scatterGatherList.count == 1)
        let s = try handle.allocateSharedMemory(queue: .default, length: 64 * 1024, usage: .transmit)
        #expect(s.scatterGatherList.count == 2)
        // The device address of byte N follows the scatter-gather list, not the virtual address.
        let second = s.scatterGatherList[1]
        #expect(s.region.iova(atOffset: s.scatterGatherList[0].length) == second.iova)
        try handle.freeSharedMemory(c.allocationHandle)
        try handle.freeSharedMemory(s.allocationHandle)
        #expect(adapter.halt().isClean)
        #expect(provider.liveRegionCount == 0)
    }

    @Test func nonDefaultQueueMemoryWaitsForAllocationComplete() throws {
        let rig = try Rig()
        guard case let .queueAllocated(q) = try rig.binding.request(.allocateQueue(ReceiveQueueParameters(numberOfBuffers: 8))) else { Issue.record("no queue"); return }
        let handle = MiniportHandle(rig.adapter)
        #expect(throws: NDISError.self) { try handle.allocateSharedMemory(queue: q, length: 4096, usage: .receive) }
        do {
            _ = try handle.allocateSharedMemory(queue: q, length: 4096, usage: .receive)
        } catch {
            #expect(error.description.contains("ALLOCATION_COMPLETE"))
        }
        _ = try rig.binding.request(.queueAllocationComplete([q]))
        let shm = try handle.allocateSharedMemory(queue: q, length: 4096, usage: .receive)
        #expect(shm.queue == q)
    }

    @Test func defaultQueueMemoryIsFreedOnlyAtHalt() throws {
        let rig = try Rig()
        let defaults = rig.adapter.sharedMemoryAllocations.filter { $0.queue.isDefault && $0.usage.isReceive }
        let shm = try #require(defaults.first)
        let handle = MiniportHandle(rig.adapter)
        do {
            try handle.freeSharedMemory(shm.allocationHandle)
            Issue.record("freeing the default queue's memory while running must fail")
        } catch {
            #expect(error.description.contains("MiniportHaltEx"))
        }
        let report = rig.adapter.halt()
        #expect(report.isClean, "\(report)")
        #expect(rig.provider.liveRegionCount == 0)
    }

    @Test func freeingMemoryThatAnOutstandingNBLUsesIsRefused() throws {
        let rig = try Rig()
        let (q, f) = try rig.queue([.macDestination(macA)])
        rig.recorder.hold = true
        rig.run([frame(to: macA)])
        #expect(rig.recorder.indications.count == 1)
        _ = try rig.binding.request(.clearFilter(f))
        let shm = try #require(rig.adapter.sharedMemoryAllocations.first { $0.queue == q })
        let error = #expect(throws: NDISError.self) { try MiniportHandle(rig.adapter).freeSharedMemory(shm.allocationHandle) }
        #expect(error?.status == .failure)
        #expect(error?.description.contains("not returned") == true)
        rig.recorder.returnHeld()
    }

    @Test func unknownAllocationHandleIsAnError() throws {
        let rig = try Rig()
        #expect(throws: NDISError.unknownAllocation(AllocationHandle(rawValue: 999))) {
            try MiniportHandle(rig.adapter).freeSharedMemory(AllocationHandle(rawValue: 999))
        }
    }

    @Test func providerFailureBecomesAResourcesError() throws {
        let provider = HostMemoryProvider()
        provider.failNextAllocations = 1
        let adapter = Adapter(name: "t", miniport: LoopbackMiniport(), sharedMemory: provider)
        #expect(throws: NDISError.self) { try adapter.initialize() }
        #expect(adapter.state == .halted)
        #expect(provider.liveRegionCount == 0)
    }
}
