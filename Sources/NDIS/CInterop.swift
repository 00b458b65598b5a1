/// What the C API (Sources/MiniportC, `miniport.h`) needs of the NBL storage: raw handles for the
/// NBLs C code holds, and chains rebuilt from the links C code made. `package`: not part of the
/// Swift API, only for targets of this package.
extension NetBufferList {
    /// The NBL a C handle names (the handle is its storage address).
    @inlinable
    package init(unsafeHandle: UnsafeMutableRawPointer) {
        self.init(unsafeHandle.assumingMemoryBound(to: NBLStorage.self))
    }

    /// The C handle of this NBL.
    @inlinable
    package var unsafeHandle: UnsafeMutableRawPointer { UnsafeMutableRawPointer(storage) }

    /// NET_BUFFER_LIST_NEXT_NBL as C code sees and sets it.
    @inlinable
    package var unsafeNext: UnsafeMutableRawPointer? {
        get { storage.pointee.next.map(UnsafeMutableRawPointer.init) }
        nonmutating set { storage.pointee.next = newValue?.assumingMemoryBound(to: NBLStorage.self) }
    }

    /// True when a protocol may return this NBL: NDIS indicated it (and it is not yet returned), or
    /// it is a framework copy of a RESOURCES indication. An NBL lent by a RESOURCES indication, one
    /// already returned, or a send NBL is not.
    @inlinable
    package var isReturnableByProtocol: Bool {
        storage.pointee.owner == .indicated || (storage.pointee.owner == .miniport && storage.pointee.source == .none)
    }
}

extension NetBufferListChain {
    /// The chain C code linked from `head` (through `next`, the last NBL's next nil). Walks it once.
    @inlinable
    package init(unsafeLinkedFrom head: UnsafeMutableRawPointer?) {
        self.init()
        guard let head else { return }
        let h = head.assumingMemoryBound(to: NBLStorage.self)
        var t = h
        var n = 1
        while let next = t.pointee.next {
            t = next
            n &+= 1
        }
        self.init(head: h, tail: t, count: n)
    }

    /// Hands the links to C code without the leak check: ownership moves with the head.
    @inlinable
    package consuming func releaseToUnsafeHandle() -> UnsafeMutableRawPointer? {
        let (h, _, _) = takeAll()
        return h.map(UnsafeMutableRawPointer.init)
    }

    /// The first NBL's C handle (the chain keeps it).
    @inlinable
    package var unsafeHeadHandle: UnsafeMutableRawPointer? { head.map(UnsafeMutableRawPointer.init) }
}

extension NetBufferListChain {
    /// The chain of NBLs C code gives back with NdisReturnNetBufferLists, linked from `head`, in one
    /// walk: NBLs that are not the protocol's to return (lent by a RESOURCES indication, already
    /// returned, send NBLs) are unlinked and counted in `rejected` instead.
    @inlinable
    package init(unsafeReturnedFrom head: UnsafeMutableRawPointer?, rejected: inout Int) {
        self.init()
        var p = head?.assumingMemoryBound(to: NBLStorage.self)
        var h: UnsafeMutablePointer<NBLStorage>?
        var t: UnsafeMutablePointer<NBLStorage>?
        var n = 0
        while let nbl = p {
            p = nbl.pointee.next
            let owner = nbl.pointee.owner
            if owner == .indicated || (owner == .miniport && nbl.pointee.source == .none) {
                if let last = t { last.pointee.next = nbl } else { h = nbl }
                t = nbl
                n &+= 1
            } else {
                rejected &+= 1
            }
        }
        guard let h, let t else { return }
        t.pointee.next = nil
        self.init(head: h, tail: t, count: n)
    }
}
