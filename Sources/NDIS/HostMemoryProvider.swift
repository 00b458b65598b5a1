import DeviceAccess

/// Shared memory from ordinary host memory, with made-up IOVAs. For miniports without a device
/// (the loopback miniport, tests). It counts what is live so leak checks can see it.
public final class HostMemoryProvider: SharedMemoryProvider, DMAAllocator {
    struct Block { let base: UnsafeMutableRawPointer; let region: DMARegion }
    var blocks: [UInt32: Block] = [:]
    var nextID: UInt32 = 1
    var nextIOVA: UInt64 = 0x1_0000_0000
    public static let pageSize = 4096
    /// Fail the next N allocations (for error-path tests).
    public var failNextAllocations = 0

    public init() {}

    deinit { for (_, b) in blocks { b.base.deallocate() } }

    public func allocateDMA(length: Int, contiguous: Bool) throws -> DMARegion {
        if failNextAllocations > 0 {
            failNextAllocations -= 1
            throw NDISError.resources("host memory provider told to fail")
        }
        let size = (length + HostMemoryProvider.pageSize - 1) / HostMemoryProvider.pageSize * HostMemoryProvider.pageSize
        let base = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: HostMemoryProvider.pageSize)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        var segments: [DMASegment]
        if contiguous || size <= HostMemoryProvider.pageSize {
            segments = [DMASegment(iova: nextIOVA, length: size)]
            nextIOVA += UInt64(size) + 0x10_0000
        } else {
            // Two IOVA ranges with a hole between them, so users must honour the scatter-gather list.
            let first = size / 2 / HostMemoryProvider.pageSize * HostMemoryProvider.pageSize
            segments = [DMASegment(iova: nextIOVA, length: first)]
            nextIOVA += UInt64(first) + 0x10_0000
            segments.append(DMASegment(iova: nextIOVA, length: size - first))
            nextIOVA += UInt64(size - first) + 0x10_0000
        }
        let region = DMARegion(id: nextID, unsafeBase: base, length: size, segments: segments, pageSize: HostMemoryProvider.pageSize)
        blocks[nextID] = Block(base: base, region: region)
        nextID += 1
        return region
    }

    public func freeDMA(_ region: DMARegion) throws {
        guard let b = blocks.removeValue(forKey: region.id) else {
            throw NDISError.invalidParameter("DMA region \(region.id) is not live (double free?)")
        }
        b.base.deallocate()
    }

    public var liveRegionCount: Int { blocks.count }
    public var liveBytes: Int { blocks.values.reduce(0) { $0 + $1.region.length } }

    public func allocateSharedMemory(length: Int, usage: SharedMemoryUsage, flags: SharedMemoryFlags, node: Int?) throws -> DMARegion {
        try allocateDMA(length: length, contiguous: flags.contains(.contiguous))
    }

    public func freeSharedMemory(_ region: DMARegion) throws { try freeDMA(region) }
}
