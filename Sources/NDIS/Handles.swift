/// Identifies who indicated a NET_BUFFER_LIST, so a return reaches the right component
/// (an adapter, a virtual connection or an intermediate module). NDIS: `NET_BUFFER_LIST.SourceHandle`.
public struct SourceHandle: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// No source: an NBL that has not been indicated yet.
    @inlinable public static var none: SourceHandle { SourceHandle(rawValue: 0) }
    public var description: String { "source#\(rawValue)" }
}

/// The handle a receive indication carries for a block of shared memory.
/// NDIS: `NDIS_SHARED_MEMORY_PARAMETERS.SharedMemoryHandle`, `NET_BUFFER_SHARED_MEMORY.SharedMemoryHandle`.
public struct SharedMemoryHandle: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    @inlinable public static var none: SharedMemoryHandle { SharedMemoryHandle(rawValue: 0) }
    public var description: String { "shm#\(rawValue)" }
}

/// The handle used to free a block of shared memory. NDIS: `pAllocationHandle` of NdisAllocateSharedMemory.
public struct AllocationHandle: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    public var description: String { "alloc#\(rawValue)" }
}

/// A VMQ receive queue id, unique per adapter and assigned by the framework.
/// `0` is the default queue (NDIS_DEFAULT_RECEIVE_QUEUE_ID): it always exists and is never freed.
public struct ReceiveQueueID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let rawValue: UInt16
    @inlinable public init(_ rawValue: UInt16) { self.rawValue = rawValue }
    @inlinable public static var `default`: ReceiveQueueID { ReceiveQueueID(0) }
    @inlinable public var isDefault: Bool { rawValue == 0 }
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    public var description: String { isDefault ? "queue 0 (default)" : "queue \(rawValue)" }
}

/// A receive filter id (≥ 1), assigned by the framework. NDIS: `NDIS_RECEIVE_FILTER_ID`.
public struct ReceiveFilterID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "filter \(rawValue)" }
}

/// Status of a NET_BUFFER_LIST or a request. NDIS: `NDIS_STATUS`.
public enum NDISStatus: Int32, Sendable, CustomStringConvertible {
    case success = 0
    case pending = 0x103
    case failure = -1
    case resources = -2
    case invalidParameter = -3
    case paused = -4
    case deviceRemoved = -5
    case notAccepted = -6
    case requestAborted = -7
    case notSupported = -8
    case invalidLength = -9
    /// The link is down: the send did not reach the wire (NDIS_STATUS_MEDIA_DISCONNECTED).
    case mediaDisconnected = -10

    public var description: String {
        switch self {
        case .success: "NDIS_STATUS_SUCCESS"
        case .pending: "NDIS_STATUS_PENDING"
        case .failure: "NDIS_STATUS_FAILURE"
        case .resources: "NDIS_STATUS_RESOURCES"
        case .invalidParameter: "NDIS_STATUS_INVALID_PARAMETER"
        case .paused: "NDIS_STATUS_PAUSED"
        case .deviceRemoved: "NDIS_STATUS_DEVICE_REMOVED"
        case .notAccepted: "NDIS_STATUS_NOT_ACCEPTED"
        case .requestAborted: "NDIS_STATUS_REQUEST_ABORTED"
        case .notSupported: "NDIS_STATUS_NOT_SUPPORTED"
        case .invalidLength: "NDIS_STATUS_INVALID_LENGTH"
        case .mediaDisconnected: "NDIS_STATUS_MEDIA_DISCONNECTED"
        }
    }
}

/// Every error the NDIS core reports. Messages say what was wrong and what to do instead.
public enum NDISError: Error, Equatable, CustomStringConvertible {
    case invalidParameter(String)
    case invalidState(String)
    case resources(String)
    case notSupported(String)
    case unknownQueue(ReceiveQueueID)
    case unknownFilter(ReceiveFilterID)
    case unknownAllocation(AllocationHandle)
    case memoryInUse(AllocationHandle, String)
    case deviceRemoved(String)
    case requestPending(String)
    case miniportFailure(String)

    public var status: NDISStatus {
        switch self {
        case .invalidParameter, .unknownQueue, .unknownFilter, .unknownAllocation: .invalidParameter
        case .invalidState, .memoryInUse: .failure
        case .resources: .resources
        case .notSupported: .notSupported
        case .deviceRemoved: .deviceRemoved
        case .requestPending: .pending
        case .miniportFailure: .failure
        }
    }

    public var description: String {
        switch self {
        case let .invalidParameter(m): "invalid parameter: \(m)"
        case let .invalidState(m): "invalid state: \(m)"
        case let .resources(m): "out of resources: \(m)"
        case let .notSupported(m): "not supported: \(m)"
        case let .unknownQueue(q): "no such receive queue: \(q) (enumerate queues to see the allocated ids)"
        case let .unknownFilter(f): "no such receive filter: \(f) (enumerate filters to see the ids set)"
        case let .unknownAllocation(a): "no such shared memory allocation: \(a) (already freed, or never allocated on this adapter)"
        case let .memoryInUse(a, why): "shared memory \(a) is still in use: \(why)"
        case let .deviceRemoved(m): "the device was surprise-removed: \(m); halt the adapter"
        case let .requestPending(m): "a request is already pending: \(m); wait for it to complete"
        case let .miniportFailure(m): "miniport failure: \(m)"
        }
    }
}
