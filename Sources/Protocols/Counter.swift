import NDIS

/// Frames and bytes per receive queue, in one preallocated table (no allocation when counting).
public final class QueueCounters {
    /// Queue ids the table covers (the NDIS core hands out ids below this).
    public static let capacity = 256
    @usableFromInline let frames: UnsafeMutablePointer<UInt64>
    @usableFromInline let bytes: UnsafeMutablePointer<UInt64>

    public init() {
        frames = .allocate(capacity: QueueCounters.capacity)
        frames.initialize(repeating: 0, count: QueueCounters.capacity)
        bytes = .allocate(capacity: QueueCounters.capacity)
        bytes.initialize(repeating: 0, count: QueueCounters.capacity)
    }

    deinit {
        frames.deallocate()
        bytes.deallocate()
    }

    /// Counts one frame of `length` bytes on `queue` (ids beyond the table count on the default queue).
    @inlinable
    public func add(queue: UInt16, length: Int) {
        let i = Int(queue) < QueueCounters.capacity ? Int(queue) : 0
        frames[i] &+= 1
        bytes[i] &+= UInt64(length)
    }

    public func frames(queue: ReceiveQueueID) -> UInt64 { Int(queue.rawValue) < QueueCounters.capacity ? frames[Int(queue.rawValue)] : 0 }
    public func bytes(queue: ReceiveQueueID) -> UInt64 { Int(queue.rawValue) < QueueCounters.capacity ? bytes[Int(queue.rawValue)] : 0 }

    /// Frames on all queues.
    public var totalFrames: UInt64 { (0..<QueueCounters.capacity).reduce(0) { $0 &+ frames[$1] } }
    /// Bytes on all queues.
    public var totalBytes: UInt64 { (0..<QueueCounters.capacity).reduce(0) { $0 &+ bytes[$1] } }

    /// Queues that saw at least one frame, in id order.
    public var activeQueues: [ReceiveQueueID] {
        (0..<QueueCounters.capacity).filter { frames[$0] > 0 }.map { ReceiveQueueID(UInt16($0)) }
    }

    public func reset() {
        frames.update(repeating: 0, count: QueueCounters.capacity)
        bytes.update(repeating: 0, count: QueueCounters.capacity)
    }
}

/// A protocol module that counts frames and bytes per receive queue and gives every NBL straight back.
///
/// It takes RESOURCES indications in place, so it never makes NDIS copy.
public final class Counter: ProtocolDriver {
    public let counters = QueueCounters()
    /// Which multicast copies count (set it to the queues' filters; empty counts every copy).
    public let acceptance = QueueAcceptance()

    public init() {}

    public func receiveNetBufferLists(_ chain: consuming NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
        tally(chain)
        binding.returnNetBufferLists(chain)
    }

    public func receiveNetBufferListsWithResources(_ chain: borrowing NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
        tally(chain)
    }

    public func coReceiveNetBufferLists(_ chain: consuming NetBufferListChain, vc: VirtualConnection, count: Int, flags: ReceiveFlags) {
        tally(chain)
        vc.binding.returnNetBufferLists(chain)
    }

    public var handlesResourcesIndications: Bool { true }

    @inline(__always)
    func tally(_ chain: borrowing NetBufferListChain) {
        let counters = self.counters
        let acceptance = self.acceptance
        chain.forEach { nbl in
            guard acceptance.keeps(nbl, queue: nbl.info.receiveQueueID) else { return }
            // Frames are counted as on the wire: a tag the hardware stripped still counts.
            let info = nbl.info
            counters.add(queue: info.receiveQueueID, length: nbl.dataLength + (info.vlanPresent ? EthernetFrame.vlanTagLength : 0))
        }
    }
}
