import Synchronization

/// A linked chain of NET_BUFFER_LISTs that you own.
///
/// Ownership is a move: indicating, returning, sending and completing all take the chain
/// `consuming`, so "returned twice" or "used after return" does not compile. A chain that is dropped
/// while it still holds NBLs is a leak: debug builds trap, release builds count it and hand the NBLs
/// to ``NetBufferListLeaks`` so their owner recycles them.
///
///     head ─▶ NBL ─▶ NBL ─▶ … ─▶ NBL ◀─ tail      (links live in pool memory: no allocation)
@frozen
public struct NetBufferListChain: ~Copyable {
    @usableFromInline var head: UnsafeMutablePointer<NBLStorage>?
    @usableFromInline var tail: UnsafeMutablePointer<NBLStorage>?
    @usableFromInline var storedCount: Int

    /// An empty chain.
    @inlinable
    public init() {
        head = nil
        tail = nil
        storedCount = 0
    }

    @inlinable
    init(single nbl: UnsafeMutablePointer<NBLStorage>) {
        nbl.pointee.next = nil
        head = nbl
        tail = nbl
        storedCount = 1
    }

    /// Number of NBLs in the chain.
    @inlinable public var count: Int { storedCount }
    @inlinable public var isEmpty: Bool { storedCount == 0 }

    /// The first NBL, if any.
    @inlinable public var first: NetBufferList? { head.map(NetBufferList.init) }

    /// Calls `body` on each NBL, in order.
    @inlinable
    public func forEach(_ body: (NetBufferList) throws -> Void) rethrows {
        var p = head
        while let nbl = p {
            p = nbl.pointee.next
            try body(NetBufferList(nbl))
        }
    }

    /// Calls `body` on the NBLs in order until it returns false.
    /// - Returns: how many NBLs `body` returned true for (the chain is unchanged).
    @inlinable
    public func forEachPrefix(while body: (NetBufferList) throws -> Bool) rethrows -> Int {
        var n = 0
        var p = head
        while let nbl = p {
            p = nbl.pointee.next
            if try !body(NetBufferList(nbl)) { break }
            n &+= 1
        }
        return n
    }

    /// Moves the first `count` NBLs (all of them if `count` ≥ the chain's count) to the end of
    /// `other`, keeping their order. Walks `count` links; moving the whole chain is O(1).
    @inlinable
    public mutating func moveFirst(_ count: Int, to other: inout NetBufferListChain) {
        guard count > 0, let h = head else { return }
        if count >= storedCount {
            other.append(self.takeAllAsChain())
            return
        }
        var last = h
        var i = 1
        while i < count, let next = last.pointee.next {
            last = next
            i &+= 1
        }
        head = last.pointee.next
        last.pointee.next = nil
        storedCount &-= i
        if let t = other.tail { t.pointee.next = h } else { other.head = h }
        other.tail = last
        other.storedCount &+= i
    }

    @inlinable
    mutating func takeAllAsChain() -> NetBufferListChain {
        var all = NetBufferListChain()
        swap(&all, &self)
        return all
    }

    /// Moves every NBL of `other` to the end of this chain.
    @inlinable
    public mutating func append(_ other: consuming NetBufferListChain) {
        let (h, t, n) = other.takeAll()
        guard let h else { return }
        if let tail { tail.pointee.next = h } else { head = h }
        tail = t
        storedCount &+= n   // bounded by the NBLs in existence
    }

    @inlinable
    mutating func appendNBL(_ nbl: UnsafeMutablePointer<NBLStorage>) {
        nbl.pointee.next = nil
        if let tail { tail.pointee.next = nbl } else { head = nbl }
        tail = nbl
        storedCount &+= 1
    }

    /// Appends the NBL that `view` shows, taken from `source`. For internal relinking.
    @inlinable
    mutating func popFirstNBL() -> UnsafeMutablePointer<NBLStorage>? {
        guard let h = head else { return nil }
        head = h.pointee.next
        if head == nil { tail = nil }
        h.pointee.next = nil
        storedCount &-= 1
        return h
    }

    /// Removes the first NBL and returns it as a chain of one (empty if this chain is empty).
    @inlinable
    public mutating func popFirst() -> NetBufferListChain {
        guard let h = popFirstNBL() else { return NetBufferListChain() }
        return NetBufferListChain(single: h)
    }

    /// Removes the NBLs for which `predicate` is true and returns them as a new chain, keeping order
    /// in both. No allocation.
    @inlinable
    public mutating func removeAll(where predicate: (NetBufferList) throws -> Bool) rethrows -> NetBufferListChain {
        var kept = NetBufferListChain()
        var removed = NetBufferListChain()
        while let nbl = popFirstNBL() {
            if try predicate(NetBufferList(nbl)) { removed.appendNBL(nbl) } else { kept.appendNBL(nbl) }
        }
        swap(&self, &kept)
        return removed
    }

    /// Gives up the links without running the leak check (ownership moves to the caller).
    @inlinable
    consuming func takeAll() -> (UnsafeMutablePointer<NBLStorage>?, UnsafeMutablePointer<NBLStorage>?, Int) {
        let result = (head, tail, storedCount)
        discard self
        return result
    }

    deinit {
        if storedCount > 0, let head {
            NetBufferListLeaks.record(head: head, count: storedCount)
        }
    }
}

/// What happens to NBLs whose chain was dropped without being returned, sent or freed.
///
/// Debug builds trap at the drop (the bug is at that line). Release builds count the NBLs and park
/// them here; adapters reclaim them on their next poll and give them back to their owner, so a leak
/// costs a counter, not a buffer.
public enum NetBufferListLeaks {
    struct Parked: @unchecked Sendable {
        var head: UnsafeMutablePointer<NBLStorage>?
        var count = 0
        var total = 0
    }
    static let parked = Mutex(Parked())

    /// Total NBLs ever dropped without return (release builds).
    public static var totalLeaked: Int { parked.withLock { $0.total } }
    /// NBLs parked and not yet reclaimed.
    public static var parkedCount: Int { parked.withLock { $0.count } }

    @usableFromInline
    static func record(head: UnsafeMutablePointer<NBLStorage>, count: Int) {
        #if DEBUG
        if !trapsDisabledForTesting {
            fatalError("NetBufferListChain with \(count) NET_BUFFER_LIST(s) dropped without being returned: return it with returnNetBufferLists, or send or free it")
        }
        #endif
        parked.withLock { state in
            var p: UnsafeMutablePointer<NBLStorage>? = head
            while let nbl = p {
                p = nbl.pointee.next
                nbl.pointee.next = state.head
                state.head = nbl
                state.count += 1
                state.total += 1
            }
        }
    }

    /// Takes every parked NBL as one chain (the caller routes them back to their owners).
    static func reclaimAll() -> NetBufferListChain {
        var chain = NetBufferListChain()
        let head = parked.withLock { state -> UnsafeMutablePointer<NBLStorage>? in
            let h = state.head
            state.head = nil
            state.count = 0
            return h
        }
        var p = head
        while let nbl = p {
            p = nbl.pointee.next
            chain.appendNBL(nbl)
        }
        return chain
    }

    /// Debug builds trap on a leak; tests that exercise the release-build path switch that off.
    nonisolated(unsafe) public static var trapsDisabledForTesting = false
}
