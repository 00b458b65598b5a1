import Glibc
import Synchronization

/// The receive side of the wire: frames that arrived and wait for the MAC (the 82576's packet
/// buffer and the cable, folded into one bounded FIFO of fixed-size slots).
///
///     slots:  [ free | head … frames waiting … tail | free ]
///               the producer (inject / peer) writes at tail, the receive engine consumes at head.
///
/// It has its own lock, taken only in free-running mode, so a peer's thread can deliver into it
/// while this model's thread holds its own lock (lock order: model lock → peer FIFO lock).
final class FrameFIFO: @unchecked Sendable {
    let slotCount: Int
    let slotSize: Int
    private let storage: UnsafeMutableRawPointer
    private let lengths: UnsafeMutablePointer<Int>
    private var head = 0
    private(set) var count = 0
    /// Frames refused since the last `takeOverflows()`.
    private var overflows = 0
    let locking = Atomic<Bool>(false)
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init(slots: Int, slotSize: Int) {
        self.slotCount = slots
        self.slotSize = slotSize
        storage = .allocate(byteCount: slots * slotSize, alignment: 64)
        lengths = .allocate(capacity: slots)
        lengths.initialize(repeating: 0, count: slots)
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        storage.deallocate()
        lengths.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    @inline(__always) private func lock() -> Bool {
        if _slowPath(locking.load(ordering: .relaxed)) { pthread_mutex_lock(mutex); return true }
        return false
    }

    @inline(__always) private func unlock(_ locked: Bool) {
        if _slowPath(locked) { pthread_mutex_unlock(mutex) }
    }

    /// Copies a frame in; false if the FIFO is full or the frame longer than a slot (minus FCS room).
    func push(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let locked = lock()
        defer { unlock(locked) }
        guard count < slotCount, bytes.count <= slotSize - 8, let base = bytes.baseAddress else {
            overflows += 1
            return false
        }
        let slot = (head + count) % slotCount
        // Safety: slot < slotCount and bytes.count fits in one slot.
        (storage + slot * slotSize).copyMemory(from: base, byteCount: bytes.count)
        lengths[slot] = bytes.count
        count += 1
        return true
    }

    /// The oldest frame (its slot has `slotSize` bytes of room, so padding and an FCS fit), or nil.
    func peek() -> (UnsafeMutableRawPointer, Int)? {
        let locked = lock()
        defer { unlock(locked) }
        guard count > 0 else { return nil }
        return (storage + head * slotSize, lengths[head])
    }

    func pop() {
        let locked = lock()
        defer { unlock(locked) }
        guard count > 0 else { return }
        head = (head + 1) % slotCount
        count -= 1
    }

    func takeOverflows() -> Int {
        let locked = lock()
        defer { unlock(locked) }
        let n = overflows
        overflows = 0
        return n
    }

    func removeAll() {
        let locked = lock()
        defer { unlock(locked) }
        head = 0
        count = 0
    }
}

extension IGBModel {
    /// Puts a frame (destination MAC first, no FCS) on this NIC's wire; ``step()`` receives it.
    /// The bytes are copied. A full FIFO (or an overlong frame) counts as missed.
    public func inject(_ frame: some Collection<UInt8>) {
        let done: Void? = frame.withContiguousStorageIfAvailable { acceptFromWire(UnsafeRawBufferPointer($0)) }
        if done == nil {
            let copy = Array(frame)
            copy.withUnsafeBytes { acceptFromWire($0) }
        }
    }

    /// A frame arriving from the cable (inject, or the peer's transmitter).
    /// Takes only the FIFO's own lock, so a peer's thread may call it while holding its model lock;
    /// refused frames are counted (MPC) by the next step.
    func acceptFromWire(_ bytes: UnsafeRawBufferPointer) {
        _ = fifo.push(bytes)
    }

    /// Frames transmitted since the last call (oldest first), when no peer is connected.
    public func takeTransmitted() -> [[UInt8]] {
        let locked = lockIfThreaded()
        defer { unlock(locked) }
        let frames = transmitted
        transmitted.removeAll(keepingCapacity: true)
        return frames
    }

    /// Frames waiting in the receive FIFO.
    public var framesWaiting: Int { fifo.count }

    /// Connects two models back to back: what one transmits, the other receives.
    public static func connect(_ a: IGBModel, _ b: IGBModel) {
        a.peer = b
        b.peer = a
    }

    /// Disconnects this model (and its peer) from the wire.
    public func disconnect() {
        if let p = peer { p.peer = nil }
        peer = nil
    }

    /// Puts a finished frame on the wire.
    func emit(_ p: UnsafeRawPointer, _ length: Int) {
        wireCounters.transmitted += 1
        if peer != nil {
            // Safety: a connected peer outlives the connection (deinit disconnects); no reference is taken per frame.
            Unmanaged.passUnretained(peer!)._withUnsafeGuaranteedRef {
                $0.acceptFromWire(UnsafeRawBufferPointer(start: p, count: length))
            }
        } else if configuration.keepTransmittedFrames {
            transmitted.append(Array(UnsafeRawBufferPointer(start: p, count: length)))
        }
    }

    // MARK: free-running mode

    /// Starts the model's own thread: model time follows the monotonic clock and work is done
    /// continuously. Register accesses are locked from now on. Call from the thread that drives the
    /// model, while it is not accessing registers.
    public func start() {
        guard thread == nil else { return }
        threaded.store(true, ordering: .sequentiallyConsistent)
        fifo.locking.store(true, ordering: .sequentiallyConsistent)
        peer?.fifo.locking.store(true, ordering: .sequentiallyConsistent)
        wallOrigin = Self.monotonicNanoseconds()
        modelOrigin = now
        keepRunning.store(true, ordering: .sequentiallyConsistent)
        var tid = pthread_t()
        let context = Unmanaged.passUnretained(self).toOpaque()
        pthread_create(&tid, nil, { raw in
            // Safety: the model outlives its thread; stop() (also run by deinit) joins it first.
            let model = Unmanaged<IGBModel>.fromOpaque(raw!).takeUnretainedValue()
            model.run()
            return nil
        }, context)
        thread = tid
    }

    /// Stops the thread and returns to stepped mode.
    public func stop() {
        guard let tid = thread else { return }
        keepRunning.store(false, ordering: .sequentiallyConsistent)
        pthread_join(tid, nil)
        thread = nil
        threaded.store(false, ordering: .sequentiallyConsistent)
        if peer?.thread == nil { fifo.locking.store(false, ordering: .sequentiallyConsistent) }
    }

    /// True while the free-running thread runs.
    public var isRunning: Bool { thread != nil }

    private func run() {
        while keepRunning.load(ordering: .relaxed) {
            pthread_mutex_lock(mutex)
            let target = modelOrigin &+ (Self.monotonicNanoseconds() &- wallOrigin)
            advanceUnlocked(to: target)
            stepUnlocked()
            pthread_mutex_unlock(mutex)
            var pause = timespec(tv_sec: 0, tv_nsec: 20_000)
            nanosleep(&pause, nil)
        }
    }

    static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    // MARK: benchmark hook

    /// Benchmark mode: every ``step()`` fills all free descriptors of `queue` with a copy of `frame`
    /// (one-buffer write-back with DD|EOP and the length, no filtering, no parsing). Pass nil to stop.
    public func setBenchmarkReceive(frame: [UInt8]?, queue: Int = 0) {
        let locked = lockIfThreaded()
        defer { unlock(locked) }
        benchmarkFrame?.deallocate()
        benchmarkFrame = nil
        guard let frame, !frame.isEmpty else { return }
        let p = UnsafeMutableRawPointer.allocate(byteCount: frame.count, alignment: 64)
        frame.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: frame.count) }
        benchmarkFrame = p
        benchmarkLength = frame.count
        benchmarkQueue = queue
    }
}
