import CShim
import DeviceAccess
import Glibc

/// Makes memory visible to a device: ``VFIOContainer`` (VFIO_IOMMU_MAP_DMA) or a test double.
public protocol DMAMapper: AnyObject {
    /// IOVA ranges the IOMMU accepts.
    var iovaRanges: [IOVARange] { get }
    /// Smallest IOMMU page size; IOVAs are aligned to it at least.
    var iovaAlignment: UInt64 { get }
    /// True in vfio's no-IOMMU mode: nothing translates, so the device must be given physical addresses.
    var needsPhysicalAddresses: Bool { get }
    /// Maps `length` bytes at `virtualAddress` to `iova` for device reads and writes.
    func mapDMA(virtualAddress: UInt, iova: UInt64, length: Int) throws(VFIOError)
    /// Removes the mapping made for `iova`.
    func unmapDMA(iova: UInt64, length: Int) throws(VFIOError)
}

/// Where DMA memory comes from: anonymous mmap, 2 MiB hugepages or 4 KiB pages. Injectable so
/// tests can make hugepages "unavailable" whatever the machine has.
public struct DMAMemorySource: Sendable {
    /// Maps `length` bytes (a multiple of the page size) or returns the errno.
    public var map: @Sendable (_ length: Int, _ hugepages: Bool) -> Result<UnsafeMutableRawPointer, VFIOMemoryErrno>
    public var unmap: @Sendable (_ base: UnsafeMutableRawPointer, _ length: Int) -> Void

    public init(
        map: @escaping @Sendable (Int, Bool) -> Result<UnsafeMutableRawPointer, VFIOMemoryErrno>,
        unmap: @escaping @Sendable (UnsafeMutableRawPointer, Int) -> Void
    ) {
        self.map = map
        self.unmap = unmap
    }

    /// Shared anonymous memory; MAP_HUGETLB | MAP_HUGE_2MB for hugepages. MAP_POPULATE faults the
    /// pages in now, so a missing hugepage shows up here and not as SIGBUS later.
    public static let anonymous = DMAMemorySource(
        map: { length, huge in
            var flags = MAP_SHARED | MAP_ANONYMOUS | MINIPORT_MAP_POPULATE
            if huge { flags |= MINIPORT_MAP_HUGETLB | MINIPORT_MAP_HUGE_2MB }
            let base = mmap(nil, length, PROT_READ | PROT_WRITE, flags, -1, 0)
            if base == MAP_FAILED || base == nil { return .failure(VFIOMemoryErrno(code: errno)) }
            return .success(base!)
        },
        unmap: { base, length in _ = munmap(base, length) }
    )
}

/// An errno from ``DMAMemorySource/map``.
public struct VFIOMemoryErrno: Error, Equatable, Sendable {
    public var code: Int32
    public init(code: Int32) { self.code = code }
}

/// DMA memory for one VFIO container: hugepages (or 4 KiB pages, warned), IOVAs from the
/// container's valid ranges, VFIO_IOMMU_MAP_DMA on allocation and unmap + free on release.
///
/// Accounting (``liveRegionCount``, ``liveBytes``, ``mapCalls``/``unmapCalls``) lets a test prove
/// that closing a device left nothing mapped.
public final class VFIODMAAllocator: DMAAllocator {
    public static let hugepageSize = 2 << 20
    public static let smallPageSize = 4096

    private struct Live {
        let base: UnsafeMutableRawPointer
        let length: Int
        let segments: [DMASegment]
        let pageSize: Int
    }

    private let mapper: any DMAMapper
    private let environment: VFIOEnvironment
    private let memory: DMAMemorySource
    public let hugepages: HugepagePolicy
    public let iovaPolicy: IOVAPolicy
    private var iova: IOVAAllocator
    private var live: [UInt32: Live] = [:]
    private var nextID: UInt32 = 1
    private var warnedAboutSmallPages = false
    private var closed = false

    /// Successful mapDMA calls so far.
    public private(set) var mapCalls = 0
    /// Successful unmapDMA calls so far.
    public private(set) var unmapCalls = 0

    public init(
        mapper: any DMAMapper,
        environment: VFIOEnvironment = .system,
        hugepages: HugepagePolicy = .prefer,
        iova: IOVAPolicy = .allocate,
        memory: DMAMemorySource = .anonymous
    ) {
        self.mapper = mapper
        self.environment = environment
        self.memory = memory
        self.hugepages = hugepages
        self.iovaPolicy = iova
        self.iova = IOVAAllocator(ranges: mapper.iovaRanges, minimum: max(0x1000, mapper.iovaAlignment))
    }

    deinit { releaseAll() }

    public var liveRegionCount: Int { live.count }
    public var liveBytes: Int { live.values.reduce(0) { $0 + $1.length } }

    /// Allocates, pins and maps `length` bytes (rounded up to the page size).
    /// - Throws: ``VFIOError/memlockTooLow(needed:limit:)``, ``VFIOError/noHugepages(requested:)``,
    ///   ``VFIOError/iovaExhausted(length:)``, or the mapper's error.
    public func allocateDMA(length: Int, contiguous: Bool) throws(VFIOError) -> DMARegion {
        guard !closed else { throw .closed("DMA allocator") }
        precondition(length > 0, "DMA length must be positive")
        var pageSize = hugepages == .never ? Self.smallPageSize : Self.hugepageSize
        var rounded = Self.roundUp(length, pageSize)
        try checkMemlock(adding: rounded)

        var base: UnsafeMutableRawPointer
        switch memory.map(rounded, pageSize == Self.hugepageSize) {
        case let .success(pointer):
            base = pointer
        case let .failure(error) where pageSize == Self.hugepageSize:
            if hugepages == .require { throw .noHugepages(requested: rounded) }
            if !warnedAboutSmallPages {
                warnedAboutSmallPages = true
                environment.warn(
                    "no free 2 MiB hugepages (mmap: \(String(cString: strerror(error.code)))): using 4 KiB pages, which map slower and cost IOTLB entries; reserve hugepages with `echo 64 > /proc/sys/vm/nr_hugepages`"
                )
            }
            pageSize = Self.smallPageSize
            rounded = Self.roundUp(length, pageSize)
            switch memory.map(rounded, false) {
            case let .success(pointer): base = pointer
            case let .failure(error): throw .outOfMemory(requested: rounded, errno: error.code)
            }
        case let .failure(error):
            throw .outOfMemory(requested: rounded, errno: error.code)
        }

        let segments: [DMASegment]
        do {
            segments = try mapMemory(base: base, length: rounded, pageSize: pageSize, contiguous: contiguous)
        } catch {
            memory.unmap(base, rounded)
            throw error
        }
        let id = nextID
        nextID &+= 1  // ids wrap after 2^32 allocations; a live id is never reused in practice
        live[id] = Live(base: base, length: rounded, segments: segments, pageSize: pageSize)
        return DMARegion(id: id, unsafeBase: base, length: rounded, segments: segments, pageSize: pageSize)
    }

    private func checkMemlock(adding bytes: Int) throws(VFIOError) {
        // VFIO type 1 charges pinned pages to RLIMIT_MEMLOCK unless the process has CAP_IPC_LOCK.
        guard let limit = environment.memlockLimit(), !environment.canLockBeyondLimit() else { return }
        let needed = liveBytes + bytes
        if needed > limit { throw .memlockTooLow(needed: needed, limit: limit) }
    }

    private func mapMemory(base: UnsafeMutableRawPointer, length: Int, pageSize: Int, contiguous: Bool) throws(VFIOError) -> [DMASegment] {
        if mapper.needsPhysicalAddresses {
            let segments = try PhysicalAddresses.segments(base: base, length: length, pageSize: pageSize)
            if contiguous && segments.count != 1 { throw .iovaExhausted(length: length) }
            try mapper.mapDMA(virtualAddress: UInt(bitPattern: base), iova: segments[0].iova, length: length)
            mapCalls += 1
            return segments
        }
        let va = UInt64(UInt(bitPattern: base))
        let address: UInt64
        if iovaPolicy == .identity, iova.reserve(va, length: UInt64(length)) {
            address = va
        } else if let allocated = iova.allocate(length: UInt64(length), alignment: max(UInt64(pageSize), mapper.iovaAlignment)) {
            address = allocated
        } else {
            throw .iovaExhausted(length: length)
        }
        do {
            try mapper.mapDMA(virtualAddress: UInt(bitPattern: base), iova: address, length: length)
        } catch {
            iova.free(address)
            throw error
        }
        mapCalls += 1
        return [DMASegment(iova: address, length: length)]
    }

    /// Unmaps and frees a region.
    /// - Throws: ``VFIOError/unknownDMARegion(id:)`` for a region this allocator does not hold. If the
    ///   IOMMU unmap fails the memory is kept (the device could still write to it) and the error thrown.
    public func freeDMA(_ region: DMARegion) throws(VFIOError) {
        guard let entry = live[region.id], entry.base == region.unsafeBaseAddress else { throw .unknownDMARegion(id: region.id) }
        try release(id: region.id, entry)
    }

    private func release(id: UInt32, _ entry: Live) throws(VFIOError) {
        if mapper.needsPhysicalAddresses {
            try mapper.unmapDMA(iova: entry.segments[0].iova, length: entry.length)
        } else {
            try mapper.unmapDMA(iova: entry.segments[0].iova, length: entry.length)
            iova.free(entry.segments[0].iova)
        }
        unmapCalls += 1
        memory.unmap(entry.base, entry.length)
        live[id] = nil
    }

    /// Frees every region (device close). Returns the first error; keeps going after one.
    @discardableResult
    public func releaseAll() -> VFIOError? {
        var first: VFIOError?
        for (id, entry) in live.sorted(by: { $0.key < $1.key }) {
            do { try release(id: id, entry) } catch { first = first ?? error }
        }
        return first
    }

    /// Frees everything and refuses further allocations.
    @discardableResult
    public func close() -> VFIOError? {
        let error = releaseAll()
        closed = true
        return error
    }

    static func roundUp(_ value: Int, _ multiple: Int) -> Int {
        (value + multiple - 1) / multiple * multiple
    }
}

/// Physical addresses from /proc/self/pagemap, for vfio's no-IOMMU mode (needs CAP_SYS_ADMIN).
enum PhysicalAddresses {
    /// The physically contiguous runs of a locked buffer, in order.
    static func segments(base: UnsafeMutableRawPointer, length: Int, pageSize: Int) throws(VFIOError) -> [DMASegment] {
        // Pages must stay put: lock them (no-IOMMU mode has no VFIO pinning).
        _ = try Syscall.check("mlock", "DMA memory") { mlock(base, length) }
        let fd = try Syscall.check("open", "/proc/self/pagemap") { open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC) }
        defer { Syscall.close(fd) }
        var segments: [DMASegment] = []
        var offset = 0
        while offset < length {
            let va = UInt(bitPattern: base) + UInt(offset)
            var entry: UInt64 = 0
            // One 64-bit entry per 4 KiB virtual page: bit 63 present, bits 0-54 the page frame number.
            let at = off_t(va / 4096 * 8)
            let n = try Syscall.check("pread", "/proc/self/pagemap") { withUnsafeMutableBytes(of: &entry) { pread(fd, $0.baseAddress, 8, at) } }
            let frame = entry & ((1 << 55) - 1)
            guard n == 8, entry & (1 << 63) != 0, frame != 0 else {
                throw .system(call: "pagemap lookup (no-IOMMU mode needs CAP_SYS_ADMIN)", target: "/proc/self/pagemap", errno: EPERM)
            }
            let physical = frame * 4096 + UInt64(va % 4096)
            if let last = segments.last, last.iova + UInt64(last.length) == physical {
                segments[segments.count - 1].length += pageSize
            } else {
                segments.append(DMASegment(iova: physical, length: pageSize))
            }
            offset += pageSize
        }
        return segments
    }
}
