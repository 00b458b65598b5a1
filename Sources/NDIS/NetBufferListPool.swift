import Synchronization

/// A pool of NET_BUFFER_LISTs made once (NdisAllocateNetBufferListPool + preallocated
/// NdisAllocateNetBufferAndNetBufferList). Taking and giving back NBLs allocates nothing.
///
/// A pool must outlive every NBL taken from it; adapters keep the pools of their miniport and
/// bindings alive until halt.
public final class NetBufferListPool {
    /// Pool id, stored in every NBL so a return to the wrong pool is caught.
    public let id: UInt16
    /// How many NBLs the pool holds.
    public let capacity: Int
    public let name: String
    @usableFromInline let storage: UnsafeMutablePointer<NBLStorage>
    /// The free list and counters live in memory the pool owns, not in class properties: taking and
    /// giving back NBLs is then plain loads and stores, with no dynamic exclusivity check per call.
    @usableFromInline let state: UnsafeMutablePointer<PoolState>
    /// NBLs currently in the pool.
    @inlinable public var freeCount: Int { state.pointee.freeCount }
    /// Returns to this pool of an NBL from another pool (refused, counted).
    public var foreignFrees: Int { state.pointee.foreignFrees }

    @usableFromInline
    struct PoolState {
        @usableFromInline var freeHead: UnsafeMutablePointer<NBLStorage>?
        @usableFromInline var freeCount: Int
        @usableFromInline var foreignFrees: Int
    }

    static let nextID = Atomic<UInt16>(1)

    /// Makes `capacity` NBLs, each with one NET_BUFFER and no segments.
    public init(capacity: Int, name: String) {
        precondition(capacity > 0, "a pool needs at least one NET_BUFFER_LIST")
        id = NetBufferListPool.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        self.capacity = capacity
        self.name = name
        storage = UnsafeMutablePointer<NBLStorage>.allocate(capacity: capacity)
        storage.initialize(repeating: NBLStorage(poolID: id), count: capacity)
        var head: UnsafeMutablePointer<NBLStorage>? = nil
        var i = capacity - 1
        while i >= 0 {
            storage[i].next = head
            head = storage + i
            i -= 1
        }
        state = .allocate(capacity: 1)
        state.initialize(to: PoolState(freeHead: head, freeCount: capacity, foreignFrees: 0))
    }

    deinit {
        storage.deinitialize(count: capacity)
        storage.deallocate()
        state.deallocate()
    }

    /// The NBL at `index` of the pool, for one-time setup (binding each NBL to its buffer) while the
    /// pool still holds it. Traps if the NBL is not in the pool.
    public func prepare(_ index: Int, _ body: (NetBufferList) -> Void) {
        precondition(index >= 0 && index < capacity, "pool index out of range")
        precondition(storage[index].owner == .pool, "prepare() on an NBL that is not in the pool")
        body(NetBufferList(storage + index))
    }

    /// The datapath lane (a miniport's receive worker) whose NBLs these are; 0 unless set.
    public private(set) var lane = 0

    /// Sets the lane of every NBL of the pool (setup only, while every NBL is in the pool or the
    /// miniport's). With per-queue workers, returns of these NBLs are handled on that lane.
    public func setLane(_ lane: Int) {
        precondition(lane >= 0 && lane < DatapathGate.laneCount, "lane \(lane) out of 0..<\(DatapathGate.laneCount)")
        self.lane = lane
        for i in 0..<capacity { storage[i].lane = UInt8(lane) }
    }

    /// Index of an NBL in this pool, or nil if it belongs elsewhere.
    @inlinable
    public func index(of nbl: NetBufferList) -> Int? {
        let i = nbl.storage - storage
        return i >= 0 && i < capacity ? i : nil
    }

    /// True if `nbl` is this pool's NBL at `index` (a miniport that binds NBL i to its buffer i
    /// checks a returned NBL with it before taking it back).
    @inlinable
    public func holds(_ nbl: NetBufferList, at index: Int) -> Bool {
        index >= 0 && index < capacity && nbl.storage == storage + index
    }

    // MARK: Parked NBLs
    //
    // A miniport that binds NBL i to its receive buffer i (as NDIS miniports preallocate one NBL
    // per receive buffer) keeps the NBLs it holds "parked": taken from the pool and in no chain,
    // known by index. A frame moves NBL i into the indicated chain; a return parks it again.

    /// Unlinks `chain`'s first NBL and parks it if it is this pool's NBL at `index`.
    /// - Returns: false (chain unchanged) if the first NBL is another one.
    @inlinable
    public func parkFirst(of chain: inout NetBufferListChain, ifAt index: Int) -> Bool {
        guard index >= 0 && index < capacity, chain.head == storage + index else { return false }
        _ = chain.popFirstNBL()
        return true
    }

    /// Appends the parked NBL at `index` to `chain` and returns its view. The caller guarantees
    /// that NBL `index` is parked (taken from this pool and in no chain) and `index` < `capacity`.
    @inlinable
    public func unsafeAppendParked(_ index: Int, to chain: inout NetBufferListChain) -> NetBufferList {
        // Safety: index < capacity (the caller's guarantee), so the NBL lies in `storage`.
        let nbl = storage + index
        chain.appendNBL(nbl)
        return NetBufferList(nbl)
    }

    /// Takes up to `count` NBLs; the chain is shorter if the pool runs dry.
    @inlinable
    public func allocate(count: Int) -> NetBufferListChain {
        guard count > 0, let first = state.pointee.freeHead else { return NetBufferListChain() }
        // One walk down the free list marking the NBLs, then one cut: the taken NBLs are already
        // linked in order, so the chain is the list's prefix.
        var last = first
        var n = 1
        while true {
            last.pointee.owner = .miniport
            last.pointee.status = .success
            last.pointee.source = .none
            guard n < count, let next = last.pointee.next else { break }
            last = next
            n &+= 1
        }
        state.pointee.freeHead = last.pointee.next
        last.pointee.next = nil
        state.pointee.freeCount &-= n
        return NetBufferListChain(head: first, tail: last, count: n)
    }

    /// Takes the NBL at `index` out of the pool (a miniport that keeps NBL i bound to buffer i).
    /// Returns an empty chain if it is not in the pool.
    public func take(index: Int) -> NetBufferListChain {
        precondition(index >= 0 && index < capacity, "pool index out of range")
        let target = storage + index
        guard target.pointee.owner == .pool else { return NetBufferListChain() }
        // Unlink from the free list (setup path only: linear).
        var prev: UnsafeMutablePointer<NBLStorage>? = nil
        var p = state.pointee.freeHead
        while let nbl = p {
            if nbl == target {
                if let prev { prev.pointee.next = nbl.pointee.next } else { state.pointee.freeHead = nbl.pointee.next }
                nbl.pointee.owner = .miniport
                state.pointee.freeCount -= 1
                return NetBufferListChain(single: nbl)
            }
            prev = nbl
            p = nbl.pointee.next
        }
        return NetBufferListChain()
    }

    /// Gives NBLs back to the pool. NBLs from another pool are not taken: they come back in the
    /// returned chain (and are counted in `foreignFrees`).
    @inlinable
    @discardableResult
    public func free(_ chain: consuming NetBufferListChain) -> NetBufferListChain {
        let first = storage, end = storage + capacity
        // Common case: every NBL is this pool's. One walk checks and marks them, then the whole
        // chain is spliced onto the free list.
        var p = chain.head
        var mine = 0
        while let nbl = p {
            if nbl.pointee.poolID != id || nbl < first || nbl >= end { break }
            nbl.pointee.owner = .pool
            nbl.pointee.retireViews()
            mine &+= 1
            p = nbl.pointee.next
        }
        if mine == chain.count {
            let (h, t, n) = chain.takeAll()
            if let h, let t {
                t.pointee.next = state.pointee.freeHead
                state.pointee.freeHead = h
                state.pointee.freeCount += n
            }
            return NetBufferListChain()
        }
        // A foreign NBL somewhere: sort NBL by NBL.
        var foreign = NetBufferListChain()
        var chain = chain
        var head = state.pointee.freeHead
        var returned = 0
        while let nbl = chain.popFirstNBL() {
            if nbl.pointee.poolID != id || nbl < first || nbl >= end {
                state.pointee.foreignFrees += 1
                foreign.appendNBL(nbl)
                continue
            }
            nbl.pointee.owner = .pool
            nbl.pointee.retireViews()
            nbl.pointee.next = head
            head = nbl
            returned &+= 1
        }
        state.pointee.freeHead = head
        state.pointee.freeCount += returned
        return foreign
    }

    /// NBLs taken and not yet given back.
    @inlinable public var outstanding: Int { capacity - state.pointee.freeCount }
}
