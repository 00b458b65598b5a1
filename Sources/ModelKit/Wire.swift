import Glibc
import Synchronization

/// The receive side of a wire port: frames that arrived and wait for the MAC (a NIC's packet
/// buffer and the cable, folded into one bounded FIFO of fixed-size slots).
///
///     slots:  [ free | head … frames waiting … tail | free ]
///               the producer (inject / peer) writes at tail, the receive engine consumes at head.
///
/// It has its own lock, taken only in free-running mode, so a peer's thread can deliver into it
/// while this model's thread holds its own lock (lock order: model lock → peer FIFO lock).
public final class FrameFIFO: @unchecked Sendable {
    public let slotCount: Int
    public let slotSize: Int
    private let storage: UnsafeMutableRawPointer
    private let lengths: UnsafeMutablePointer<Int>
    private var head = 0
    public private(set) var count = 0
    /// Frames refused since the last `takeOverflows()`.
    private var overflows = 0
    /// Taken only while a side of the wire runs free (a thread of its own).
    public let locking = Atomic<Bool>(false)
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    public init(slots: Int, slotSize: Int) {
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
    public func push(_ bytes: UnsafeRawBufferPointer) -> Bool {
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
    public func peek() -> (UnsafeMutableRawPointer, Int)? {
        let locked = lock()
        defer { unlock(locked) }
        guard count > 0 else { return nil }
        return (storage + head * slotSize, lengths[head])
    }

    public func pop() {
        let locked = lock()
        defer { unlock(locked) }
        guard count > 0 else { return }
        head = (head + 1) % slotCount
        count -= 1
    }

    public func takeOverflows() -> Int {
        let locked = lock()
        defer { unlock(locked) }
        let n = overflows
        overflows = 0
        return n
    }

    public func removeAll() {
        let locked = lock()
        defer { unlock(locked) }
        head = 0
        count = 0
    }
}

/// A model NIC's socket on the wire: its receive FIFO and the port at the other end of the cable.
///
/// Any model plugs into one (the 82576, virtio-net): `WirePort.connect(a, b)` puts two models back
/// to back, `send` delivers into the peer's FIFO. The peer is held `unowned(unsafe)` (no reference
/// counting per frame); `disconnect()` (also run by the owner's deinit) clears both ends.
public final class WirePort: @unchecked Sendable {
    public let fifo: FrameFIFO
    @usableFromInline unowned(unsafe) var peer: WirePort?
    /// Whether this port's model runs free (its own thread); the peer's FIFO locks while either side does.
    public private(set) var freeRunning = false

    public init(slots: Int, slotSize: Int) {
        fifo = FrameFIFO(slots: slots, slotSize: slotSize)
    }

    /// True while a peer is connected.
    public var isConnected: Bool { peer != nil }

    /// Delivers a frame into the peer's FIFO; false when no peer is connected (or it refused the frame).
    @inlinable
    public func send(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let p = peer else { return false }
        return p.fifo.push(bytes)
    }

    /// Connects two ports back to back: what one sends, the other receives.
    public static func connect(_ a: WirePort, _ b: WirePort) {
        a.peer = b
        b.peer = a
        a.updateLocking()
        b.updateLocking()
    }

    /// Disconnects this port and its peer.
    public func disconnect() {
        if let p = peer {
            p.peer = nil
            p.updateLocking()
        }
        peer = nil
        updateLocking()
    }

    /// The owner's model starts or stops running free.
    public func setFreeRunning(_ on: Bool) {
        freeRunning = on
        updateLocking()
        peer?.updateLocking()
    }

    /// A FIFO locks while its own model or the peer (which writes into it) runs free.
    private func updateLocking() {
        fifo.locking.store(freeRunning || (peer?.freeRunning ?? false), ordering: .sequentiallyConsistent)
    }
}
