/// Flags of a receive indication. NDIS: NDIS_RECEIVE_FLAGS_* (same values).
public struct ReceiveFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// The caller is the poll thread and must not block (NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL).
    @inlinable public static var dispatchLevel: ReceiveFlags { ReceiveFlags(rawValue: 0x1) }
    /// Ownership comes back when the callback returns; the protocol must copy (NDIS_RECEIVE_FLAGS_RESOURCES).
    @inlinable public static var resources: ReceiveFlags { ReceiveFlags(rawValue: 0x2) }
    @inlinable public static var singleEtherType: ReceiveFlags { ReceiveFlags(rawValue: 0x100) }
    @inlinable public static var singleVLAN: ReceiveFlags { ReceiveFlags(rawValue: 0x200) }
    /// Every NBL passed a hardware perfect filter (NDIS_RECEIVE_FLAGS_PERFECT_FILTERED).
    @inlinable public static var perfectFiltered: ReceiveFlags { ReceiveFlags(rawValue: 0x400) }
    /// Every NBL of the chain came from one queue (NDIS_RECEIVE_FLAGS_SINGLE_QUEUE).
    @inlinable public static var singleQueue: ReceiveFlags { ReceiveFlags(rawValue: 0x800) }
    /// The NET_BUFFERs' shared memory info is valid (NDIS_RECEIVE_FLAGS_SHARED_MEMORY_INFO_VALID).
    @inlinable public static var sharedMemoryInfoValid: ReceiveFlags { ReceiveFlags(rawValue: 0x1000) }
    @inlinable public static var moreNBLs: ReceiveFlags { ReceiveFlags(rawValue: 0x2000) }
}

/// Flags of a return. NDIS: NDIS_RETURN_FLAGS_*.
public struct ReturnFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    @inlinable public static var dispatchLevel: ReturnFlags { ReturnFlags(rawValue: 0x1) }
    /// Every NBL of the chain belongs to one queue (NDIS_RETURN_FLAGS_SINGLE_QUEUE).
    @inlinable public static var singleQueue: ReturnFlags { ReturnFlags(rawValue: 0x2) }
}

/// Flags of a send. NDIS: NDIS_SEND_FLAGS_*.
public struct SendFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    @inlinable public static var dispatchLevel: SendFlags { SendFlags(rawValue: 0x1) }
    @inlinable public static var checkForLoopback: SendFlags { SendFlags(rawValue: 0x2) }
}

/// NDIS_PACKET_TYPE_* bits of the adapter's packet filter.
public struct PacketFilter: OptionSet, Sendable {
    public let rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    @inlinable public static var directed: PacketFilter { PacketFilter(rawValue: 0x1) }
    @inlinable public static var multicast: PacketFilter { PacketFilter(rawValue: 0x2) }
    @inlinable public static var allMulticast: PacketFilter { PacketFilter(rawValue: 0x4) }
    @inlinable public static var broadcast: PacketFilter { PacketFilter(rawValue: 0x8) }
    @inlinable public static var promiscuous: PacketFilter { PacketFilter(rawValue: 0x20) }
}
