import Synchronization

/// One piece of memory behind a NET_BUFFER: an MDL and a NET_BUFFER_SHARED_MEMORY entry in one.
///
/// `address`/`length` are what an MDL says (virtual address, byte count); `sharedMemory`/`offset`
/// are what NET_BUFFER_SHARED_MEMORY says (handle, offset of this piece inside that block).
public struct BufferSegment: @unchecked Sendable {
    /// Virtual address of the first byte of the segment.
    public var address: UnsafeMutableRawPointer?
    /// Device address of the first byte of the segment.
    public var iova: UInt64
    /// Bytes of the segment that hold data (MDL ByteCount), counting backfill room in front of the data.
    public var length: UInt32
    /// Bytes the underlying buffer can hold from `address` on.
    public var capacity: UInt32
    /// Room before `address` that belongs to this buffer (backfill for a split header).
    public var headroom: UInt32
    /// NET_BUFFER_SHARED_MEMORY.SharedMemoryHandle.
    public var sharedMemory: SharedMemoryHandle
    /// NET_BUFFER_SHARED_MEMORY.SharedMemoryOffset: offset of `address` inside the shared memory block.
    public var sharedMemoryOffset: UInt32
    /// NET_BUFFER_SHARED_MEMORY.SharedMemoryFlags (reserved, 0).
    public var sharedMemoryFlags: UInt32
    /// The miniport's own id for the buffer (e.g. its index in the receive buffer table).
    public var cookie: UInt32

    public init(address: UnsafeMutableRawPointer?, iova: UInt64, length: UInt32, capacity: UInt32,
                headroom: UInt32 = 0, sharedMemory: SharedMemoryHandle = .none, sharedMemoryOffset: UInt32 = 0,
                cookie: UInt32 = 0) {
        self.address = address
        self.iova = iova
        self.length = length
        self.capacity = capacity
        self.headroom = headroom
        self.sharedMemory = sharedMemory
        self.sharedMemoryOffset = sharedMemoryOffset
        self.sharedMemoryFlags = 0
        self.cookie = cookie
    }

    public static let empty = BufferSegment(address: nil, iova: 0, length: 0, capacity: 0)
}

/// Receive checksum verdicts and transmit checksum requests. NDIS: `NDIS_TCP_IP_CHECKSUM_NET_BUFFER_LIST_INFO`.
/// Neither bit of a pair set means "not checked".
public struct ChecksumInfo: OptionSet, Sendable {
    public let rawValue: UInt16
    @inlinable public init(rawValue: UInt16) { self.rawValue = rawValue }
    @inlinable public static var ipv4Succeeded: ChecksumInfo { ChecksumInfo(rawValue: 1 << 0) }
    @inlinable public static var ipv4Failed: ChecksumInfo { ChecksumInfo(rawValue: 1 << 1) }
    @inlinable public static var tcpSucceeded: ChecksumInfo { ChecksumInfo(rawValue: 1 << 2) }
    @inlinable public static var tcpFailed: ChecksumInfo { ChecksumInfo(rawValue: 1 << 3) }
    @inlinable public static var udpSucceeded: ChecksumInfo { ChecksumInfo(rawValue: 1 << 4) }
    @inlinable public static var udpFailed: ChecksumInfo { ChecksumInfo(rawValue: 1 << 5) }
    /// Transmit: ask the hardware to fill in the IPv4 header checksum.
    @inlinable public static var transmitIPv4: ChecksumInfo { ChecksumInfo(rawValue: 1 << 8) }
    /// Transmit: ask the hardware to fill in the TCP checksum.
    @inlinable public static var transmitTCP: ChecksumInfo { ChecksumInfo(rawValue: 1 << 9) }
    /// Transmit: ask the hardware to fill in the UDP checksum.
    @inlinable public static var transmitUDP: ChecksumInfo { ChecksumInfo(rawValue: 1 << 10) }
}

/// RSS hash type and function. NDIS: NDIS_HASH_* bits of NET_BUFFER_LIST_HASH_TYPE.
public struct HashType: OptionSet, Sendable {
    public let rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    @inlinable public static var ipv4: HashType { HashType(rawValue: 0x0000_0100) }
    @inlinable public static var tcpIPv4: HashType { HashType(rawValue: 0x0000_0200) }
    @inlinable public static var ipv6: HashType { HashType(rawValue: 0x0000_0400) }
    @inlinable public static var ipv6Ex: HashType { HashType(rawValue: 0x0000_0800) }
    @inlinable public static var tcpIPv6: HashType { HashType(rawValue: 0x0000_1000) }
    @inlinable public static var tcpIPv6Ex: HashType { HashType(rawValue: 0x0000_2000) }
    @inlinable public static var udpIPv4: HashType { HashType(rawValue: 0x0000_4000) }
    @inlinable public static var udpIPv6: HashType { HashType(rawValue: 0x0000_8000) }
    @inlinable public static var udpIPv6Ex: HashType { HashType(rawValue: 0x0001_0000) }
    /// NdisHashFunctionToeplitz.
    @inlinable public static var toeplitz: HashType { HashType(rawValue: 0x0000_0001) }
}

/// Per-packet out-of-band information (NET_BUFFER_LIST.NetBufferListInfo[]).
public struct NetBufferListInfo: Sendable {
    /// NET_BUFFER_LIST_RECEIVE_QUEUE_ID: the queue the frame was received on (0 = default).
    public var receiveQueueID: UInt16
    /// NET_BUFFER_LIST_RECEIVE_FILTER_ID (NDIS sets it to 0 for VMQ; we report the matching filter when known).
    public var receiveFilterID: UInt16
    /// Ieee8021QNetBufferListInfo.VlanId (0 with `vlanPresent == false`: no tag).
    public var vlanID: UInt16
    /// Ieee8021QNetBufferListInfo.UserPriority.
    public var userPriority: UInt8
    /// Whether the hardware stripped an 802.1Q tag into `vlanID`/`userPriority` (or transmit: insert one).
    public var vlanPresent: Bool
    /// TcpIpChecksumNetBufferListInfo.
    public var checksum: ChecksumInfo
    /// NetBufferListHashValue.
    public var hashValue: UInt32
    /// NetBufferListHashInfo (type | function); empty when no hash.
    public var hashType: HashType
    /// NetBufferListFrameType: the EtherType (host order) after any VLAN tag.
    public var frameType: UInt16
    @inlinable public init() {
        // Spelled out: inlined default-value expressions would be calls per NBL.
        receiveQueueID = 0
        receiveFilterID = 0
        vlanID = 0
        userPriority = 0
        vlanPresent = false
        checksum = ChecksumInfo(rawValue: 0)
        hashValue = 0
        hashType = HashType(rawValue: 0)
        frameType = 0
    }
}

/// Where an NBL is in its life; checked in debug builds, counted in release builds.
@usableFromInline
enum NBLOwner: UInt8 {
    case pool = 0, miniport, indicated, protocolSend, miniportSend
}

/// Storage of one NET_BUFFER_LIST with its one NET_BUFFER, laid out in pool memory.
/// Nothing in it is reference counted.
@usableFromInline
struct NBLStorage {
    @usableFromInline var next: UnsafeMutablePointer<NBLStorage>?
    @usableFromInline var source: SourceHandle
    @usableFromInline var status: NDISStatus
    @usableFromInline var flags: UInt32
    @usableFromInline var owner: NBLOwner
    /// The datapath lane (receive worker) that owns the NBL's pool: with per-queue workers its
    /// returns are accounted and recycled there. Set once per pool; fills padding before `poolID`.
    @usableFromInline var lane: UInt8
    @usableFromInline var poolID: UInt16
    /// Bumped whenever the NBL leaves the hands of whoever holds views of it (returned, sent,
    /// freed, a RESOURCES indication over): a `NetBufferList` view made before reads as stale.
    @usableFromInline var generation: UInt32
    @usableFromInline var info: NetBufferListInfo
    /// MiniportReserved: the miniport's scratch words.
    @usableFromInline var miniportReserved: (UInt64, UInt64)
    /// ProtocolReserved / context area: where a forwarding module saves the SourceHandle.
    @usableFromInline var protocolReserved: (UInt64, UInt64)
    // NET_BUFFER
    @usableFromInline var dataOffset: UInt32
    @usableFromInline var dataLength: UInt32
    @usableFromInline var segmentCount: UInt8
    /// NDIS_RECEIVE_FLAGS_SHARED_MEMORY_INFO_VALID for this buffer: segments carry shared memory info.
    @usableFromInline var sharedMemoryInfoValid: Bool
    @usableFromInline var segments: InlineArray<6, BufferSegment>

    @usableFromInline
    init(poolID: UInt16) {
        next = nil
        source = .none
        status = .success
        flags = 0
        owner = .pool
        lane = 0
        self.poolID = poolID
        generation = 0
        info = NetBufferListInfo()
        miniportReserved = (0, 0)
        protocolReserved = (0, 0)
        dataOffset = 0
        dataLength = 0
        segmentCount = 0
        sharedMemoryInfoValid = false
        segments = InlineArray(repeating: .empty)
    }
}

/// The most segments one NET_BUFFER holds (lookahead split: 2; a 9 KB jumbo frame in 2 KB buffers: 5).
public let maximumSegmentsPerNetBuffer = 6

/// A view of one NET_BUFFER_LIST (and its NET_BUFFER) inside a chain you hold.
///
/// It is valid while the chain that contains it is owned by you (or, for a RESOURCES indication,
/// during the call). Swift cannot tie a copyable view's lifetime to the chain without making every
/// closure and collection of views non-escapable, so the rule is checked at run time: each view
/// carries the NBL's generation from when it was made, and the NBL's generation moves on when it
/// leaves your hands (returned, sent, freed, the RESOURCES call over). Reading frame data or
/// per-packet information through a view made before that is a stale access: debug builds trap at
/// it, release builds count it (`NetBufferListViews.staleAccesses`) and read nothing (no bytes,
/// empty info, an empty segment). Two words: reading or writing its fields costs no allocation and
/// no reference counting.
public struct NetBufferList {
    @usableFromInline let storage: UnsafeMutablePointer<NBLStorage>
    /// The NBL's generation when this view was made.
    @usableFromInline let generation: UInt32

    @inlinable
    init(_ storage: UnsafeMutablePointer<NBLStorage>) {
        self.storage = storage
        generation = storage.pointee.generation
    }

    /// False (after trapping in debug builds, counting in release builds) if the NBL left the
    /// holder's hands since this view was made.
    @inlinable @inline(__always)
    var isCurrent: Bool {
        if _fastPath(storage.pointee.generation == generation) { return true }
        NetBufferListViews.staleAccess()
        return false
    }

    /// Per-packet information.
    @inlinable public var info: NetBufferListInfo {
        get { isCurrent ? storage.pointee.info : NetBufferListInfo() }
        nonmutating set { storage.pointee.info = newValue }
    }
    /// Who indicated it; NDIS returns it there.
    @inlinable public var sourceHandle: SourceHandle {
        get { storage.pointee.source }
        nonmutating set { storage.pointee.source = newValue }
    }
    /// Completion status (send) or NDIS_STATUS_SUCCESS.
    @inlinable public var status: NDISStatus {
        get { storage.pointee.status }
        nonmutating set { storage.pointee.status = newValue }
    }
    /// The miniport's two scratch words (MiniportReserved).
    @inlinable public var miniportReserved: (UInt64, UInt64) {
        get { storage.pointee.miniportReserved }
        nonmutating set { storage.pointee.miniportReserved = newValue }
    }
    /// A protocol or intermediate module's two scratch words (ProtocolReserved).
    @inlinable public var protocolReserved: (UInt64, UInt64) {
        get { storage.pointee.protocolReserved }
        nonmutating set { storage.pointee.protocolReserved = newValue }
    }
    /// NET_BUFFER DataOffset: bytes of backfill before the data, counted from the first segment.
    @inlinable public var dataOffset: Int { Int(storage.pointee.dataOffset) }
    /// NET_BUFFER DataLength: bytes of data.
    @inlinable public var dataLength: Int { Int(storage.pointee.dataLength) }
    /// Number of segments (MDLs / NET_BUFFER_SHARED_MEMORY entries).
    @inlinable public var segmentCount: Int { Int(storage.pointee.segmentCount) }
    /// True when the segments carry valid shared memory information (NDIS_RECEIVE_FLAGS_SHARED_MEMORY_INFO_VALID).
    @inlinable public var sharedMemoryInfoValid: Bool { storage.pointee.sharedMemoryInfoValid }

    /// Segment `index` (NET_BUFFER_SHARED_MEM_NEXT_SEGMENT walks the same list).
    @inlinable public func segment(_ index: Int) -> BufferSegment {
        precondition(index >= 0 && index < segmentCount, "segment index \(index) out of 0..<\(segmentCount)")
        guard isCurrent else { return .empty }
        return storage.pointee.segments[index]
    }

    /// Segment `index`'s cookie without `segment(_:)`'s range check: for a miniport's return path
    /// that knows the NBL has that segment (its own receive NBLs). `index` must be < 6.
    @inlinable public func unsafeSegmentCookie(_ index: Int) -> UInt32 { storage.pointee.segments[index].cookie }

    /// Sets the buffer's layout: its segments, where the data starts and how long it is.
    /// For miniports (receive) and protocol send pools.
    @inlinable
    public func setLayout(segment0: BufferSegment, dataOffset: Int, dataLength: Int, sharedMemoryInfoValid: Bool) {
        storage.pointee.segments[0] = segment0
        storage.pointee.segmentCount = 1
        storage.pointee.dataOffset = UInt32(truncatingIfNeeded: dataOffset)
        storage.pointee.dataLength = UInt32(truncatingIfNeeded: dataLength)
        storage.pointee.sharedMemoryInfoValid = sharedMemoryInfoValid
    }

    /// For a receive buffer bound to this NBL (its segment 0 set up once): the frame is the first
    /// `length` bytes of segment 0, which becomes the NET_BUFFER's only segment. The per-frame part
    /// of `setLayout`, without rewriting the segment.
    @inlinable
    public func setReceivedLength(_ length: Int) {
        storage.pointee.segments[0].length = UInt32(truncatingIfNeeded: length)
        storage.pointee.segmentCount = 1
        storage.pointee.dataOffset = 0
        storage.pointee.dataLength = UInt32(truncatingIfNeeded: length)
    }

    /// Virtual address of segment 0 (nil when it has none). Writing through it can break memory safety.
    @inlinable public var unsafeFirstSegmentAddress: UnsafeMutableRawPointer? { storage.pointee.segments[0].address }

    /// Appends a segment (a lookahead split's post-lookahead part, or the next buffer of a jumbo frame).
    /// - Returns: false when the NET_BUFFER already has `maximumSegmentsPerNetBuffer` segments.
    @inlinable
    @discardableResult
    public func appendSegment(_ segment: BufferSegment) -> Bool {
        let n = Int(storage.pointee.segmentCount)
        guard n < maximumSegmentsPerNetBuffer else { return false }
        storage.pointee.segments[n] = segment
        storage.pointee.segmentCount = UInt8(n + 1)
        return true
    }

    /// Replaces segment `index` (for example to set the byte count after a receive).
    @inlinable
    public func setSegment(_ index: Int, _ segment: BufferSegment) {
        precondition(index >= 0 && index < segmentCount, "segment index out of range")
        storage.pointee.segments[index] = segment
    }

    /// Sets data offset and length without touching the segments.
    @inlinable
    public func setData(offset: Int, length: Int) {
        storage.pointee.dataOffset = UInt32(truncatingIfNeeded: offset)
        storage.pointee.dataLength = UInt32(truncatingIfNeeded: length)
    }

    /// Drops the segments beyond the first (before reusing a buffer).
    @inlinable
    public func truncateSegments(to count: Int) {
        storage.pointee.segmentCount = UInt8(min(count, Int(storage.pointee.segmentCount)))
    }

    /// The segment and offset where the data starts (NET_BUFFER CurrentMdl / CurrentMdlOffset).
    @inlinable
    public var currentSegment: (index: Int, offset: Int) {
        var remaining = Int(storage.pointee.dataOffset)
        let n = Int(storage.pointee.segmentCount)
        var i = 0
        while i < n {
            let len = Int(storage.pointee.segments[i].length)
            if remaining < len || (remaining == len && i == n - 1) { return (i, remaining) }
            remaining -= len
            i += 1
        }
        return (n, 0)
    }

    /// NdisAdvanceNetBufferDataStart: moves the data start forward by `count` bytes (hands a header to
    /// the layer above). Receive buffers are never reallocated.
    /// - Returns: false if `count` exceeds the data length.
    @inlinable
    @discardableResult
    public func advanceDataStart(by count: Int) -> Bool {
        guard count >= 0, count <= dataLength else { return false }
        storage.pointee.dataOffset &+= UInt32(count)
        storage.pointee.dataLength &-= UInt32(count)
        return true
    }

    /// NdisRetreatNetBufferDataStart: moves the data start back by `count` bytes into the backfill.
    /// - Returns: false when there is not enough backfill (receive buffers are never reallocated).
    @inlinable
    @discardableResult
    public func retreatDataStart(by count: Int) -> Bool {
        guard count >= 0, count <= dataOffset else { return false }
        storage.pointee.dataOffset &-= UInt32(count)
        storage.pointee.dataLength &+= UInt32(count)
        return true
    }

    /// NdisGetDataBuffer: gives `body` `length` contiguous bytes from the data start.
    ///
    /// If the bytes are contiguous in one segment, `body` sees them in place; otherwise they are
    /// copied into `scratch` (which must hold `length` bytes); with no scratch, `body` gets nil.
    /// Returns nil (and does not call `body`) when the data is shorter than `length`.
    @inlinable
    public func withContiguousData<R>(length: Int, scratch: UnsafeMutableRawBufferPointer?,
                                      _ body: (UnsafeRawBufferPointer?) throws -> R) rethrows -> R? {
        guard length >= 0, length <= dataLength, isCurrent else { return nil }
        let (index, offset) = currentSegment
        if index < segmentCount {
            let seg = storage.pointee.segments[index]
            if let base = seg.address, Int(seg.length) - offset >= length {
                // Safety: the segment's bytes [offset, offset+length) lie inside its buffer.
                return try body(UnsafeRawBufferPointer(start: base + offset, count: length))
            }
        }
        guard let scratch, scratch.count >= length else { return try body(nil) }
        copyData(into: scratch, count: length)
        return try body(UnsafeRawBufferPointer(start: scratch.baseAddress, count: length))
    }

    /// Copies up to `count` data bytes, starting `start` bytes after the data start and crossing
    /// segments, into `destination`.
    /// - Returns: the number of bytes copied.
    @inlinable
    @discardableResult
    public func copyData(into destination: UnsafeMutableRawBufferPointer, from start: Int = 0, count: Int? = nil) -> Int {
        guard start >= 0, start < dataLength, isCurrent else { return 0 }
        let want = min(count ?? dataLength, dataLength - start, destination.count)
        guard want > 0, let dst = destination.baseAddress else { return 0 }
        var (index, offset) = currentSegment
        // Skip `start` bytes: whole segments first, then into the one where the copy begins.
        var skip = start
        while skip > 0 && index < segmentCount {
            let available = Int(storage.pointee.segments[index].length) - offset
            if skip < available {
                offset += skip
                skip = 0
            } else {
                skip -= max(available, 0)
                index += 1
                offset = 0
            }
        }
        var copied = 0
        while copied < want && index < segmentCount {
            let seg = storage.pointee.segments[index]
            let available = Int(seg.length) - offset
            if available > 0, let base = seg.address {
                let n = min(available, want - copied)
                // Safety: source range is inside the segment, destination range inside `destination`.
                (dst + copied).copyMemory(from: base + offset, byteCount: n)
                copied += n
            }
            index += 1
            offset = 0
        }
        return copied
    }

    /// Copies the frame into a new array. Allocates: for tests, tools and the slow path only.
    public func dataBytes() -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: dataLength) { buffer, initialized in
            initialized = copyData(into: UnsafeMutableRawBufferPointer(buffer))
        }
    }

    /// Reads the byte at data position `index`, or nil past the end.
    @inlinable
    public func byte(at index: Int) -> UInt8? {
        guard index >= 0, index < dataLength, isCurrent else { return nil }
        var (seg, offset) = currentSegment
        var remaining = index
        while seg < segmentCount {
            let s = storage.pointee.segments[seg]
            let available = Int(s.length) - offset
            if remaining < available, let base = s.address {
                // Safety: inside the segment's valid bytes.
                return base.load(fromByteOffset: offset + remaining, as: UInt8.self)
            }
            remaining -= max(available, 0)
            seg += 1
            offset = 0
        }
        return nil
    }

    /// Identity, for tests and debugging (two views of the same NBL compare equal).
    public var identity: UInt { UInt(bitPattern: storage) }
}

/// Stale `NetBufferList` views (see `NetBufferList`): trapped in debug builds, counted in release builds.
public enum NetBufferListViews {
    static let stale = Atomic<Int>(0)
    /// Reads through views of NBLs that had left the reader's hands (release builds; and debug
    /// builds with `trapsDisabledForTesting`).
    public static var staleAccesses: Int { stale.load(ordering: .relaxed) }

    @usableFromInline
    static func staleAccess() {
        #if DEBUG
        if !trapsDisabledForTesting {
            fatalError("NetBufferList view used after its NBL left your hands (returned, sent, freed, or a RESOURCES indication that is over): keep the chain, not views of it")
        }
        #endif
        stale.add(1, ordering: .relaxed)
    }

    /// Debug builds trap on a stale view; tests of the release-build path switch that off.
    nonisolated(unsafe) public static var trapsDisabledForTesting = false
}

extension NBLStorage {
    /// The NBL leaves the hands of its holder: views made until now are stale.
    @inlinable @inline(__always)
    mutating func retireViews() { generation &+= 1 }
}
