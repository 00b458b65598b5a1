/// One IOVA-contiguous piece of a DMA region, as a device sees it.
public struct DMASegment: Sendable, Equatable {
    /// I/O virtual address the device uses.
    public var iova: UInt64
    /// Length in bytes.
    public var length: Int
    public init(iova: UInt64, length: Int) {
        self.iova = iova
        self.length = length
    }
}

/// Memory that a device can reach by DMA, mapped through an IOMMU (VFIO's or the model's).
///
/// The memory is owned by the ``DMAAllocator`` that made it; the region is a description.
public struct DMARegion: Sendable {
    /// Allocator-unique id, used to free it and to account for it.
    public let id: UInt32
    @usableFromInline let baseBits: UInt
    /// Length in bytes (may be rounded up to the page size by the allocator).
    public let length: Int
    /// Device-visible address ranges, in order; their lengths add up to `length`.
    public let segments: [DMASegment]
    /// The page size the memory is made of (2 MiB hugepages or 4 KiB pages).
    public let pageSize: Int

    public init(id: UInt32, unsafeBase: UnsafeMutableRawPointer, length: Int, segments: [DMASegment], pageSize: Int) {
        self.id = id
        self.baseBits = UInt(bitPattern: unsafeBase)
        self.length = length
        self.segments = segments
        self.pageSize = pageSize
    }

    /// Start of the CPU mapping. Anything that writes through it can break memory safety.
    @inlinable
    public var unsafeBaseAddress: UnsafeMutableRawPointer {
        // Safety: the allocator never hands out a region at address 0.
        UnsafeMutableRawPointer(bitPattern: baseBits)!
    }

    /// True when the whole region is one IOVA range.
    public var isContiguous: Bool { segments.count == 1 }

    /// The device address of the byte at `offset`; `nil` if `offset` is outside the region.
    public func iova(atOffset offset: Int) -> UInt64? {
        guard offset >= 0, offset < length else { return nil }
        var remaining = offset
        for segment in segments {
            if remaining < segment.length { return segment.iova + UInt64(remaining) }
            remaining -= segment.length
        }
        return nil
    }

    /// The length of the IOVA-contiguous run that starts at `offset`.
    public func contiguousLength(atOffset offset: Int) -> Int {
        guard offset >= 0, offset < length else { return 0 }
        var remaining = offset
        for segment in segments {
            if remaining < segment.length { return segment.length - remaining }
            remaining -= segment.length
        }
        return 0
    }
}

/// Allocates memory a device can DMA to and maps it through the IOMMU.
///
/// Implementations: VFIO (hugepages + VFIO_IOMMU_MAP_DMA) and the hardware model's emulated IOMMU.
public protocol DMAAllocator: AnyObject {
    /// Allocates and maps `length` bytes.
    /// - Parameters:
    ///   - length: bytes wanted; rounded up to the page size.
    ///   - contiguous: the device must see one IOVA range.
    /// - Throws: a typed error of the backend (memlock limit, no hugepages, IOMMU map failure…).
    func allocateDMA(length: Int, contiguous: Bool) throws -> DMARegion
    /// Unmaps and frees a region. Freeing an unknown region throws.
    func freeDMA(_ region: DMARegion) throws
    /// Regions currently mapped (for leak accounting).
    var liveRegionCount: Int { get }
    /// Bytes currently mapped (for leak accounting).
    var liveBytes: Int { get }
}
