/// Flags of a receive queue. NDIS: NDIS_RECEIVE_QUEUE_PARAMETERS_* flags.
public struct ReceiveQueueFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Indicate this queue's frames in chains of their own (NDIS_RECEIVE_QUEUE_PARAMETERS_PER_QUEUE_RECEIVE_INDICATION).
    public static let perQueueReceiveIndication = ReceiveQueueFlags(rawValue: 0x1)
    /// Split every frame at `lookaheadSize` into two shared memory segments
    /// (NDIS_RECEIVE_QUEUE_PARAMETERS_LOOKAHEAD_SPLIT_REQUIRED).
    public static let lookaheadSplitRequired = ReceiveQueueFlags(rawValue: 0x2)
}

/// NDIS_RECEIVE_QUEUE_PARAMETERS: what a protocol asks for when it allocates a queue.
public struct ReceiveQueueParameters: Sendable, Equatable {
    public var flags: ReceiveQueueFlags
    /// CPUs the queue's interrupt and worker may run on (non-empty).
    public var processorAffinity: Set<Int>
    /// Suggested number of receive buffers.
    public var numberOfBuffers: Int
    /// Lookahead size with `.lookaheadSplitRequired`.
    public var lookaheadSize: Int
    /// Queue name (for tools: the capture names interfaces after it).
    public var name: String
    /// MSI-X table entry the miniport assigned (output).
    public var msixTableEntry: Int?

    public init(flags: ReceiveQueueFlags = [], processorAffinity: Set<Int> = [0], numberOfBuffers: Int = 256,
                lookaheadSize: Int = 0, name: String = "", msixTableEntry: Int? = nil) {
        self.flags = flags
        self.processorAffinity = processorAffinity
        self.numberOfBuffers = numberOfBuffers
        self.lookaheadSize = lookaheadSize
        self.name = name
        self.msixTableEntry = msixTableEntry
    }
    public static func == (a: Self, b: Self) -> Bool {
        a.flags.rawValue == b.flags.rawValue && a.processorAffinity == b.processorAffinity
            && a.numberOfBuffers == b.numberOfBuffers && a.lookaheadSize == b.lookaheadSize && a.name == b.name
    }
}

/// The state of a receive queue. NDIS names Allocated, Set, Running, Paused, DmaStopped and Freeing.
///
///     allocated ──ALLOCATION_COMPLETE──▶ paused ──SET_FILTER──▶ running
///        ▲                                  ▲ ◀──last CLEAR_FILTER──┘
///        │                                  └──FREE_QUEUE──▶ dmaStopped ──all NBLs back──▶ freeing ──▶ (gone)
public enum ReceiveQueueState: String, Sendable, Codable {
    /// OID_RECEIVE_FILTER_ALLOCATE_QUEUE done; no shared memory yet.
    case allocated
    /// Allocation complete, no filter: frames for it are discarded.
    case paused
    /// Allocation complete and at least one filter: the queue indicates frames.
    case running
    /// FREE_QUEUE step 1–2: the miniport stopped DMA and NDIS_STATUS_RECEIVE_QUEUE_STATE said so.
    case dmaStopped
    /// FREE_QUEUE step 4: every NBL is back; shared memory is being freed.
    case freeing
}

/// What the framework knows about one queue (served from its cache for enumeration).
public struct ReceiveQueueInfo: Sendable {
    public let id: ReceiveQueueID
    public internal(set) var parameters: ReceiveQueueParameters
    public internal(set) var state: ReceiveQueueState
    /// Filter ids on the queue, in the order set.
    public internal(set) var filters: [ReceiveFilterID]
    /// True when every filter of the queue runs in software (frames come from the default queue's memory).
    public internal(set) var softwareOnly: Bool
}

/// Changes to a queue's parameters (OID_RECEIVE_FILTER_QUEUE_PARAMETERS with a change mask).
public struct ReceiveQueueParameterChange: Sendable {
    public var processorAffinity: Set<Int>?
    public var name: String?
    public init(processorAffinity: Set<Int>? = nil, name: String? = nil) {
        self.processorAffinity = processorAffinity
        self.name = name
    }
}
