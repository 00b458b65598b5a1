import DeviceAccess

/// What a block of shared memory is for. NDIS: `NDIS_SHARED_MEMORY_USAGE`.
public enum SharedMemoryUsage: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case undefined, transmit, transmitHeader, transmitData
    case receive, receiveLookahead, receivePostLookahead, receiveHeader, receiveData
    case other

    public var description: String {
        switch self {
        case .undefined: "undefined"
        case .transmit: "transmit"
        case .transmitHeader: "transmit-header"
        case .transmitData: "transmit-data"
        case .receive: "receive"
        case .receiveLookahead: "receive-lookahead"
        case .receivePostLookahead: "receive-post-lookahead"
        case .receiveHeader: "receive-header"
        case .receiveData: "receive-data"
        case .other: "other"
        }
    }

    /// True for the usages that back receive buffers of a queue.
    public var isReceive: Bool {
        switch self {
        case .receive, .receiveLookahead, .receivePostLookahead, .receiveHeader, .receiveData: true
        default: false
        }
    }
}

/// Flags of a shared memory request. NDIS: `NDIS_SHARED_MEMORY_PARAMETERS.Flags`.
public struct SharedMemoryFlags: OptionSet, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// One IOVA range (NDIS_SHARED_MEM_PARAMETERS_CONTIGUOUS, spelled CONTIGOUS in some headers).
    public static let contiguous = SharedMemoryFlags(rawValue: 1)
}

/// A block of shared memory: DMA memory mapped through the IOMMU, as NdisAllocateSharedMemory returns it.
public struct SharedMemory: Sendable {
    /// Used to free the block (NdisFreeSharedMemory).
    public let allocationHandle: AllocationHandle
    /// Carried in receive indications (NET_BUFFER_SHARED_MEMORY.SharedMemoryHandle).
    public let sharedMemoryHandle: SharedMemoryHandle
    /// The queue the memory belongs to.
    public let queue: ReceiveQueueID
    public let usage: SharedMemoryUsage
    public let flags: SharedMemoryFlags
    /// Preferred NUMA node, or nil for any.
    public let node: Int?
    /// The underlying DMA region: virtual address and IOVA segments.
    public let region: DMARegion

    /// Length in bytes.
    public var length: Int { region.length }
    /// The scatter-gather list: the IOVA segments the device uses.
    public var scatterGatherList: [DMASegment] { region.segments }
    /// Base virtual address. Writing through it can break memory safety.
    public var unsafeVirtualAddress: UnsafeMutableRawPointer { region.unsafeBaseAddress }
}

/// Provides DMA memory to the NDIS core (NDIS: the shared memory provider,
/// ALLOCATE_SHARED_MEMORY_HANDLER / FREE_SHARED_MEMORY_HANDLER).
///
/// `DMAAllocator` from DeviceAccess (VFIO or the model's IOMMU) is the provider; this protocol
/// lets a test or an embedder swap in another (for example one that fails on demand).
public protocol SharedMemoryProvider: AnyObject {
    func allocateSharedMemory(length: Int, usage: SharedMemoryUsage, flags: SharedMemoryFlags, node: Int?) throws -> DMARegion
    func freeSharedMemory(_ region: DMARegion) throws
    /// The DMA domain the memory lives in: adapters with the same domain can DMA from each
    /// other's memory (one IOMMU domain, e.g. one process-wide VFIO container). Nil: not shareable.
    var dmaDomain: ObjectIdentifier? { get }
}

extension SharedMemoryProvider {
    public var dmaDomain: ObjectIdentifier? { nil }
}

/// Any DMA allocator is a shared memory provider.
public final class DMASharedMemoryProvider: SharedMemoryProvider {
    public let allocator: any DMAAllocator
    public init(_ allocator: any DMAAllocator) { self.allocator = allocator }
    /// The allocator is the domain: VFIO devices of one process share one (VFIODMADomain).
    public var dmaDomain: ObjectIdentifier? { ObjectIdentifier(allocator) }
    public func allocateSharedMemory(length: Int, usage: SharedMemoryUsage, flags: SharedMemoryFlags, node: Int?) throws -> DMARegion {
        try allocator.allocateDMA(length: length, contiguous: flags.contains(.contiguous))
    }
    public func freeSharedMemory(_ region: DMARegion) throws {
        try allocator.freeDMA(region)
    }
}
