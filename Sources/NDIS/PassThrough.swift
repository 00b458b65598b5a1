/// An intermediate module that sits between an adapter and a protocol module and forwards
/// indications up, as an NDIS intermediate driver does. It shows the SourceHandle rule: before it
/// forwards an NBL it saves the SourceHandle the miniport set and puts its own; when the NBL comes
/// back it restores the saved handle and returns it down.
public final class PassThroughModule: ProtocolDriver, NetBufferListReturnTarget {
    /// The module above (receives what this module forwards).
    public let upper: any ProtocolDriver
    /// This module's own SourceHandle.
    public private(set) var sourceHandle: SourceHandle = .none
    /// NBLs forwarded up and not yet back.
    public private(set) var forwarded = 0
    /// Returns whose saved SourceHandle did not name a component (a bug somewhere above).
    public private(set) var badRestores = 0
    var lower: Binding?

    public init(upper: any ProtocolDriver) {
        self.upper = upper
    }

    deinit { if sourceHandle != .none { NDIS.unregisterSource(sourceHandle) } }

    public func bindingOpened(_ binding: Binding) {
        lower = binding
        sourceHandle = NDIS.registerSource(returns: self, sends: nil)
        upper.bindingOpened(binding)
    }

    public func receiveNetBufferLists(_ chain: consuming NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
        let mine = sourceHandle
        chain.forEach { nbl in
            // Save the underlying SourceHandle in our context area, then put ours.
            var reserved = nbl.protocolReserved
            reserved.0 = UInt64(nbl.sourceHandle.rawValue)
            nbl.protocolReserved = reserved
            nbl.sourceHandle = mine
        }
        forwarded += count
        upper.receiveNetBufferLists(chain, binding: binding, queue: queue, count: count, flags: flags)
    }

    public func receiveNetBufferListsWithResources(_ chain: borrowing NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
        upper.receiveNetBufferListsWithResources(chain, binding: binding, queue: queue, count: count, flags: flags)
    }

    public var handlesResourcesIndications: Bool { upper.handlesResourcesIndications }

    public func status(_ indication: StatusIndication, binding: Binding) {
        upper.status(indication, binding: binding)
    }

    public func sendNetBufferListsComplete(_ chain: consuming NetBufferListChain, binding: Binding) {
        upper.sendNetBufferListsComplete(chain, binding: binding)
    }

    /// NDIS routes returns of NBLs carrying our SourceHandle here: restore and pass down.
    public func returnNetBufferLists(_ chain: consuming NetBufferListChain, flags: ReturnFlags) {
        chain.forEach { nbl in
            let saved = SourceHandle(rawValue: UInt32(truncatingIfNeeded: nbl.protocolReserved.0))
            if saved == .none { badRestores += 1 }
            nbl.sourceHandle = saved
        }
        forwarded -= chain.count
        NDIS.returnNetBufferLists(chain, flags: flags)
    }
}
