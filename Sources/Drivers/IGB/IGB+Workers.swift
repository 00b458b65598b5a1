import DeviceAccess
import Glibc
import NDIS
import Synchronization

// Per-queue receive workers (opt-in: `IGBConfiguration.receiveWorkers`).
//
// One thread per receive ring of a queue (the default queue's ring slot 0 and each VMQ queue's pool
// slot), pinned to the queue's processor affinity. Each batch runs inside the ring's NDIS datapath
// lane: drain the lane's returns, receive and indicate, and (slot 0 only, which shares its vector
// with transmit queue 0) reap transmit completions under the transmit lock. While frames flow the
// worker polls; after `workerIdlePollsBeforeSleep` empty polls it re-arms its MSI-X vector (EIMS)
// and sleeps on the vector's eventfd (ixy's rate switch), bounded by `workerSleepTimeoutMilliseconds`.
// EITR throttles how often the vector can fire. Without interrupts an idle worker naps 50 µs.
//
// Threads are made when a ring becomes active (restart, QUEUE_ALLOCATION_COMPLETE) and live until
// halt; a worker whose queue was freed sleeps until a queue takes its slot again.

/// One receive worker's thread and counters.
public final class IGBReceiveWorker: @unchecked Sendable {
    /// The ring slot (and NDIS datapath lane) it serves.
    public let slot: Int
    /// CPUs asked for (the queue's processor affinity) and CPUs actually used (those that exist).
    public let requestedCPUs: Set<Int>
    public let pinnedCPUs: Set<Int>
    /// Why the worker runs unpinned, if it does.
    public let pinningProblem: String?
    let stopFlag = Atomic<Bool>(false)
    let pollCount = Atomic<Int>(0)
    let busyPollCount = Atomic<Int>(0)
    let eventWaitCount = Atomic<Int>(0)
    let wakeupCount = Atomic<Int>(0)
    let cpu = Atomic<Int>(-1)
    let tid = Atomic<Int>(0)
    var thread: pthread_t?
    var body: (() -> Void)?

    init(slot: Int, requested: Set<Int>) {
        self.slot = slot
        requestedCPUs = requested
        let online = IGBReceiveWorker.onlineCPUs()
        let usable = requested.intersection(online)
        pinnedCPUs = usable
        pinningProblem = usable.isEmpty
            ? "receive worker of ring slot \(slot): none of the CPUs \(requested.sorted()) of the queue's processor affinity exists (this machine has CPUs \(online.sorted())); the worker runs unpinned — allocate the queue with an affinity inside \(online.sorted())"
            : nil
    }

    /// Poll calls, polls that found work, sleeps on the eventfd, and sleeps an interrupt ended.
    public var polls: Int { pollCount.load(ordering: .relaxed) }
    public var busyPolls: Int { busyPollCount.load(ordering: .relaxed) }
    public var eventWaits: Int { eventWaitCount.load(ordering: .relaxed) }
    public var wakeups: Int { wakeupCount.load(ordering: .relaxed) }
    /// The CPU the worker last ran a batch on, and its kernel thread id.
    public var lastCPU: Int { cpu.load(ordering: .relaxed) }
    public var threadID: Int { tid.load(ordering: .relaxed) }

    /// The CPUs the process may run on.
    static func onlineCPUs() -> Set<Int> {
        let n = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        return Set(0..<max(1, n))
    }

    /// The calling thread's current CPU (sched_getcpu, looked up: Glibc hides it without _GNU_SOURCE).
    static func currentCPU() -> Int {
        typealias GetCPU = @convention(c) () -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "sched_getcpu") else { return -1 }
        return Int(unsafeBitCast(symbol, to: GetCPU.self)())
    }

    /// The kernel thread id (gettid, looked up like sched_getcpu).
    static func currentThreadID() -> Int {
        typealias GetTID = @convention(c) () -> pid_t
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "gettid") else { return 0 }
        return Int(unsafeBitCast(symbol, to: GetTID.self)())
    }

    /// Pins the calling thread with pthread_setaffinity_np. Returns false if the kernel refused.
    static func pinCurrentThread(to cpus: Set<Int>) -> Bool {
        var set = cpu_set_t()
        let bits = MemoryLayout<cpu_set_t>.size * 8
        withUnsafeMutableBytes(of: &set) { raw in
            for c in cpus where c >= 0 && c < bits { raw[c / 8] |= UInt8(1 << (c % 8)) }
        }
        typealias SetAffinity = @convention(c) (pthread_t, Int, UnsafeRawPointer) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "pthread_setaffinity_np") else { return false }
        let f = unsafeBitCast(symbol, to: SetAffinity.self)
        return withUnsafeBytes(of: &set) { f(pthread_self(), MemoryLayout<cpu_set_t>.size, $0.baseAddress!) } == 0
    }

    func start() {
        let context = Unmanaged.passRetained(self).toOpaque()
        var t = pthread_t()
        let r = pthread_create(&t, nil, { raw in
            // Safety: `raw` is the retained worker passed below; released here once.
            let worker = Unmanaged<IGBReceiveWorker>.fromOpaque(raw!).takeRetainedValue()
            worker.tid.store(IGBReceiveWorker.currentThreadID(), ordering: .relaxed)
            if !worker.pinnedCPUs.isEmpty { _ = IGBReceiveWorker.pinCurrentThread(to: worker.pinnedCPUs) }
            worker.body?()
            return nil
        }, context)
        if r == 0 { thread = t } else { Unmanaged<IGBReceiveWorker>.fromOpaque(context).release() }
    }

    func stopAndJoin(wake event: InterruptEvent?) {
        stopFlag.store(true, ordering: .relaxed)
        event?.signal()
        if let t = thread { pthread_join(t, nil) }
        thread = nil
        body = nil
    }
}

/// Per-miniport worker state (the transmit lock and the workers by slot).
final class IGBWorkerSet: @unchecked Sendable {
    var workers: [IGBReceiveWorker?] = Array(repeating: nil, count: 8)
    /// Transmit ring ownership: senders (any thread) and slot 0's worker (completions). Recursive:
    /// a send completion may send again.
    let txLock: UnsafeMutablePointer<pthread_mutex_t>
    /// Wakes a worker whose slot's queue went away (it may be waiting on a vector).
    var wakeEvents: [InterruptEvent?] = Array(repeating: nil, count: 8)

    init() {
        txLock = .allocate(capacity: 1)
        var attr = pthread_mutexattr_t()
        pthread_mutexattr_init(&attr)
        pthread_mutexattr_settype(&attr, Int32(PTHREAD_MUTEX_RECURSIVE))
        pthread_mutex_init(txLock, &attr)
        pthread_mutexattr_destroy(&attr)
    }

    deinit {
        pthread_mutex_destroy(txLock)
        txLock.deallocate()
    }
}

extension IGBMiniport {
    /// The receive workers running, by ring slot (empty without `receiveWorkers`).
    public var receiveWorkers: [IGBReceiveWorker] { workerSet?.workers.compactMap { $0 } ?? [] }

    /// The worker serving an NDIS queue, if any.
    public func receiveWorker(for queue: ReceiveQueueID) -> IGBReceiveWorker? {
        guard let set = workerSet else { return nil }
        for slot in 0..<8 where rx[slot].queueID == queue && (rx[slot].active || queue.isDefault) {
            return set.workers[slot]
        }
        return nil
    }

    /// Starts a worker for every active queue ring (slots 0–7) that has none. Control path (every lane held).
    func ensureWorkers() {
        guard let set = workerSet, running || rx[0].active else { return }
        for slot in 0..<8 where rx[slot].active && set.workers[slot] == nil {
            let affinity: Set<Int>
            if slot == 0 {
                affinity = configuration.defaultQueueAffinity
            } else {
                affinity = vmqQueues.values.first { $0.pool == slot }?.parameters.processorAffinity ?? configuration.defaultQueueAffinity
            }
            let worker = IGBReceiveWorker(slot: slot, requested: affinity)
            if let problem = worker.pinningProblem {
                var err = FileHandleErr()
                print("miniport: \(deviceName): \(problem)", to: &err)
            }
            let event = interrupts.map { $0.events[vector(forHardwareQueue: slot)] }
            set.wakeEvents[slot] = event
            let unowned = Unmanaged.passUnretained(self)
            worker.body = { [worker] in
                unowned._withUnsafeGuaranteedRef { $0.workerLoop(worker, event: event) }
            }
            set.workers[slot] = worker
            worker.start()
        }
    }

    /// Stops and joins every worker (halt; the adapter holds no lane).
    public func stopWorkers() {
        guard let set = workerSet else { return }
        for slot in 0..<8 {
            guard let w = set.workers[slot] else { continue }
            w.stopAndJoin(wake: set.wakeEvents[slot])
            set.workers[slot] = nil
        }
    }

    /// True if the ring's next descriptor is written back (work is waiting).
    func ringHasWork(slot: Int) -> Bool {
        let r = rx + slot
        guard r.pointee.active, let d = r.pointee.descriptors else { return false }
        return Self.statusError(d, r.pointee.nextToClean) & 1 != 0   // DD
    }

    /// One batch of a worker, inside its lane.
    func workerBatch(slot: Int) -> Int {
        guard !removed else { return 0 }
        var n = handle.drainReturns(lane: slot)
        n &+= receive(slot: slot, budget: 64)
        if slot == 0, let set = workerSet {
            pthread_mutex_lock(set.txLock)
            n &+= transmitBacklog()
            pthread_mutex_unlock(set.txLock)
        }
        return n
    }

    func workerLoop(_ worker: IGBReceiveWorker, event: InterruptEvent?) {
        let slot = worker.slot
        let h = handle!
        let idleLimit = max(1, configuration.workerIdlePollsBeforeSleep)
        let timeout = configuration.workerSleepTimeoutMilliseconds
        var idle = 0
        var sinceWatchdog = 0
        while !worker.stopFlag.load(ordering: .relaxed) {
            h.enterDatapathLane(slot)
            let n = workerBatch(slot: slot)
            h.leaveDatapathLane(slot)
            worker.pollCount.add(1, ordering: .relaxed)
            worker.cpu.store(IGBReceiveWorker.currentCPU(), ordering: .relaxed)
            if slot == 0 {
                sinceWatchdog &+= 1
                if sinceWatchdog >= configuration.watchdogPollInterval {
                    sinceWatchdog = 0
                    // The watchdog indicates link changes: control work, with every lane held.
                    h.withDatapathStopped { if !removed { watchdog() } }
                }
            }
            if n > 0 {
                worker.busyPollCount.add(1, ordering: .relaxed)
                idle = 0
                continue
            }
            idle &+= 1
            guard idle >= idleLimit else { continue }
            idle = 0
            guard let event, !removed else { usleep(50); continue }
            // Re-arm the vector (EIAM masked it when it fired), then look once more: a frame that
            // landed before the re-arm raised no interrupt.
            let v = vector(forHardwareQueue: slot)
            event.drain()
            regs.write32(IGBReg.EIMS, 1 << UInt32(v))
            if ringHasWork(slot: slot) || h.hasPendingReturns(lane: slot) { continue }
            worker.eventWaitCount.add(1, ordering: .relaxed)
            if event.wait(timeoutMilliseconds: timeout) { worker.wakeupCount.add(1, ordering: .relaxed) }
        }
    }
}

/// stderr for `print(to:)`.
struct FileHandleErr: TextOutputStream {
    mutating func write(_ string: String) { _ = string.withCString { Glibc.write(2, $0, strlen($0)) } }
}
