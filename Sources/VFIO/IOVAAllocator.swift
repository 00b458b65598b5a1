/// A range of I/O virtual addresses, both ends inclusive (as VFIO reports them).
public struct IOVARange: Sendable, Equatable, CustomStringConvertible {
    public var first: UInt64
    public var last: UInt64

    public init(first: UInt64, last: UInt64) {
        precondition(first <= last, "IOVA range must not be empty")
        self.first = first
        self.last = last
    }

    public func contains(_ start: UInt64, length: UInt64) -> Bool {
        guard length > 0, start >= first else { return false }
        let (end, overflow) = start.addingReportingOverflow(length - 1)
        return !overflow && end <= last
    }

    public var description: String { "0x\(String(first, radix: 16))-0x\(String(last, radix: 16))" }

    /// What to assume when the kernel reports no ranges: 39 bits (the narrowest common IOMMU) less
    /// the x86 MSI window 0xfee00000-0xfeefffff, which is never mapped for DMA.
    public static let fallback: [IOVARange] = [
        IOVARange(first: 0, last: 0xfedf_ffff),
        IOVARange(first: 0xfef0_0000, last: (1 << 39) - 1),
    ]
}

/// Hands out IOVA ranges inside the container's valid ranges; never address 0.
///
/// Allocation is first fit, lowest address first, with the requested alignment. Reservations at a
/// fixed address (IOVA == VA) go through ``reserve(_:length:)``.
public struct IOVAAllocator: Sendable {
    public let ranges: [IOVARange]
    /// Lowest address handed out, so a zeroed descriptor never points at mapped memory.
    public let minimum: UInt64
    /// Allocated [start, start + length), sorted by start.
    public private(set) var allocations: [(start: UInt64, length: UInt64)] = []

    public init(ranges: [IOVARange], minimum: UInt64 = 0x1000) {
        self.ranges = ranges.sorted { $0.first < $1.first }
        self.minimum = minimum
    }

    /// Bytes currently allocated.
    public var allocatedBytes: UInt64 { allocations.reduce(0) { $0 + $1.length } }

    /// The lowest free, aligned range of `length` bytes; `nil` if none fits.
    public mutating func allocate(length: UInt64, alignment: UInt64) -> UInt64? {
        precondition(length > 0 && alignment > 0 && alignment & (alignment - 1) == 0, "alignment must be a power of two")
        for range in ranges {
            guard var candidate = Self.alignUp(max(range.first, minimum), alignment) else { continue }
            var fits = true
            for taken in allocations {
                let takenEnd = taken.start + taken.length
                if takenEnd <= candidate { continue }  // wholly below the candidate
                let (candidateEnd, overflow) = candidate.addingReportingOverflow(length)
                if overflow { fits = false; break }
                if candidateEnd <= taken.start { break }  // fits in the gap before this one
                guard let next = Self.alignUp(takenEnd, alignment) else { fits = false; break }
                candidate = next
            }
            if fits, range.contains(candidate, length: length) {
                insert(candidate, length)
                return candidate
            }
        }
        return nil
    }

    /// Takes `[start, start + length)` if it lies inside one valid range and overlaps nothing.
    public mutating func reserve(_ start: UInt64, length: UInt64) -> Bool {
        guard start >= minimum, ranges.contains(where: { $0.contains(start, length: length) }) else { return false }
        let end = start + length
        for taken in allocations where taken.start < end && start < taken.start + taken.length { return false }
        insert(start, length)
        return true
    }

    /// Releases the allocation that starts at `start`; false if there is none.
    @discardableResult
    public mutating func free(_ start: UInt64) -> Bool {
        guard let index = allocations.firstIndex(where: { $0.start == start }) else { return false }
        allocations.remove(at: index)
        return true
    }

    private mutating func insert(_ start: UInt64, _ length: UInt64) {
        let index = allocations.firstIndex { $0.start > start } ?? allocations.endIndex
        allocations.insert((start, length), at: index)
    }

    private static func alignUp(_ value: UInt64, _ alignment: UInt64) -> UInt64? {
        let (sum, overflow) = value.addingReportingOverflow(alignment - 1)
        return overflow ? nil : sum & ~(alignment - 1)
    }
}
