import CShim
import Glibc
import Synchronization

// Per-queue datapath lanes (Docs/NDIS.md, "Threading").
//
// By default an adapter's datapath runs on one thread at a time. A miniport with one receive worker
// per queue switches the adapter to *lanes* (`MiniportHandle.setConcurrentDatapath(true)`, during
// initialize, before any worker runs):
//
// - Lane n is one worker thread (the IGB miniport: ring slot n). A worker enters its lane for each
//   batch (`enterDatapathLane`), polls its ring, indicates, drains its lane's returns, and leaves.
//   Entering is one uncontended mutex per batch, never per packet.
// - Every NBL carries its pool's lane. Returns, from any thread, are pushed (one CAS per run of
//   NBLs of the same lane) onto that lane's multi-producer stack; the lane's worker drains it and
//   does the accounting and the miniport's recycling. So per-shared-memory counts and the
//   miniport's ring state are only ever touched by their own worker.
// - Counters several lanes share (outstanding in total and per queue id, frames indicated per
//   queue id, framework drops) are updated with relaxed atomic adds in this mode, plain adds otherwise.
// - The control path (requests, bindings, pause, restart, halt) holds every lane
//   (`withDatapathStopped`): no worker is inside a batch while it changes what workers read.
//   Completing a pause or a queue free that waited for returns happens after the worker left its
//   lane, under every lane.

/// The lanes of an adapter: one mutex and one return stack each.
public final class DatapathGate {
    /// Lanes per adapter (ring slots of a miniport).
    public static let laneCount = 16
    let mutexes: UnsafeMutablePointer<pthread_mutex_t>
    /// Heads of the per-lane stacks of returned NBLs (linked through `NBLStorage.next`).
    let returnHeads: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    /// The thread (pthread_self) that holds every lane, 0 if none.
    let holder = Atomic<UInt>(0)
    /// Nesting of `withDatapathStopped` on the holding thread (only that thread touches it).
    nonisolated(unsafe) var depth = 0
    /// A return in some lane made a waiting pause or queue free ready to finish.
    let finishPending = Atomic<Bool>(false)

    init() {
        mutexes = .allocate(capacity: Self.laneCount)
        returnHeads = .allocate(capacity: Self.laneCount)
        returnHeads.initialize(repeating: nil, count: Self.laneCount)
        for i in 0..<Self.laneCount { pthread_mutex_init(mutexes + i, nil) }
    }

    deinit {
        for i in 0..<Self.laneCount { pthread_mutex_destroy(mutexes + i) }
        mutexes.deallocate()
        returnHeads.deallocate()
    }

    /// Takes every lane unless this thread already holds them. Returns true if it took them.
    func lockAll() -> Bool {
        let me = UInt(bitPattern: Int(bitPattern: pthread_self()))
        if holder.load(ordering: .acquiring) == me { depth += 1; return false }
        for i in 0..<Self.laneCount { pthread_mutex_lock(mutexes + i) }
        holder.store(me, ordering: .releasing)
        depth = 1
        return true
    }

    func unlockAll(_ took: Bool) {
        depth -= 1
        guard took else { return }
        holder.store(0, ordering: .releasing)
        for i in (0..<Self.laneCount).reversed() { pthread_mutex_unlock(mutexes + i) }
    }
}

extension Adapter {
    /// True while the datapath runs in lanes (per-queue workers).
    public var isConcurrentDatapath: Bool { fast.pointee.concurrent }

    /// Switches lanes on or off. Only while no worker runs (the miniport's initialize, or after it
    /// stopped its workers); returns queued in lanes are drained first when switching off.
    func setConcurrentDatapath(_ on: Bool) {
        if !on && fast.pointee.concurrent {
            fast.pointee.concurrent = false
            for lane in 0..<DatapathGate.laneCount { _ = drainReturnsUnlocked(lane: lane) }
            if gate.finishPending.exchange(false, ordering: .relaxed) { finishWaitsAfterReturn() }
            return
        }
        fast.pointee.concurrent = on
    }

    /// Runs `body` with every lane held (no worker inside a batch); on one thread it just runs it.
    /// Reentrant on the holding thread. Must not be called from inside a lane (a receive callback
    /// on a worker): that worker holds its own lane.
    public func withDatapathStopped<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        guard fast.pointee.concurrent else { return try body() }
        let took = gate.lockAll()
        defer { gate.unlockAll(took) }
        return try body()
    }

    /// A worker enters its lane for one batch.
    public func enterDatapathLane(_ lane: Int) {
        pthread_mutex_lock(gate.mutexes + lane)
    }

    /// A worker leaves its lane; finishes a pause or queue free its returns made ready.
    public func leaveDatapathLane(_ lane: Int) {
        pthread_mutex_unlock(gate.mutexes + lane)
        if _slowPath(gate.finishPending.load(ordering: .relaxed)) {
            withDatapathStopped {
                if gate.finishPending.exchange(false, ordering: .relaxed) { finishWaitsAfterReturn() }
            }
        }
    }

    /// True if NBLs wait in `lane`'s return stack.
    public func hasPendingReturns(lane: Int) -> Bool {
        miniport_atomic_peek(gate.returnHeads + lane) != nil
    }

    /// Pushes returned NBLs onto the stacks of their lanes (any thread; one CAS per run of one lane).
    func pushReturns(_ chain: consuming NetBufferListChain) {
        let (head, _, _) = chain.takeAll()
        var p = head
        while let first = p {
            let lane = Int(first.pointee.lane)
            var last = first
            while let n = last.pointee.next, n.pointee.lane == first.pointee.lane { last = n }
            p = last.pointee.next
            // Safety: `next` is NBLStorage's first field, so `last` is the address of its `next`;
            // the run [first … last] is ours until the push publishes it.
            UnsafeMutableRawPointer(last).withMemoryRebound(to: UnsafeMutableRawPointer?.self, capacity: 1) { lastNext in
                miniport_atomic_push(gate.returnHeads + lane, UnsafeMutableRawPointer(first), lastNext)
            }
        }
    }

    /// Accounts and recycles every NBL returned to `lane` (its worker calls this inside its lane).
    /// - Returns: NBLs handled.
    @discardableResult
    public func drainReturns(lane: Int) -> Int {
        drainReturnsUnlocked(lane: lane)
    }

    func drainReturnsUnlocked(lane: Int) -> Int {
        guard let raw = miniport_atomic_take_all(gate.returnHeads + lane) else { return 0 }
        var chain = NetBufferListChain()
        var p: UnsafeMutablePointer<NBLStorage>? = raw.assumingMemoryBound(to: NBLStorage.self)
        while let nbl = p {
            p = nbl.pointee.next
            chain.appendNBL(nbl)
        }
        let n = chain.count
        let fp = fast
        let handles = outstandingByHandle
        let queues = outstandingByQueue
        let concurrent = fp.pointee.concurrent
        var runQueue = 0
        var run = 0
        p = chain.head
        while let nbl = p {
            p = nbl.pointee.next
            let q = Int(nbl.pointee.info.receiveQueueID)
            if q != runQueue {
                Adapter.addShared(queues + runQueue, -run, concurrent)
                runQueue = q
                run = 0
            }
            run &+= 1
            Adapter.countSegments(nbl, handles, -1)
            nbl.pointee.owner = .miniport
            nbl.pointee.retireViews()
        }
        Adapter.addShared(queues + runQueue, -run, concurrent)
        withUnsafeMutablePointer(to: &fp.pointee.totalOutstanding) { Adapter.addShared($0, -n, concurrent) }
        miniport.returnNetBufferLists(chain, flags: [])
        if fp.pointee.watchReturns {
            if concurrent { gate.finishPending.store(true, ordering: .relaxed) } else { finishWaitsAfterReturn() }
        }
        return n
    }

    /// `p += v`, atomic when lanes share the counter.
    @inline(__always)
    static func addShared(_ p: UnsafeMutablePointer<Int>, _ v: Int, _ concurrent: Bool) {
        if _slowPath(concurrent) {
            // Safety: Int and long are the same 64-bit type on Linux x86_64/arm64.
            p.withMemoryRebound(to: CLong.self, capacity: 1) { miniport_atomic_add_long($0, CLong(v)) }
        } else {
            p.pointee &+= v
        }
    }

    @inline(__always)
    static func addShared(_ p: UnsafeMutablePointer<UInt64>, _ v: UInt64, _ concurrent: Bool) {
        if _slowPath(concurrent) {
            // Safety: UInt64 and unsigned long long have the same layout.
            p.withMemoryRebound(to: CUnsignedLongLong.self, capacity: 1) { miniport_atomic_add_u64($0, CUnsignedLongLong(v)) }
        } else {
            p.pointee &+= v
        }
    }

    /// Adds to the framework's drop counter (atomic with lanes).
    @inline(__always)
    /// An indication the adapter's state refuses: dropped, and counted as a rule break when the
    /// adapter is Initializing or Paused (receive must stay off until MiniportRestart).
    func countNotRunning(_ n: Int) {
        countDrops(n)
        if state == .paused || state == .initializing {
            let fp = fast
            withUnsafeMutablePointer(to: &fp.pointee.indicationsWhilePaused) { Adapter.addShared($0, UInt64(n), fp.pointee.concurrent) }
        }
    }

    func countDrops(_ n: Int) {
        let fp = fast
        withUnsafeMutablePointer(to: &fp.pointee.frameworkDrops) { Adapter.addShared($0, UInt64(n), fp.pointee.concurrent) }
    }
}
