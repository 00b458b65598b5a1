/// RSS configuration (NDIS_RECEIVE_SCALE_PARAMETERS).
public struct ReceiveScaleParameters: Sendable, Equatable {
    /// Hash types to compute (NDIS_HASH_*).
    public var hashTypes: HashType
    /// 40-byte Toeplitz key.
    public var key: [UInt8]
    /// Indirection table: hash → queue index (power of two, at most 128 entries).
    public var indirectionTable: [UInt8]
    public init(hashTypes: HashType, key: [UInt8], indirectionTable: [UInt8]) {
        self.hashTypes = hashTypes
        self.key = key
        self.indirectionTable = indirectionTable
    }
    public static func == (a: Self, b: Self) -> Bool {
        a.hashTypes.rawValue == b.hashTypes.rawValue && a.key == b.key && a.indirectionTable == b.indirectionTable
    }
}

/// Counters of an adapter or queue (NDIS_STATISTICS_INFO), 64-bit, accumulated by the miniport.
public struct Statistics: Sendable, Equatable, Codable {
    public var receivedFrames: UInt64 = 0
    public var receivedBytes: UInt64 = 0
    public var transmittedFrames: UInt64 = 0
    public var transmittedBytes: UInt64 = 0
    public var receiveBroadcast: UInt64 = 0
    public var receiveMulticast: UInt64 = 0
    /// Frames the hardware dropped for lack of a descriptor or buffer.
    public var receiveDrops: UInt64 = 0
    /// Frames with errors (bad write-back, CRC…).
    public var receiveErrors: UInt64 = 0
    public var transmitErrors: UInt64 = 0
    /// Frames indicated with NDIS_RECEIVE_FLAGS_RESOURCES (the miniport was short of buffers).
    public var resourcesIndications: UInt64 = 0
    /// Receive buffers posted to the queue's ring(s) when read, and the rings' descriptor count
    /// (gauges, per queue: how full the ring is). 0 where the miniport does not say.
    public var ringFill: UInt64 = 0
    public var ringSize: UInt64 = 0
    public init() {}
}

/// Per-queue and global statistics.
public struct StatisticsReport: Sendable, Equatable, Codable {
    public var global: Statistics
    /// Per queue id.
    public var queues: [UInt16: Statistics]
    /// Frames the framework discarded: no filter/queue, queue paused, no binding wants them, copy pool dry.
    public var frameworkDrops: UInt64
    /// NBLs dropped without return and recovered (release builds).
    public var leakedNBLs: UInt64
    /// Frames the miniport indicated while the adapter was Paused (receive on before restart: a
    /// miniport bug; also in `frameworkDrops`).
    public var indicationsWhilePaused: UInt64 = 0
    /// Sends completed with NDIS_STATUS_MEDIA_DISCONNECTED because the link was down (not sent).
    public var sendsWhileLinkDown: UInt64 = 0
    public init(global: Statistics = Statistics(), queues: [UInt16: Statistics] = [:], frameworkDrops: UInt64 = 0, leakedNBLs: UInt64 = 0) {
        self.global = global
        self.queues = queues
        self.frameworkDrops = frameworkDrops
        self.leakedNBLs = leakedNBLs
    }
}

/// A control request (an OID), as a binding or tool sends it to an adapter. The framework validates
/// it, keeps its own cache, and passes the checked form (``MiniportRequest``) to the miniport.
public enum OIDRequest: Sendable {
    /// OID_RECEIVE_FILTER_ALLOCATE_QUEUE.
    case allocateQueue(ReceiveQueueParameters)
    /// OID_RECEIVE_FILTER_QUEUE_ALLOCATION_COMPLETE.
    case queueAllocationComplete([ReceiveQueueID])
    /// OID_RECEIVE_FILTER_SET_FILTER.
    case setFilter(ReceiveFilterParameters)
    /// OID_RECEIVE_FILTER_CLEAR_FILTER.
    case clearFilter(ReceiveFilterID)
    /// OID_RECEIVE_FILTER_FREE_QUEUE.
    case freeQueue(ReceiveQueueID)
    /// OID_RECEIVE_FILTER_QUEUE_PARAMETERS (set).
    case setQueueParameters(ReceiveQueueID, ReceiveQueueParameterChange)
    /// OID_RECEIVE_FILTER_ENUM_QUEUES.
    case enumerateQueues
    /// OID_RECEIVE_FILTER_ENUM_FILTERS for one queue.
    case enumerateFilters(ReceiveQueueID)
    /// OID_RECEIVE_FILTER_HARDWARE_CAPABILITIES.
    case hardwareCapabilities
    /// OID_RECEIVE_FILTER_CURRENT_CAPABILITIES.
    case currentCapabilities
    /// OID_GEN_STATISTICS and per-queue counters.
    case statistics
    /// OID_GEN_CURRENT_PACKET_FILTER.
    case setPacketFilter(PacketFilter)
    /// OID_802_3_MULTICAST_LIST.
    case setMulticastList([MACAddress])
    /// OID_GEN_RECEIVE_SCALE_PARAMETERS (only while no VMQ queue is allocated).
    case setReceiveScale(ReceiveScaleParameters)
    /// OID_GEN_LINK_STATE.
    case linkState
}

/// What an OID request answers.
public enum OIDResponse: Sendable {
    case done
    case queueAllocated(ReceiveQueueID)
    /// Per-queue status of an allocation-complete batch.
    case allocationComplete([(ReceiveQueueID, NDISStatus)])
    case filterSet(ReceiveFilterID)
    /// FREE_QUEUE is waiting for NBLs to come back; the adapter completes it when the last returns.
    case pending
    case queues([ReceiveQueueInfo])
    case filters([ReceiveFilter])
    case hardwareCapabilities(ReceiveFilterCapabilities)
    case currentCapabilities(CurrentReceiveFilterCapabilities)
    case statistics(StatisticsReport)
    case linkState(LinkState)
}

/// A request the framework has validated, for the miniport. Ids are already assigned.
public enum MiniportRequest: Sendable {
    /// Set up the queue's hardware state (no shared memory yet).
    case allocateQueue(ReceiveQueueID, ReceiveQueueParameters)
    /// Allocate the queue's shared memory and buffers now (NDIS: at ALLOCATION_COMPLETE).
    case queueAllocationComplete(ReceiveQueueID)
    /// Program a hardware filter on a queue.
    case setFilter(ReceiveFilter)
    /// Remove a hardware filter.
    case clearFilter(ReceiveFilter)
    /// FREE_QUEUE step 1: stop the queue's DMA (disable it, drain it). Buffers stay mapped.
    case stopQueueDMA(ReceiveQueueID)
    /// FREE_QUEUE step 4: every NBL is back; free the queue's shared memory and forget it.
    case freeQueueResources(ReceiveQueueID)
    case setQueueParameters(ReceiveQueueID, ReceiveQueueParameters)
    case setPacketFilter(PacketFilter)
    case setMulticastList([MACAddress])
    case setReceiveScale(ReceiveScaleParameters)
    case queryStatistics
    case queryLinkState
}

/// What the miniport answers.
public enum MiniportResponse: Sendable {
    case done
    case statistics(StatisticsReport)
    case linkState(LinkState)
}

/// Status indications (NdisMIndicateStatusEx).
public enum StatusIndication: Sendable, Equatable {
    /// NDIS_STATUS_LINK_STATE.
    case linkState(LinkState)
    /// NDIS_STATUS_RECEIVE_QUEUE_STATE with NdisReceiveQueueOperationalStateDmaStopped.
    case receiveQueueDMAStopped(ReceiveQueueID)
    /// The device is gone (surprise removal).
    case surpriseRemoval
    /// A pending request completed (FREE_QUEUE), with its status.
    case requestComplete(String, NDISStatus)
}
