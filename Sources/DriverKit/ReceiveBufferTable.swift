import DeviceAccess
import NDIS

/// Receive buffers bound to NBLs, as NDIS miniports preallocate one NBL per receive buffer: NBL i
/// of the table's pool is bound to buffer i of one block of shared memory (segment 0: address,
/// IOVA, cookie, written once). While buffer i is free or posted to the device its NBL is
/// *parked* (taken from the pool, in no chain); receiving moves it into the indicated chain, a
/// return parks it again. No pool traffic per frame, no allocation, no reference counting.
///
/// Owned storage: the table lives in memory the miniport allocates (`UnsafeMutablePointer`), its
/// fields are reached through that pointer on the hot path.
public struct ReceiveBufferTable {
    public internal(set) var count = 0
    public private(set) var bufferSize = 0
    /// Bytes kept in front of each frame (the NBL's headroom; the device may write its own header
    /// at the end of it, as virtio-net does).
    public private(set) var headroom = 0
    /// Cookie of buffer i: `cookieBase | i`.
    public private(set) var cookieBase: UInt32 = 0
    public private(set) var buffers: UnsafeMutableRawPointer?
    public private(set) var bufferIOVA: UnsafeMutablePointer<UInt64>?
    @usableFromInline var parked: UnsafeMutablePointer<UInt8>?
    @usableFromInline var freeStack: UnsafeMutablePointer<UInt32>?
    @usableFromInline var freeCountStorage = 0
    public var freeCount: Int { freeCountStorage }
    /// Buffers indicated and not yet returned.
    @usableFromInline var heldStorage = 0
    public var held: Int { heldStorage }
    @usableFromInline var pool: Unmanaged<NetBufferListPool>?

    public init() {}

    /// Binds `count` buffers of `bufferSize` bytes in `memory` to the NBLs of `pool` (capacity ≥ count).
    /// Every buffer starts free. A buffer never straddles two IOVA segments (checked).
    public mutating func bind(memory: SharedMemory, count: Int, bufferSize: Int, headroom: Int, cookieBase: UInt32,
                              pool: NetBufferListPool) throws(NDISError) {
        precondition(self.buffers == nil, "a receive buffer table is bound once")
        guard pool.capacity >= count, headroom < bufferSize, memory.length >= count * bufferSize else {
            throw .invalidParameter("receive buffer table: \(count) buffers of \(bufferSize) bytes need that much memory and pool")
        }
        self.count = count
        self.bufferSize = bufferSize
        self.headroom = headroom
        self.cookieBase = cookieBase
        buffers = memory.unsafeVirtualAddress
        let iovas = UnsafeMutablePointer<UInt64>.allocate(capacity: count)
        let parkedTable = UnsafeMutablePointer<UInt8>.allocate(capacity: count)
        parkedTable.initialize(repeating: 0, count: count)
        let stack = UnsafeMutablePointer<UInt32>.allocate(capacity: count)
        bufferIOVA = iovas
        parked = parkedTable
        freeStack = stack
        self.pool = Unmanaged.passUnretained(pool)
        for i in 0..<count {
            let offset = i * bufferSize
            guard let iova = memory.region.iova(atOffset: offset), memory.region.contiguousLength(atOffset: offset) >= bufferSize else {
                throw .resources("receive buffer \(i) straddles two IOVA segments: allocate contiguous memory or smaller buffers")
            }
            iovas[i] = iova
            pool.prepare(i) { nbl in
                nbl.setLayout(segment0: BufferSegment(address: memory.unsafeVirtualAddress + offset + headroom, iova: iova + UInt64(headroom),
                                                      length: 0, capacity: UInt32(bufferSize - headroom), headroom: UInt32(headroom),
                                                      sharedMemory: memory.sharedMemoryHandle, sharedMemoryOffset: UInt32(offset + headroom),
                                                      cookie: cookieBase | UInt32(i)),
                              dataOffset: 0, dataLength: 0, sharedMemoryInfoValid: true)
            }
            var one = pool.take(index: i)
            guard pool.parkFirst(of: &one, ifAt: i) else {
                _ = pool.free(one)
                throw .resources("receive buffer table: NBL \(i) of \(pool.name) is not free")
            }
            _ = consume one
            parkedTable[i] = 1
            stack[freeCountStorage] = UInt32(i)
            freeCountStorage += 1
        }
    }

    /// Takes a free buffer index, or nil.
    @inlinable @inline(__always)
    public mutating func popFree() -> UInt32? {
        guard freeCountStorage > 0, let s = freeStack else { return nil }
        freeCountStorage &-= 1
        // Safety: freeCountStorage < count, the stack's capacity.
        return s[freeCountStorage]
    }

    /// Gives a buffer index back (a frame dropped, or a returned NBL parked again).
    @inlinable @inline(__always)
    public mutating func pushFree(_ b: UInt32) {
        guard let s = freeStack, freeCountStorage < count else { return }
        // Safety: freeCountStorage < count (checked).
        s[freeCountStorage] = b
        freeCountStorage &+= 1
    }

    /// Moves parked NBL `b` into `chain` with a frame of `length` bytes; nil if `b` is not a parked buffer.
    @inlinable @inline(__always)
    public mutating func takeReceived(_ b: UInt32, length: Int, into chain: inout NetBufferListChain) -> NetBufferList? {
        guard Int(b) < count, let parked, parked[Int(b)] != 0, let pool else { return nil }
        // Safety: b < count ≤ the pool's capacity, and NBL b is parked (checked).
        parked[Int(b)] = 0
        heldStorage &+= 1
        let nbl = pool._withUnsafeGuaranteedRef { $0.unsafeAppendParked(Int(b), to: &chain) }
        nbl.setReceivedLength(length)
        return nbl
    }

    /// Parks `one` (a chain of one returned NBL) again under the buffer its cookie names.
    /// - Returns: the buffer index, or nil (chain unchanged) if it is not this table's bound NBL.
    @inlinable
    public mutating func park(_ one: inout NetBufferListChain) -> UInt32? {
        guard let nbl = one.first, nbl.segmentCount > 0, let parked, let pool else { return nil }
        let cookie = nbl.unsafeSegmentCookie(0)
        guard cookie & ~0x00FF_FFFF == cookieBase else { return nil }
        let b = Int(cookie & 0x00FF_FFFF)
        guard b < count, parked[b] == 0, pool._withUnsafeGuaranteedRef({ $0.parkFirst(of: &one, ifAt: b) }) else { return nil }
        nbl.info = NetBufferListInfo()
        parked[b] = 1
        heldStorage &-= 1
        return UInt32(b)
    }

    /// Frees the table's own memory; parked NBLs go back to the pool (the shared memory is the caller's).
    public mutating func release() {
        if let parked, let pool {
            let p = pool.takeUnretainedValue()
            var all = NetBufferListChain()
            for i in 0..<count where parked[i] != 0 { _ = p.unsafeAppendParked(i, to: &all) }
            let foreign = p.free(all)
            precondition(foreign.isEmpty, "a bound NBL is not from its pool")
        }
        parked?.deallocate(); parked = nil
        freeStack?.deallocate(); freeStack = nil
        bufferIOVA?.deallocate(); bufferIOVA = nil
        buffers = nil
        pool = nil
        count = 0
        freeCountStorage = 0
        heldStorage = 0
    }
}
