/// Flags of a receive indication. NDIS: NDIS_RECEIVE_FLAGS_* (same values).
public struct ReceiveFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// The caller is the poll thread and must not block (NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL).
    public static let dispatchLevel = ReceiveFlags(rawValue: 0x1)
    /// Ownership comes back when the callback returns; the protocol must copy (NDIS_RECEIVE_FLAGS_RESOURCES).
    public static let resources = ReceiveFlags(rawValue: 0x2)
    public static let singleEtherType = ReceiveFlags(rawValue: 0x100)
    public static let singleVLAN = ReceiveFlags(rawValue: 0x200)
    /// Every NBL passed a hardware perfect filter (NDIS_RECEIVE_FLAGS_PERFECT_FILTERED).
    public static let perfectFiltered = ReceiveFlags(rawValue: 0x400)
    /// Every NBL of the chain came from one queue (NDIS_RECEIVE_FLAGS_SINGLE_QUEUE).
    public static let singleQueue = ReceiveFlags(rawValue: 0x800)
    /// The NET_BUFFERs' shared memory info is valid (NDIS_RECEIVE_FLAGS_SHARED_MEMORY_INFO_VALID).
    public static let sharedMemoryInfoValid = ReceiveFlags(rawValue: 0x1000)
    public static let moreNBLs = ReceiveFlags(rawValue: 0x2000)
}

/// Flags of a return. NDIS: NDIS_RETURN_FLAGS_*.
public struct ReturnFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let dispatchLevel = ReturnFlags(rawValue: 0x1)
    /// Every NBL of the chain belongs to one queue (NDIS_RETURN_FLAGS_SINGLE_QUEUE).
    public static let singleQueue = ReturnFlags(rawValue: 0x2)
}

/// Flags of a send. NDIS: NDIS_SEND_FLAGS_*.
public struct SendFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let dispatchLevel = SendFlags(rawValue: 0x1)
    public static let checkForLoopback = SendFlags(rawValue: 0x2)
}

/// NDIS_PACKET_TYPE_* bits of the adapter's packet filter.
public struct PacketFilter: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let directed = PacketFilter(rawValue: 0x1)
    public static let multicast = PacketFilter(rawValue: 0x2)
    public static let allMulticast = PacketFilter(rawValue: 0x4)
    public static let broadcast = PacketFilter(rawValue: 0x8)
    public static let promiscuous = PacketFilter(rawValue: 0x20)
}
