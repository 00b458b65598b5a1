import DeviceAccess
import Glibc
import IGB
import IGBModel
import NDIS
import Foundation
import Synchronization
import Testing

/// Records, from whichever worker thread indicates, the queue, kernel thread id and CPU of every
/// frame, and returns each chain at once (on that thread).
final class ThreadRecorder: ProtocolDriver, @unchecked Sendable {
    struct Seen: Sendable { var queue: UInt16; var thread: Int; var cpu: Int }
    let seen = Mutex<[Seen]>([])
    var binding: Binding?
    /// When set, chains are kept for another thread to return (takeHeld) instead of returned at once.
    nonisolated(unsafe) var holdForReturner = false
    /// Set when the returner thread may stop (once nothing is held).
    let returnerDone = Atomic<Bool>(false)
    private let heldLock = NSLock()
    private var heldChain = NetBufferListChain()

    func bindingOpened(_ binding: Binding) { self.binding = binding }

    func receiveNetBufferLists(_ chain: consuming NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
        let me = Seen(queue: queue.rawValue, thread: IGBReceiveWorkerProbe.threadID(), cpu: IGBReceiveWorkerProbe.cpu())
        seen.withLock { for _ in 0..<count { $0.append(me) } }
        if holdForReturner {
            heldLock.lock()
            heldChain.append(chain)
            heldLock.unlock()
        } else {
            binding.returnNetBufferLists(chain)
        }
    }

    var heldCount: Int {
        heldLock.lock()
        defer { heldLock.unlock() }
        return heldChain.count
    }
    func takeHeld() -> NetBufferListChain {
        var out = NetBufferListChain()
        heldLock.lock()
        swap(&out, &heldChain)
        heldLock.unlock()
        return out
    }

    func sendNetBufferListsComplete(_ chain: consuming NetBufferListChain, binding: Binding) {
        binding.freeSendNetBufferLists(chain)
    }

    var count: Int { seen.withLock { $0.count } }
    func frames(on queue: UInt16) -> [Seen] { seen.withLock { $0.filter { $0.queue == queue } } }
}

enum IGBReceiveWorkerProbe {
    static func threadID() -> Int {
        typealias F = @convention(c) () -> pid_t
        guard let s = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "gettid") else { return -1 }
        return Int(unsafeBitCast(s, to: F.self)())
    }
    static func cpu() -> Int {
        typealias F = @convention(c) () -> Int32
        guard let s = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "sched_getcpu") else { return -1 }
        return Int(unsafeBitCast(s, to: F.self)())
    }
}

/// Waits (up to `seconds`) until `condition` holds.
func eventually(seconds: Double = 5, _ condition: () -> Bool) -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: .milliseconds(Int(seconds * 1000)))
    while clock.now < deadline {
        if condition() { return true }
        usleep(1000)
    }
    return condition()
}

@Suite(.serialized) struct ReceiveWorkerTests {
    static let macB = MACAddress(0x02, 0, 0, 0, 0, 0xB1)

    /// The model free-running, interrupts on (EITR 20 µs), one worker per queue.
    func makeBench(idlePolls: Int = 8, sleepMilliseconds: Int32 = 2000) throws -> (Bench, ThreadRecorder) {
        let bench = try Bench(keepModelRunning: true) {
            $0.useInterrupts = true
            $0.interruptThrottleMicroseconds = 20
            $0.receiveWorkers = true
            $0.defaultQueueAffinity = [0]
            $0.workerIdlePollsBeforeSleep = idlePolls
            $0.workerSleepTimeoutMilliseconds = sleepMilliseconds
        }
        // The Recorder of Bench is not thread-safe: close it and bind one that is.
        bench.binding.close()
        let recorder = ThreadRecorder()
        _ = try bench.adapter.openBinding(recorder)
        return (bench, recorder)
    }

    func allocateQueue(_ recorder: ThreadRecorder, affinity: Set<Int>) throws -> ReceiveQueueID {
        let binding = try #require(recorder.binding)
        guard case let .queueAllocated(id) = try binding.request(.allocateQueue(ReceiveQueueParameters(processorAffinity: affinity, numberOfBuffers: 64))),
              case .allocationComplete = try binding.request(.queueAllocationComplete([id])),
              case .filterSet = try binding.request(.setFilter(ReceiveFilterParameters(queue: id, tests: [.macDestination(Self.macB)]))) else {
            Issue.record("queue setup failed")
            return .default
        }
        return id
    }

    func halt(_ bench: Bench) {
        bench.haltAndCheck()
        bench.model.stop()
    }

    @Test func framesOfEachQueueArriveOnTheirOwnPinnedWorker() throws {
        let (bench, recorder) = try makeBench()
        #expect(bench.adapter.isConcurrentDatapath)
        let q = try allocateQueue(recorder, affinity: [1])
        let workers = bench.miniport.receiveWorkers
        #expect(workers.count == 2)
        let defaultWorker = try #require(bench.miniport.receiveWorker(for: .default))
        let queueWorker = try #require(bench.miniport.receiveWorker(for: q))
        #expect(defaultWorker.pinnedCPUs == [0])
        let cpus = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        #expect(queueWorker.pinnedCPUs == (cpus > 1 ? [1] : []))
        // Bursts of 8 per queue (the model's receive FIFO is small), each received before the next.
        for burst in 0..<5 {
            for i in 0..<8 {
                bench.model.inject(Frames.udp(to: bench.address, sourcePort: UInt16(burst * 8 + i), payload: Frames.payload(40)))
                bench.model.inject(Frames.udp(to: Self.macB, sourcePort: UInt16(burst * 8 + i), payload: Frames.payload(40)))
            }
            #expect(eventually { recorder.count == 16 * (burst + 1) }, "frames seen: \(recorder.count) (default \(recorder.frames(on: 0).count))")
        }
        let onDefault = recorder.frames(on: 0), onQueue = recorder.frames(on: q.rawValue)
        #expect(onDefault.count == 40 && onQueue.count == 40)
        #expect(onDefault.allSatisfy { $0.thread == defaultWorker.threadID && $0.cpu == 0 })
        if cpus > 1 {
            #expect(onQueue.allSatisfy { $0.thread == queueWorker.threadID && $0.cpu == 1 })
        } else {
            print("only one CPU: the queue worker's CPU is not checked")
            #expect(onQueue.allSatisfy { $0.thread == queueWorker.threadID })
        }
        #expect(defaultWorker.threadID != queueWorker.threadID)
        #expect(bench.adapter.outstandingNetBufferLists == 0)
        halt(bench)
    }

    @Test func anIdleWorkerSleepsOnItsEventfdAndAFrameWakesIt() throws {
        let (bench, recorder) = try makeBench(idlePolls: 4, sleepMilliseconds: 5000)
        let worker = try #require(bench.miniport.receiveWorker(for: .default))
        // Idle: the worker goes to sleep on its vector and stops polling.
        #expect(eventually { worker.eventWaits >= 1 })
        usleep(20_000)
        let polls = worker.polls, waits = worker.eventWaits
        usleep(50_000)
        #expect(worker.polls == polls, "an idle worker kept polling: \(polls) → \(worker.polls)")
        #expect(worker.eventWaits == waits)
        // A frame raises the queue's MSI-X vector: the worker wakes and indicates it.
        let interruptsBefore = bench.model.interruptCounts[bench.miniport.interruptVector(for: .default)!]
        bench.model.inject(Frames.udp(to: bench.address, payload: Frames.payload(40)))
        #expect(eventually { recorder.count == 1 })
        #expect(worker.wakeups >= 1)
        #expect(worker.polls > polls)
        #expect(bench.model.interruptCounts[bench.miniport.interruptVector(for: .default)!] > interruptsBefore)
        // And it goes back to sleep.
        #expect(eventually { worker.eventWaits > waits })
        halt(bench)
    }

    @Test func haltJoinsEveryWorkerAndLeavesNothingMapped() throws {
        let (bench, recorder) = try makeBench()
        _ = try allocateQueue(recorder, affinity: [0, 1])
        #expect(eventually { bench.miniport.receiveWorkers.allSatisfy { $0.threadID != 0 } })
        let tids = bench.miniport.receiveWorkers.map(\.threadID)
        #expect(tids.count == 2)
        for tid in tids { #expect(access("/proc/self/task/\(tid)", F_OK) == 0) }
        bench.model.inject(Frames.udp(to: Self.macB, payload: Frames.payload(40)))
        #expect(eventually { recorder.count == 1 })
        halt(bench)
        #expect(bench.miniport.receiveWorkers.isEmpty)
        #expect(!bench.adapter.isConcurrentDatapath)
        for tid in tids { #expect(access("/proc/self/task/\(tid)", F_OK) != 0, "worker thread \(tid) still exists") }
    }

    @Test func aQueueAffinityWithNoExistingCPUIsNamedAndTheWorkerRunsUnpinned() throws {
        let (bench, recorder) = try makeBench()
        let q = try allocateQueue(recorder, affinity: [4000])
        let worker = try #require(bench.miniport.receiveWorker(for: q))
        #expect(worker.pinnedCPUs.isEmpty)
        #expect(worker.pinningProblem?.contains("4000") == true)
        bench.model.inject(Frames.udp(to: Self.macB, payload: Frames.payload(40)))
        #expect(eventually { recorder.count == 1 })
        halt(bench)
    }

    /// For ThreadSanitizer (Tests/run's TSan step) as much as for the counts: both workers indicate
    /// while a third thread returns every chain (the lock-free return path into each lane), and the
    /// test thread reads statistics meanwhile.
    @Test func chainsReturnedFromAnotherThreadWhileTheWorkersIndicateAllComeBack() throws {
        let (bench, recorder) = try makeBench()
        recorder.holdForReturner = true
        let q = try allocateQueue(recorder, affinity: [1])
        nonisolated(unsafe) let binding = try #require(recorder.binding)
        let returner = Thread {
            while !recorder.returnerDone.load(ordering: .acquiring) || recorder.heldCount > 0 {
                let chain = recorder.takeHeld()
                if chain.isEmpty { usleep(100) }
                binding.returnNetBufferLists(chain)
            }
        }
        returner.start()
        for burst in 0..<10 {
            for i in 0..<8 {
                bench.model.inject(Frames.udp(to: bench.address, sourcePort: UInt16(burst * 8 + i), payload: Frames.payload(40)))
                bench.model.inject(Frames.udp(to: Self.macB, sourcePort: UInt16(burst * 8 + i), payload: Frames.payload(40)))
            }
            _ = try binding.request(.statistics)
            #expect(eventually { recorder.count == 16 * (burst + 1) }, "frames seen: \(recorder.count)")
        }
        recorder.returnerDone.store(true, ordering: .releasing)
        #expect(eventually { recorder.heldCount == 0 && bench.adapter.outstandingNetBufferLists == 0 },
                "outstanding after the returner: \(bench.adapter.outstandingNetBufferLists)")
        while !returner.isFinished { usleep(1000) }
        #expect(recorder.frames(on: q.rawValue).count == 80)
        halt(bench)
    }
}
