import DeviceAccess
import IGB
import IGBModel
import NDIS
import Synchronization
import Testing

/// Holds every NBL it is given (from whichever worker indicates) until the test returns them.
final class HoldingRecorder: ProtocolDriver, @unchecked Sendable {
    let lock = Mutex(())
    var held = NetBufferListChain()
    var perQueue: [UInt16: Int] = [:]
    var binding: Binding?

    func bindingOpened(_ binding: Binding) { self.binding = binding }

    func receiveNetBufferLists(_ chain: consuming NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
        var pending = chain
        lock.withLock { _ in
            var mine = NetBufferListChain()
            swap(&mine, &pending)
            perQueue[queue.rawValue, default: 0] += mine.count
            held.append(mine)
        }
    }

    func sendNetBufferListsComplete(_ chain: consuming NetBufferListChain, binding: Binding) {
        binding.freeSendNetBufferLists(chain)
    }

    func count(on queue: UInt16) -> Int { lock.withLock { _ in perQueue[queue] ?? 0 } }

    /// Gives back everything held, in one return, from the calling thread.
    func returnHeld() {
        var out = NetBufferListChain()
        lock.withLock { _ in swap(&out, &held) }
        binding?.returnNetBufferLists(out)
    }
}

/// "NDIS can return NET_BUFFER_LIST structures ... in any arbitrary order and in any combination",
/// with per-queue workers (lanes): NBLs return through their lane's stack and the worker charges
/// each to its own queue. Guarded by `Tests/mutate ndis-lane-return-charged-to-first-queue`.
@Suite(.serialized) struct LaneReturnTests {
    @Test func aMixedReturnThroughTheLanesIsChargedToEachNBLsOwnQueue() throws {
        let bench = try Bench(keepModelRunning: true) {
            $0.useInterrupts = true
            $0.interruptThrottleMicroseconds = 20
            $0.receiveWorkers = true
            $0.defaultQueueAffinity = [0]
        }
        defer { bench.model.stop() }
        #expect(bench.adapter.isConcurrentDatapath)
        bench.binding.close()
        let recorder = HoldingRecorder()
        let binding = try bench.adapter.openBinding(recorder)
        // A VLAN-only filter runs in software on the default queue's frames: those NBLs live in the
        // default queue's lane but are charged to queue q, so one lane's returns mix two queues.
        guard case let .queueAllocated(q) = try binding.request(.allocateQueue(ReceiveQueueParameters(numberOfBuffers: 64))),
              case .allocationComplete = try binding.request(.queueAllocationComplete([q])),
              case let .filterSet(f) = try binding.request(.setFilter(ReceiveFilterParameters(queue: q, tests: [.vlanID(100)]))) else {
            Issue.record("queue setup failed")
            bench.haltAndCheck()
            return
        }
        for i in 0..<4 {
            bench.model.inject(Frames.udp(to: bench.address, vlan: 100, sourcePort: UInt16(i), payload: Frames.payload(40)))
            bench.model.inject(Frames.udp(to: bench.address, sourcePort: UInt16(100 + i), payload: Frames.payload(40)))
        }
        #expect(eventually { recorder.count(on: q.rawValue) == 4 && recorder.count(on: 0) == 4 },
                "held: \(recorder.count(on: q.rawValue)) on \(q), \(recorder.count(on: 0)) on the default queue")
        #expect(bench.adapter.outstandingNetBufferLists(queue: q) == 4)
        #expect(bench.adapter.outstandingNetBufferLists(queue: .default) == 4)
        recorder.returnHeld()
        let settled = eventually {
            bench.adapter.outstandingNetBufferLists == 0 && bench.adapter.outstandingNetBufferLists(queue: q) == 0
                && bench.adapter.outstandingNetBufferLists(queue: .default) == 0
        }
        #expect(settled, "after the return: \(bench.adapter.outstandingNetBufferLists(queue: q)) on \(q), \(bench.adapter.outstandingNetBufferLists(queue: .default)) on the default queue, \(bench.adapter.outstandingNetBufferLists) in all")
        _ = try binding.request(.clearFilter(f))
        guard case .done = try binding.request(.freeQueue(q)) else {
            Issue.record("FREE_QUEUE of \(q) must finish at once: none of its NBLs is out")
            bench.haltAndCheck()
            return
        }
        bench.haltAndCheck()
    }
}
