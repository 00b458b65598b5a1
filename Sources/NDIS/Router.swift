import Synchronization

/// Something NBLs can be returned to: an adapter, a virtual connection, an intermediate module.
public protocol NetBufferListReturnTarget: AnyObject {
    func returnNetBufferLists(_ chain: consuming NetBufferListChain, flags: ReturnFlags)
}

/// Something send completions can be routed to: a binding, an intermediate module.
public protocol SendCompletionTarget: AnyObject {
    func sendComplete(_ chain: consuming NetBufferListChain)
}

/// NDIS's routing of returns and send completions by SourceHandle.
public enum NDIS {
    struct Entry {
        weak var returnTarget: (any NetBufferListReturnTarget)?
        weak var sendTarget: (any SendCompletionTarget)?
    }
    struct Registry: @unchecked Sendable {
        var entries: [UInt32: Entry] = [:]
        var next: UInt32 = 1
        var pools: [UInt16: Weak<NetBufferListPool>] = [:]
    }
    final class Weak<T: AnyObject>: @unchecked Sendable { weak var value: T?; init(_ v: T) { value = v } }
    static let registry = Mutex(Registry())

    /// Registers a component and gives it a new SourceHandle.
    public static func registerSource(returns: (any NetBufferListReturnTarget)?, sends: (any SendCompletionTarget)?) -> SourceHandle {
        registry.withLock { r in
            let h = r.next
            r.next &+= 1
            r.entries[h] = Entry(returnTarget: returns, sendTarget: sends)
            return SourceHandle(rawValue: h)
        }
    }

    public static func unregisterSource(_ handle: SourceHandle) {
        _ = registry.withLock { $0.entries.removeValue(forKey: handle.rawValue) }
    }

    static func registerPool(_ pool: NetBufferListPool) {
        registry.withLock { $0.pools[pool.id] = Weak(pool) }
    }

    static func returnTarget(_ h: SourceHandle) -> (any NetBufferListReturnTarget)? {
        registry.withLock { $0.entries[h.rawValue]?.returnTarget }
    }

    static func sendTarget(_ h: SourceHandle) -> (any SendCompletionTarget)? {
        registry.withLock { $0.entries[h.rawValue]?.sendTarget }
    }

    /// NdisReturnNetBufferLists: gives each NBL back to the component its SourceHandle names. The chain
    /// may mix NBLs of many indications, adapters and VCs; runs with the same source go in one call.
    public static func returnNetBufferLists(_ chain: consuming NetBufferListChain, flags: ReturnFlags = []) {
        var chain = chain
        while !chain.isEmpty {
            let source = chain.head!.pointee.source
            var run = chain.takeRun(source: source)
            if let target = returnTarget(source) {
                target.returnNetBufferLists(run, flags: flags)
            } else {
                // No owner (never indicated, or its owner is gone): back to the pool it came from.
                returnToPools(&run)
                _ = consume run
            }
        }
    }

    static func returnToPools(_ chain: inout NetBufferListChain) {
        while let nbl = chain.popFirstNBL() {
            let pool = registry.withLock { $0.pools[nbl.pointee.poolID]?.value }
            if let pool {
                _ = pool.free(NetBufferListChain(single: nbl))
            } else {
                // The pool is gone: nothing owns this memory any more; count it as lost.
                lostNBLs.add(1, ordering: .relaxed)
            }
        }
    }

    /// NBLs returned to adapters after their halt, in all adapters (see `Adapter.lateReturns`).
    public static let lateReturns = Atomic<Int>(0)

    /// NBLs whose pool no longer exists when they came back (a bug in an owner; counted).
    public static let lostNBLs = Atomic<Int>(0)

    /// Routes send completions to the bindings (or modules) that sent them.
    public static func completeSends(_ chain: consuming NetBufferListChain) {
        var chain = chain
        while !chain.isEmpty {
            let source = chain.head!.pointee.source
            let run = chain.takeRun(source: source)
            if let target = sendTarget(source) {
                target.sendComplete(run)
            } else {
                var run = run
                returnToPools(&run)
            }
        }
    }

    /// Gives parked leaked NBLs (release builds) back to their owners. Returns how many.
    @discardableResult
    public static func reclaimLeakedNetBufferLists() -> Int {
        let chain = NetBufferListLeaks.reclaimAll()
        let n = chain.count
        if n > 0 { returnNetBufferLists(chain) }
        return n
    }
}

extension NetBufferListChain {
    /// Takes the leading NBLs whose source is `source`.
    @inlinable
    mutating func takeRun(source: SourceHandle) -> NetBufferListChain {
        var run = NetBufferListChain()
        while let h = head, h.pointee.source == source {
            run.appendNBL(popFirstNBL()!)
        }
        return run
    }
}
