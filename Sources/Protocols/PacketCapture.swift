import NDIS

/// A protocol module that writes every frame it receives to a pcapng (or classic pcap) file.
///
/// Each receive queue is one pcapng interface (`rxq<id>`, described by its filters), so a reader
/// sees which queue got each frame. Frames are written exactly as on the wire: a VLAN tag the
/// hardware stripped (`NetBufferListInfo.vlanPresent`) is put back, and there is no FCS.
/// With a `limit`, exactly that many frames are written in total across all queues; later frames
/// are given back unwritten. Receive paths allocate nothing: frames go through the writer's
/// preallocated buffer, counters are fixed tables.
public final class PacketCapture: ProtocolDriver {
    /// The file being written; nil until `start`. Frames that arrive before are given back unwritten.
    public private(set) var writer: CaptureFileWriter?
    public private(set) var interfaces: [CaptureInterface] = []
    /// Frames to write in total; nil for no limit.
    public let limit: Int?
    /// Frames and bytes written, per queue (bytes as on the wire).
    public let counters = QueueCounters()
    /// Frames written in total (while running, those still in the writer's buffer included; once
    /// a write failed or after `finish`, exactly the frames in the file).
    public private(set) var framesWritten = 0
    /// Frames received but not written because the file failed (those of the failed flush included).
    public private(set) var drops: UInt64 = 0
    /// Frames received before `start` or after the limit was reached (given back, not written, not lost).
    public private(set) var framesNotCaptured: UInt64 = 0
    /// Multicast copies skipped on queues whose filters do not accept them (see ``QueueAcceptance``).
    public private(set) var copiesSkipped: UInt64 = 0
    /// Which multicast copies to keep; set by `start(…queues:)`.
    public let acceptance = QueueAcceptance()
    /// Queue id → pcapng interface index.
    let interfaceIndex: UnsafeMutablePointer<UInt32>
    var fallbackInterface: UInt32 = 0

    /// A capture that writes at most `limit` frames (nil: until stopped). Open its binding, set up
    /// the queues, then `start` it with the file.
    public init(limit: Int?) {
        self.limit = limit
        interfaceIndex = .allocate(capacity: QueueCounters.capacity)
        interfaceIndex.initialize(repeating: UInt32.max, count: QueueCounters.capacity)
    }

    deinit { interfaceIndex.deallocate() }

    /// Starts writing to an open writer whose interfaces are `interfaces`, in the order written.
    public func start(writer: CaptureFileWriter, interfaces: [CaptureInterface]) {
        self.writer = writer
        self.interfaces = interfaces
        interfaceIndex.update(repeating: UInt32.max, count: QueueCounters.capacity)
        for (i, interface) in interfaces.enumerated() where Int(interface.queue.rawValue) < QueueCounters.capacity {
            interfaceIndex[Int(interface.queue.rawValue)] = UInt32(i)
        }
        // A frame from a queue with no interface of its own is written on the default queue's.
        fallbackInterface = interfaces.firstIndex { $0.queue.isDefault }.map(UInt32.init) ?? 0
    }

    /// Creates `path` with one interface per queue (named and described after the queue and its
    /// filters), sorted by queue id, and starts writing. `path` may be `-` (standard output) or a
    /// FIFO (see ``CaptureDestination/open(_:shouldGiveUp:)``); `shouldGiveUp` is asked while
    /// waiting for a FIFO's reader and when a blocked write is interrupted by a signal.
    /// - Throws: `CaptureFileError` when the file cannot be created.
    public func start(path: String, format: CaptureFormat? = nil, queues: [QueueDescriptor],
                      shouldGiveUp: @escaping () -> Bool = { false }) throws(CaptureFileError) {
        acceptance.set(queues)
        try start(path: path, format: format, interfaces: queues.map(\.captureInterface), shouldGiveUp: shouldGiveUp)
    }

    /// Creates `path` with one interface per queue, sorted by queue id, and starts writing.
    /// - Throws: `CaptureFileError` when the file cannot be created.
    public func start(path: String, format: CaptureFormat? = nil, interfaces: [CaptureInterface],
                      shouldGiveUp: @escaping () -> Bool = { false }) throws(CaptureFileError) {
        let sorted = interfaces.sorted { $0.queue < $1.queue }
        let destination = try CaptureDestination.open(path, shouldGiveUp: shouldGiveUp)
        let writer = try CaptureFileWriter(destination: destination, format: format ?? .forFileName(path), interfaces: sorted)
        writer.abandonOnInterrupt = shouldGiveUp
        start(writer: writer, interfaces: sorted)
    }

    /// The write error that stopped the file, if any: the capture should end (its counts are final).
    public var writeError: CaptureFileError? { writer?.writeError }

    /// True once `limit` frames are written.
    public var isComplete: Bool {
        guard let limit else { return false }
        return framesWritten >= limit
    }

    /// Flushes and closes the file; returns the write error, if one happened.
    @discardableResult
    public func finish() -> CaptureFileError? {
        writer?.close()
        accountForLoss()
        return writer?.writeError
    }

    private var lossAccounted = false

    /// After a failed write: takes the frames of the failed flush off the counters (they are not
    /// in the file) and counts them as drops, once.
    func accountForLoss() {
        guard let writer, writer.writeError != nil, !lossAccounted else { return }
        lossAccounted = true
        for (i, interface) in interfaces.enumerated() where Int(interface.queue.rawValue) < QueueCounters.capacity {
            let q = Int(interface.queue.rawValue)
            let f = min(writer.lostFrames(interface: i), counters.frames[q])
            counters.frames[q] -= f
            counters.bytes[q] -= min(writer.lostBytes(interface: i), counters.bytes[q])
            framesWritten -= Int(f)
            drops &+= f
        }
    }

    // MARK: ProtocolDriver

    public func receiveNetBufferLists(_ chain: consuming NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
        write(chain)
        binding.returnNetBufferLists(chain)
    }

    public func receiveNetBufferListsWithResources(_ chain: borrowing NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
        // RESOURCES: the frames are ours only during this call; the file copy is all we keep.
        write(chain)
    }

    public var handlesResourcesIndications: Bool { true }

    public func coReceiveNetBufferLists(_ chain: consuming NetBufferListChain, vc: VirtualConnection, count: Int, flags: ReceiveFlags) {
        write(chain)
        vc.binding.returnNetBufferLists(chain)
    }

    func write(_ chain: borrowing NetBufferListChain) {
        guard let writer, !writer.isClosed else {
            framesNotCaptured &+= UInt64(chain.count)
            return
        }
        let counters = self.counters
        let table = interfaceIndex
        let fallback = fallbackInterface
        let limit = self.limit ?? Int.max
        var written = framesWritten
        var dropped: UInt64 = 0
        var after: UInt64 = 0
        var skipped: UInt64 = 0
        let acceptance = self.acceptance
        chain.forEach { nbl in
            let q = nbl.info.receiveQueueID
            guard acceptance.keeps(nbl, queue: q) else { skipped &+= 1; return }
            guard written < limit else { after &+= 1; return }
            var interface = Int(q) < QueueCounters.capacity ? table[Int(q)] : UInt32.max
            if interface == UInt32.max { interface = fallback }
            if let wire = writer.write(nbl, interface: Int(interface), timestamp: Clock.realtimeNanoseconds()) {
                counters.add(queue: q, length: wire)
                written += 1
            } else {
                dropped &+= 1
            }
        }
        framesWritten = written
        drops &+= dropped
        framesNotCaptured &+= after
        copiesSkipped &+= skipped
        // A stream (pipe, FIFO, standard output) gets every batch as it arrives.
        if writer.isStream { writer.flush() }
        if writer.writeError != nil { accountForLoss() }
    }
}
