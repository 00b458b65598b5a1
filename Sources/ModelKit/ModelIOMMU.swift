import DeviceAccess
import Glibc

/// What the device was doing when it touched memory; recorded with every fault.
public enum DMAActivity: Sendable, Equatable, CustomStringConvertible {
    case receiveDescriptorFetch(queue: Int)
    case receiveDescriptorWriteBack(queue: Int)
    case receivePacketBuffer(queue: Int)
    case receiveHeaderBuffer(queue: Int)
    case transmitDescriptorFetch(queue: Int)
    case transmitDescriptorWriteBack(queue: Int)
    case transmitBuffer(queue: Int)
    case transmitHeadWriteBack(queue: Int)
    case benchmark(queue: Int)
    /// Reading a control-queue command or writing its ack (virtio-net).
    case controlCommand(queue: Int)

    public var description: String {
        switch self {
        case let .receiveDescriptorFetch(q): return "fetching RX descriptor of queue \(q)"
        case let .receiveDescriptorWriteBack(q): return "writing back RX descriptor of queue \(q)"
        case let .receivePacketBuffer(q): return "writing a frame into a packet buffer of RX queue \(q)"
        case let .receiveHeaderBuffer(q): return "writing headers into a header buffer of RX queue \(q)"
        case let .transmitDescriptorFetch(q): return "fetching TX descriptor of queue \(q)"
        case let .transmitDescriptorWriteBack(q): return "writing back TX descriptor of queue \(q)"
        case let .transmitBuffer(q): return "reading a TX buffer of queue \(q)"
        case let .transmitHeadWriteBack(q): return "writing the TX head of queue \(q) to TDWBA"
        case let .benchmark(q): return "benchmark completion on queue \(q)"
        case let .controlCommand(q): return "processing a control command on queue \(q)"
        }
    }
}

/// A DMA the model's IOMMU refused (like a DMAR fault on real hardware). The access was dropped.
public struct DMAFault: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The IOVA range is not (or no longer) mapped.
        case unmapped
        /// PCI_COMMAND.MASTER was off: the function must not issue DMA at all.
        case busMasterDisabled
        /// A one-shot fault injected by the test (`ModelIOMMU.injectFault`).
        case injected
    }
    public var kind: Kind
    public var iova: UInt64
    public var length: Int
    /// True for a device write to memory, false for a device read from memory.
    public var isWrite: Bool
    public var activity: DMAActivity

    public init(kind: Kind, iova: UInt64, length: Int, isWrite: Bool, activity: DMAActivity) {
        self.kind = kind
        self.iova = iova
        self.length = length
        self.isWrite = isWrite
        self.activity = activity
    }

    public var description: String {
        let what: String
        switch kind {
        case .unmapped: what = "DMA to unmapped IOVA"
        case .busMasterDisabled: what = "DMA while PCI bus mastering is disabled"
        case .injected: what = "injected DMA fault"
        }
        return "\(what): \(isWrite ? "write" : "read") of \(length) bytes at 0x\(String(iova, radix: 16)) while \(activity)"
    }
}

/// Errors of the model's IOMMU and PCI function.
/// Errors of the model kit's pieces (IOMMU, PCI function scaffold) and the models built on them.
public enum ModelError: Error, Equatable, CustomStringConvertible {
    case invalidLength(Int)
    case outOfMemory(bytes: Int)
    case unknownRegion(id: UInt32)
    case noSuchBAR(Int)
    case tooManyVectors(requested: Int, available: Int)
    case badMACAddress(count: Int)

    public var description: String {
        switch self {
        case let .invalidLength(n): return "DMA allocation of \(n) bytes: ask for a positive length"
        case let .outOfMemory(n): return "could not allocate \(n) bytes of host memory for the model's IOMMU: free some regions or use smaller ones"
        case let .unknownRegion(id): return "DMA region \(id) is not mapped in the model's IOMMU (freed twice, or from another allocator)"
        case let .noSuchBAR(i): return "the model has no memory BAR \(i) (MSI-X lives in the model): use the BAR its PCI capabilities name"
        case let .tooManyVectors(r, a): return "asked for \(r) MSI-X vectors but the model offers \(a): request at most \(a)"
        case let .badMACAddress(n): return "a MAC address has 6 bytes, got \(n)"
        }
    }
}

/// The model's IOMMU: allocates page-aligned host memory and hands out IOVAs that are never equal
/// to the CPU address, so a driver that puts virtual addresses into descriptors faults at once.
///
/// Every DMA of the model goes through ``translate(_:length:isWrite:activity:)``; anything outside a
/// live mapping is recorded in ``faults`` and dropped. Freed IOVA ranges are never reused, so a device
/// still using freed memory faults as well.
public final class ModelIOMMU: DMAAllocator, @unchecked Sendable {
    /// The mapping granularity (the "page size" the driver sees).
    public enum Granularity: Int, Sendable {
        case page4K = 4096
        case huge2M = 2_097_152
    }

    @usableFromInline
    struct Mapping {
        @usableFromInline var iova: UInt64
        @usableFromInline var length: Int
        @usableFromInline var host: UnsafeMutableRawPointer
        @usableFromInline var region: UInt32
    }

    public let granularity: Granularity
    /// Faults recorded so far (oldest first). Tests usually expect it to be empty.
    @usableFromInline var recordedFaults: [DMAFault] = []
    public var faults: [DMAFault] { recordedFaults }
    /// Splits non-contiguous allocations into this many IOVA segments (when long enough).
    public var segmentsForNonContiguous = 2

    // Mappings sorted by IOVA in memory we own, so translation does no retain/release.
    @usableFromInline var mappings: UnsafeMutablePointer<Mapping>
    @usableFromInline var mappingCount = 0
    private var mappingCapacity = 16
    @usableFromInline var lastHit = 0
    @usableFromInline var previousHit = 0
    private var regions: [UInt32: (base: UnsafeMutableRawPointer, length: Int)] = [:]
    private var nextRegionID: UInt32 = 1
    // IOVAs start far away from any user-space address and skip a guard gap between allocations.
    private var nextIOVA: UInt64
    @usableFromInline var injectedFaultPending = false

    public init(granularity: Granularity = .page4K, iovaBase: UInt64 = 0x00F0_0000_0000) {
        self.granularity = granularity
        self.nextIOVA = iovaBase
        mappings = .allocate(capacity: mappingCapacity)
    }

    deinit {
        for (_, r) in regions { free(r.base) }
        mappings.deallocate()
    }

    public var liveRegionCount: Int { regions.count }
    public var liveBytes: Int { regions.values.reduce(0) { $0 + $1.length } }

    public func allocateDMA(length: Int, contiguous: Bool) throws -> DMARegion {
        guard length > 0 else { throw ModelError.invalidLength(length) }
        let page = granularity.rawValue
        let rounded = (length + page - 1) / page * page
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, page, rounded) == 0, let base = raw else {
            throw ModelError.outOfMemory(bytes: rounded)
        }
        memset(base, 0, rounded)
        let id = nextRegionID
        nextRegionID &+= 1
        regions[id] = (base, rounded)

        let pages = rounded / page
        let pieces = contiguous ? 1 : max(1, min(segmentsForNonContiguous, pages))
        var segments: [DMASegment] = []
        var offset = 0
        for i in 0..<pieces {
            let piecePages = pages / pieces + (i < pages % pieces ? 1 : 0)
            let len = piecePages * page
            let iova = nextIOVA
            // One unmapped guard page between ranges: overruns fault instead of hitting a neighbour.
            nextIOVA += UInt64(len + page)
            segments.append(DMASegment(iova: iova, length: len))
            insert(Mapping(iova: iova, length: len, host: base + offset, region: id))
            offset += len
        }
        return DMARegion(id: id, unsafeBase: base, length: rounded, segments: segments, pageSize: page)
    }

    public func freeDMA(_ region: DMARegion) throws {
        guard let r = regions.removeValue(forKey: region.id) else {
            throw ModelError.unknownRegion(id: region.id)
        }
        var w = 0
        for i in 0..<mappingCount where mappings[i].region != region.id {
            mappings[w] = mappings[i]
            w += 1
        }
        mappingCount = w
        lastHit = 0
        previousHit = 0
        free(r.base)
    }

    private func insert(_ m: Mapping) {
        if mappingCount == mappingCapacity {
            let bigger = UnsafeMutablePointer<Mapping>.allocate(capacity: mappingCapacity * 2)
            bigger.moveInitialize(from: mappings, count: mappingCount)
            mappings.deallocate()
            mappings = bigger
            mappingCapacity *= 2
        }
        // IOVAs only grow, so appending keeps the array sorted.
        (mappings + mappingCount).initialize(to: m)
        mappingCount += 1
    }

    /// Makes the next translation fail with an `.injected` fault (one shot).
    public func injectFault() { injectedFaultPending = true }

    /// Forgets recorded faults.
    public func clearFaults() { recordedFaults.removeAll() }

    /// Records a fault that did not come from translation (bus master off).
    public func record(_ fault: DMAFault) { recordedFaults.append(fault) }

    /// The host address of `length` bytes at `iova`, or nil (fault recorded) if the range is not
    /// entirely inside one live mapping.
    @inlinable @inline(__always)
    public func translate(_ iova: UInt64, length: Int, isWrite: Bool, activity: DMAActivity) -> UnsafeMutableRawPointer? {
        if _slowPath(injectedFaultPending) {
            injectedFaultPending = false
            recordedFaults.append(DMAFault(kind: .injected, iova: iova, length: length, isWrite: isWrite, activity: activity))
            return nil
        }
        // Two most recent mappings first: a ring and its buffers alternate (fetch, copy, write-back).
        if lastHit < mappingCount {
            let m = mappings[lastHit]
            if iova >= m.iova, iova &- m.iova <= UInt64(m.length), UInt64(length) <= UInt64(m.length) &- (iova &- m.iova) {
                return m.host + Int(iova &- m.iova)
            }
        }
        if previousHit < mappingCount {
            let m = mappings[previousHit]
            if iova >= m.iova, iova &- m.iova <= UInt64(m.length), UInt64(length) <= UInt64(m.length) &- (iova &- m.iova) {
                swap(&lastHit, &previousHit)
                return m.host + Int(iova &- m.iova)
            }
        }
        // Binary search for the last mapping starting at or below iova.
        var lo = 0, hi = mappingCount
        while lo < hi {
            let mid = (lo + hi) / 2
            if mappings[mid].iova <= iova { lo = mid + 1 } else { hi = mid }
        }
        if lo > 0 {
            let m = mappings[lo - 1]
            let off = iova &- m.iova
            if off <= UInt64(m.length), UInt64(length) <= UInt64(m.length) &- off {
                previousHit = lastHit
                lastHit = lo - 1
                return m.host + Int(off)
            }
        }
        recordedFaults.append(DMAFault(kind: .unmapped, iova: iova, length: length, isWrite: isWrite, activity: activity))
        return nil
    }
}
