extension Adapter {
    // MARK: - Receive

    /// Indicate path: check adapter and queue state, apply software filters on the default queue,
    /// account the NBLs per queue and per shared memory block, and hand sub-chains to the bindings.
    func indicateReceive(_ chain: consuming NetBufferListChain, queue: ReceiveQueueID, flags: ReceiveFlags) {
        let fp = fast
        guard fp.pointee.delivering else {
            // NDIS: a paused adapter indicates nothing; give the buffers straight back.
            countNotRunning(chain.count)
            miniport.returnNetBufferLists(chain, flags: [])
            return
        }
        if !queue.isDefault {
            guard let q = queues[queue.rawValue], q.state == .running else {
                // A queue with no filter (Paused) or a stopping queue discards its frames.
                countDrops(chain.count)
                miniport.returnNetBufferLists(chain, flags: .singleQueue)
                return
            }
            if q.parameters.flags.contains(.lookaheadSplitRequired) {
                checkLookaheadSplit(chain, lookahead: q.parameters.lookaheadSize)
            }
        }
        var chain = chain
        // One walk: source, queue id, frame type, and the NBL's own accounting (owner, the shared
        // memory its segments name, the adapter's total). The per-queue count is per chain, in deliver.
        let source = fp.pointee.sourceHandle
        let handles = outstandingByHandle
        var p = chain.head
        while let nbl = p {
            p = nbl.pointee.next
            nbl.pointee.source = source
            nbl.pointee.info.receiveQueueID = queue.rawValue
            if nbl.pointee.info.frameType == 0 { nbl.pointee.info.frameType = Adapter.frameType(of: NetBufferList(nbl)) }
            nbl.pointee.owner = .indicated
            Adapter.countSegments(nbl, handles, 1)
        }
        let n = chain.count
        withUnsafeMutablePointer(to: &fp.pointee.totalOutstanding) { Adapter.addShared($0, n, fp.pointee.concurrent) }
        if queue.isDefault && fp.pointee.softwareFiltering {
            // Filters the hardware cannot do run here, on the default queue's frames.
            for filter in softwareFilters {
                let target = filter.queue
                let matched = chain.removeAll { nbl in
                    guard let header = ParsedFrameHeader(nbl) else { return false }
                    return filter.parameters.matches(header)
                }
                if matched.isEmpty { continue }
                matched.forEach {
                    $0.storage.pointee.info.receiveQueueID = target.rawValue
                    $0.storage.pointee.info.receiveFilterID = UInt16(truncatingIfNeeded: filter.id.rawValue)
                }
                deliver(matched, queue: target, flags: flags)
            }
            if chain.isEmpty { return }
        }
        deliver(chain, queue: queue, flags: flags)
    }

    /// The lookahead split rule (Shared Memory in Receive Buffers): on a queue allocated with
    /// LOOKAHEAD_SPLIT_REQUIRED the adapter splits "at an offset equal to or greater than the
    /// requested lookahead size". So the segment the data starts in holds at least
    /// min(lookahead, data length) bytes from the data start: a longer frame carries its first
    /// `lookahead` bytes in the lookahead segment, a shorter one lies there whole. Checked for every
    /// miniport on every indication of such a queue; a frame split earlier is counted in
    /// `lookaheadSplitViolations` (and still indicated: its bytes are right, its layout is not).
    func checkLookaheadSplit(_ chain: borrowing NetBufferListChain, lookahead: Int) {
        var p = chain.head
        while let nbl = p {
            p = nbl.pointee.next
            if !Adapter.meetsLookaheadSplit(NetBufferList(nbl), lookahead: lookahead) {
                lookaheadSplitViolations &+= 1
            }
        }
    }

    /// True when `nbl`'s current segment holds min(lookahead, dataLength) bytes from the data start.
    public static func meetsLookaheadSplit(_ nbl: NetBufferList, lookahead: Int) -> Bool {
        let need = min(lookahead, nbl.dataLength)
        let (index, offset) = nbl.currentSegment
        guard index < nbl.segmentCount else { return need == 0 }
        return Int(nbl.segment(index).length) - offset >= need
    }

    static func frameType(of nbl: NetBufferList) -> UInt16 {
        guard let hi = nbl.byte(at: 12), let lo = nbl.byte(at: 13) else { return 0 }
        let t = UInt16(hi) << 8 | UInt16(lo)
        if t == 0x8100, let h2 = nbl.byte(at: 16), let l2 = nbl.byte(at: 17) { return UInt16(h2) << 8 | UInt16(l2) }
        return t
    }

    /// The per-segment shared memory counts of one NBL (`sign` 1: indicated, -1: returned).
    @inline(__always)
    static func countSegments(_ nbl: UnsafeMutablePointer<NBLStorage>, _ handles: UnsafeMutablePointer<Int32>, _ sign: Int32) {
        let n = Int(nbl.pointee.segmentCount)
        var i = 0
        while i < n {
            let h = Int(nbl.pointee.segments[i].sharedMemory.rawValue)
            if h > 0 && h < Adapter.maxSharedMemoryHandles { handles[h] &+= sign }
            i &+= 1
        }
    }

    /// Hands a one-queue chain, whose NBLs are accounted (see `indicateReceive`), to monitors
    /// (borrowed) and owners (moved); counts it for its queue.
    func deliver(_ chain: consuming NetBufferListChain, queue: ReceiveQueueID, flags: ReceiveFlags) {
        let count = chain.count
        let flags = flags.union(.singleQueue)
        let fp = fast
        let concurrent = fp.pointee.concurrent
        Adapter.addShared(outstandingByQueue + Int(queue.rawValue), count, concurrent)
        if let sole = fp.pointee.soleReceiver, !fp.pointee.hasVirtualConnections, !fp.pointee.packetFiltering {
            // One binding takes every frame: the chain moves to it whole, with no per-binding work.
            Adapter.addShared(indicatedByQueue + Int(queue.rawValue), UInt64(count), concurrent)
            var pending = chain
            sole._withUnsafeGuaranteedRef { b in
                var mine = NetBufferListChain()
                swap(&mine, &pending)
                b.protocolDriver.receiveNetBufferLists(mine, binding: b, queue: queue, count: count, flags: flags)
            }
            return
        }
        if let vc = vcForQueue[queue.rawValue], let conn = vcs[vc.rawValue] {
            // A VC stands for this queue: indicate per connection.
            chain.forEach { $0.storage.pointee.source = conn.sourceHandle }
            Adapter.addShared(indicatedByQueue + Int(queue.rawValue), UInt64(count), concurrent)
            conn.binding.protocolDriver.coReceiveNetBufferLists(chain, vc: conn, count: count, flags: flags)
            return
        }
        var monitored = false
        for b in bindings where b.isMonitor && b.isOpen {
            b.protocolDriver.receiveNetBufferListsWithResources(chain, binding: b, queue: queue, count: count, flags: flags.union(.resources))
            monitored = true
        }
        if monitored {
            // The monitors' borrow is over: views they kept are stale.
            var p = chain.head
            while let nbl = p { p = nbl.pointee.next; nbl.pointee.retireViews() }
        }
        var chain = chain
        let q = Int(queue.rawValue)
        for b in bindings where !b.isMonitor && b.isOpen {
            if chain.isEmpty { break }
            var mine = NetBufferListChain()
            let pf = b.packetFilterCell.pointee
            if b.frameTypes.isEmpty && pf == PacketFilterTable.unfiltered {
                // Takes every frame: move the whole chain (O(1)) instead of relinking NBL by NBL.
                swap(&mine, &chain)
            } else {
                let types = b.frameTypes
                mine = chain.removeAll {
                    (types.isEmpty || types.contains($0.storage.pointee.info.frameType)) && packetFilterTakes(pf, $0, queue: q)
                }
            }
            if mine.isEmpty { continue }
            let n = mine.count
            Adapter.addShared(indicatedByQueue + Int(queue.rawValue), UInt64(n), concurrent)
            b.protocolDriver.receiveNetBufferLists(mine, binding: b, queue: queue, count: n, flags: flags)
        }
        if !chain.isEmpty {
            // No binding wants these frames: give them back now. Those no packet filter takes were
            // never asked for (not drops); the rest no binding's frame types wanted.
            if fp.pointee.packetFiltering {
                let rejected = chain.removeAll { nbl in
                    !bindings.contains { $0.isOpen && !$0.isMonitor && packetFilterTakes($0.packetFilterCell.pointee, nbl, queue: q) }
                }
                if !rejected.isEmpty {
                    countPacketFilterRejects(rejected.count)
                    returnNetBufferLists(rejected, flags: .singleQueue)
                }
            }
            if !chain.isEmpty {
                countDrops(chain.count)
                returnNetBufferLists(chain, flags: .singleQueue)
            }
        }
    }

    /// Adds (`sign` 1) or removes (-1) NBLs from the outstanding counts: per queue (`queue`, or
    /// each NBL's receive queue id), per shared memory handle, in total.
    func account(_ chain: borrowing NetBufferListChain, queue: ReceiveQueueID?, sign: Int) {
        let handles = outstandingByHandle
        let concurrent = fast.pointee.concurrent
        var p = chain.head
        while let nbl = p {
            p = nbl.pointee.next
            let q = queue.map { Int($0.rawValue) } ?? Int(nbl.pointee.info.receiveQueueID)
            Adapter.addShared(outstandingByQueue + q, sign, concurrent)
            Adapter.countSegments(nbl, handles, Int32(sign))
            nbl.pointee.owner = sign > 0 ? .indicated : .miniport
            nbl.pointee.retireViews()
        }
        let n = sign * chain.count
        withUnsafeMutablePointer(to: &fast.pointee.totalOutstanding) { Adapter.addShared($0, n, concurrent) }
    }

    /// RESOURCES: protocols that can take a borrowed chain see it in place; for the others the
    /// framework copies each frame into its own pool and indicates the copy without the flag.
    func indicateReceiveWithResources(_ chain: borrowing NetBufferListChain, queue: ReceiveQueueID, flags: ReceiveFlags) {
        // The borrow ends with this call: views protocols kept of the chain are stale after it.
        defer {
            var p = chain.head
            while let nbl = p { p = nbl.pointee.next; nbl.pointee.retireViews() }
        }
        guard state == .running, !isSurpriseRemoved else { countNotRunning(chain.count); return }
        if !queue.isDefault, queues[queue.rawValue]?.state != .running { countDrops(chain.count); return }
        if queue.isDefault && fast.pointee.softwareFiltering && !chain.isEmpty {
            // Software filters apply to every indication, RESOURCES ones included.
            indicateSoftwareFilteredWithResources(chain, flags: flags)
            return
        }
        indicateResourcesOnQueue(chain, queue: queue, flags: flags)
    }

    /// The software filter a default-queue frame matches first (id order), if any.
    func softwareFilterMatch(_ nbl: NetBufferList) -> ReceiveFilter? {
        guard let header = ParsedFrameHeader(nbl) else { return nil }
        for filter in softwareFilters where filter.parameters.matches(header) { return filter }
        return nil
    }

    /// A RESOURCES chain of the default queue, split by the software filters: each part is indicated
    /// on the queue its filter selects (the rest on the default queue), then the chain is linked
    /// back in its original order, as the miniport lent it.
    func indicateSoftwareFilteredWithResources(_ chain: borrowing NetBufferListChain, flags: ReceiveFlags) {
        let n = chain.count
        withUnsafeTemporaryAllocation(of: UnsafeMutablePointer<NBLStorage>.self, capacity: n) { order in
            withUnsafeTemporaryAllocation(of: UInt32.self, capacity: n) { target in
                var i = 0
                var anyMatched = false
                var p = chain.head
                while let nbl = p, i < n {
                    p = nbl.pointee.next
                    order[i] = nbl
                    let match = softwareFilterMatch(NetBufferList(nbl))
                    target[i] = match?.id.rawValue ?? 0
                    if match != nil { anyMatched = true }
                    i += 1
                }
                guard anyMatched else {
                    indicateResourcesOnQueue(chain, queue: .default, flags: flags)
                    return
                }
                // One part per filter in id order, then the default queue's frames.
                let filters = softwareFilters
                for f in 0...filters.count {
                    let filter: ReceiveFilter? = f < filters.count ? filters[f] : nil
                    let id = filter?.id.rawValue ?? 0
                    var part = NetBufferListChain()
                    for k in 0..<n where target[k] == id {
                        order[k].pointee.next = nil
                        part.appendNBL(order[k])
                        if let filter {
                            order[k].pointee.info.receiveFilterID = UInt16(truncatingIfNeeded: filter.id.rawValue)
                        }
                    }
                    if !part.isEmpty {
                        indicateResourcesOnQueue(part, queue: filter?.queue ?? .default, flags: flags)
                    }
                    // The part only borrowed the NBLs: let go of them without returning anything.
                    _ = part.takeAll()
                }
                for k in 0..<n { order[k].pointee.next = k + 1 < n ? order[k + 1] : nil }
            }
        }
    }

    /// Calls `body` with the NBLs of a lent (borrowed) chain that `include` selects, in order, linked
    /// as a chain of their own for the call; afterwards `chain` is linked back exactly as it was.
    /// Nothing is called when no NBL is selected.
    static func withBorrowedPart(of chain: borrowing NetBufferListChain, where include: (NetBufferList) -> Bool,
                                 _ body: (borrowing NetBufferListChain) -> Void) {
        let n = chain.count
        guard n > 0 else { return }
        withUnsafeTemporaryAllocation(of: UnsafeMutablePointer<NBLStorage>.self, capacity: n) { order in
            var i = 0
            var p = chain.head
            while let nbl = p, i < n {
                p = nbl.pointee.next
                order[i] = nbl
                i += 1
            }
            var part = NetBufferListChain()
            for k in 0..<i where include(NetBufferList(order[k])) {
                order[k].pointee.next = nil
                part.appendNBL(order[k])
            }
            if !part.isEmpty { body(part) }
            // The part only borrowed the NBLs: let go of them without returning anything.
            _ = part.takeAll()
            for k in 0..<i { order[k].pointee.next = k + 1 < i ? order[k + 1] : nil }
        }
    }

    /// A RESOURCES indication on one queue (see `indicateReceiveWithResources`).
    func indicateResourcesOnQueue(_ chain: borrowing NetBufferListChain, queue: ReceiveQueueID, flags: ReceiveFlags) {
        if !queue.isDefault, queues[queue.rawValue]?.state != .running { countDrops(chain.count); return }
        if !queue.isDefault, let q = queues[queue.rawValue], q.parameters.flags.contains(.lookaheadSplitRequired) {
            checkLookaheadSplit(chain, lookahead: q.parameters.lookaheadSize)
        }
        chain.forEach { nbl in
            nbl.storage.pointee.source = sourceHandle
            nbl.storage.pointee.info.receiveQueueID = queue.rawValue
            if nbl.storage.pointee.info.frameType == 0 { nbl.storage.pointee.info.frameType = Adapter.frameType(of: nbl) }
        }
        let count = chain.count
        let flags = flags.union([.resources, .singleQueue])
        var needsCopy = false
        let q = Int(queue.rawValue)
        for b in bindings where b.isOpen {
            if b.isMonitor || b.protocolDriver.handlesResourcesIndications {
                let pf = b.packetFilterCell.pointee
                if b.isMonitor || pf == PacketFilterTable.unfiltered {
                    b.protocolDriver.receiveNetBufferListsWithResources(chain, binding: b, queue: queue, count: count, flags: flags)
                } else {
                    // The binding's packet filter applies here too: it sees only the frames it takes.
                    Adapter.withBorrowedPart(of: chain, where: { packetFilterTakes(pf, $0, queue: q) }) { part in
                        b.protocolDriver.receiveNetBufferListsWithResources(part, binding: b, queue: queue, count: part.count, flags: flags)
                    }
                }
            } else {
                needsCopy = true
            }
        }
        // With lanes the copy pool would be shared by every worker and every returning thread: such
        // protocols miss RESOURCES indications instead (counted as drops).
        if needsCopy && fast.pointee.concurrent { countDrops(count); return }
        guard needsCopy, let pool = copyPool else { return }
        var copies = NetBufferListChain()
        chain.forEach { nbl in
            var one = pool.allocate(count: 1)
            guard let copy = one.first else {
                countDrops(1)
                _ = one.takeAll()
                return
            }
            let seg = copy.segment(0)
            let n = nbl.copyData(into: UnsafeMutableRawBufferPointer(start: seg.address, count: Int(seg.capacity)))
            var s = seg
            s.length = UInt32(n)
            copy.setSegment(0, s)
            copy.setData(offset: 0, length: n)
            copy.info = nbl.info
            copy.storage.pointee.sharedMemoryInfoValid = false
            copies.append(one)
        }
        if copies.isEmpty { return }
        // The copies belong to the framework (source: none → back to the copy pool on return).
        copies.forEach { $0.storage.pointee.source = .none }
        for b in bindings where b.isOpen && !b.isMonitor && !b.protocolDriver.handlesResourcesIndications {
            if copies.isEmpty { break }
            let types = b.frameTypes
            let pf = b.packetFilterCell.pointee
            let mine = copies.removeAll {
                (types.isEmpty || types.contains($0.storage.pointee.info.frameType)) && packetFilterTakes(pf, $0, queue: q)
            }
            if mine.isEmpty { continue }
            let n = mine.count
            Adapter.addShared(indicatedByQueue + Int(queue.rawValue), UInt64(n), false)
            b.protocolDriver.receiveNetBufferLists(mine, binding: b, queue: queue, count: n, flags: flags.subtracting(.resources))
        }
        if !copies.isEmpty {
            countDrops(copies.count)
            _ = pool.free(copies)
        }
    }

    func coIndicateReceive(_ chain: consuming NetBufferListChain, vc: VirtualConnectionHandle, flags: ReceiveFlags) {
        guard state == .running, !isSurpriseRemoved, let conn = vcs[vc.rawValue] else {
            countNotRunning(chain.count)
            miniport.returnNetBufferLists(chain, flags: [])
            return
        }
        let q = conn.queue
        chain.forEach { nbl in
            nbl.storage.pointee.source = conn.sourceHandle
            nbl.storage.pointee.info.receiveQueueID = q.rawValue
        }
        account(chain, queue: q, sign: 1)
        let n = chain.count
        Adapter.addShared(indicatedByQueue + Int(q.rawValue), UInt64(n), fast.pointee.concurrent)
        conn.binding.protocolDriver.coReceiveNetBufferLists(chain, vc: conn, count: n, flags: flags.union(.singleQueue))
    }

    // MARK: - Return

    /// MiniportReturnNetBufferLists through NDIS: accounts the NBLs, finishes a pending pause or
    /// queue free, and hands them to the miniport.
    public func returnNetBufferLists(_ chain: consuming NetBufferListChain, flags: ReturnFlags) {
        // Copies made for RESOURCES indications go back to the copy pool, not to the miniport.
        var chain = chain
        if let pool = copyPool, pool.outstanding > 0 {
            // Only when copies are out can the chain hold one; otherwise skip the per-NBL walk.
            let copies = chain.removeAll { pool.index(of: $0) != nil }
            if !copies.isEmpty { _ = pool.free(copies) }
        }
        if chain.isEmpty { return }
        if _slowPath(fast.pointee.lingering) {
            // NBLs indicated before a halt: never to the miniport (see `returnLate`).
            let halted = state == .halted
            let old = lingering?.source ?? .none
            let late = chain.removeAll { halted || $0.storage.pointee.source == old }
            returnLate(late)
            if chain.isEmpty { return }
        }
        if _slowPath(fast.pointee.concurrent) {
            // Lanes: the NBLs' own workers account and recycle them.
            pushReturns(chain)
            return
        }
        account(chain, queue: nil, sign: -1)
        miniport.returnNetBufferLists(chain, flags: flags)
        finishWaitsAfterReturn()
    }

    /// Binding.returnNetBufferLists lands here: the NBLs this adapter indicated are accounted in one
    /// walk and go to the miniport; any others (a VC's, RESOURCES copies, another adapter's) are
    /// routed by their SourceHandle.
    func returnFromBinding(_ chain: consuming NetBufferListChain, flags: ReturnFlags) {
        let fp = fast
        if _slowPath(fp.pointee.concurrent) {
            returnToLanes(chain, flags: flags)
            return
        }
        let own = fp.pointee.sourceHandle
        let handles = outstandingByHandle
        let queues = outstandingByQueue
        var foreign = 0
        var runQueue = 0
        var run = 0
        var p = chain.head
        while let nbl = p {
            p = nbl.pointee.next
            if nbl.pointee.source != own { foreign &+= 1; continue }
            // Per-queue counts in runs: a returned chain usually comes from one queue.
            let q = Int(nbl.pointee.info.receiveQueueID)
            if q != runQueue {
                queues[runQueue] &-= run
                runQueue = q
                run = 0
            }
            run &+= 1
            Adapter.countSegments(nbl, handles, -1)
            nbl.pointee.owner = .miniport
            nbl.pointee.retireViews()
        }
        queues[runQueue] &-= run
        fp.pointee.totalOutstanding &-= chain.count &- foreign
        var chain = chain
        if foreign > 0 {
            let others = chain.removeAll { $0.storage.pointee.source != own }
            NDIS.returnNetBufferLists(others, flags: flags)
        }
        if chain.isEmpty { return }
        miniport.returnNetBufferLists(chain, flags: flags)
        if fp.pointee.watchReturns { finishWaitsAfterReturn() }
    }

    /// Lanes: this adapter's NBLs go onto their lanes' return stacks, any others are routed by their
    /// SourceHandle.
    func returnToLanes(_ chain: consuming NetBufferListChain, flags: ReturnFlags) {
        let own = fast.pointee.sourceHandle
        var chain = chain
        var foreign = false
        var p = chain.head
        while let nbl = p {
            p = nbl.pointee.next
            if nbl.pointee.source != own { foreign = true; break }
        }
        if foreign {
            let others = chain.removeAll { $0.storage.pointee.source != own }
            NDIS.returnNetBufferLists(others, flags: flags)
        }
        if !chain.isEmpty { pushReturns(chain) }
    }

    /// A pause or a queue free that waited for the last NBL completes here.
    func finishWaitsAfterReturn() {
        if totalOutstanding == 0 && state == .pausing {
            state = .paused
            let done = pauseCompletion
            pauseCompletion = nil
            done?()
        }
        if let q = pendingFree, outstandingByQueue[Int(q.rawValue)] == 0 {
            pendingFree = nil
            let status: NDISStatus
            do { try finishFreeQueue(q); status = .success } catch { status = error.status }
            indicateStatus(.requestComplete("OID_RECEIVE_FILTER_FREE_QUEUE \(q)", status))
        }
    }

    // MARK: - Send

    func send(_ chain: consuming NetBufferListChain, from binding: Binding, source handle: SourceHandle, flags: SendFlags) {
        chain.forEach {
            $0.storage.pointee.source = handle
            $0.storage.pointee.owner = .miniportSend
            $0.storage.pointee.retireViews()
        }
        if !fast.pointee.delivering {
            let status: NDISStatus = isSurpriseRemoved ? .deviceRemoved : .paused
            chain.forEach { $0.storage.pointee.status = status }
            binding.sendComplete(chain)
            return
        }
        if _slowPath(fast.pointee.linkDown) {
            // NDIS: with the link down a send does not reach the wire; it completes with
            // NDIS_STATUS_MEDIA_DISCONNECTED and is counted, never reported sent.
            let n = chain.count
            chain.forEach { $0.storage.pointee.status = .mediaDisconnected }
            let fp = fast
            withUnsafeMutablePointer(to: &fp.pointee.sendsWhileLinkDown) { Adapter.addShared($0, UInt64(n), fp.pointee.concurrent) }
            binding.sendComplete(chain)
            return
        }
        miniport.sendNetBufferLists(chain, flags: flags)
    }

    func sendComplete(_ chain: consuming NetBufferListChain) {
        let fp = fast
        if _slowPath(!fp.pointee.delivering) {
            // Pausing or halting: sends the miniport gives back with an error were not sent (a
            // stuck transmit ring's, a backlog's); the halt report names them.
            var failed = 0
            chain.forEach { if $0.storage.pointee.status != .success { failed &+= 1 } }
            sendsNotSentAtTeardown &+= failed
        }
        let sole = fp.pointee.soleBindingSource
        var allSole = sole != .none
        var p = chain.head
        while let nbl = p {
            p = nbl.pointee.next
            nbl.pointee.owner = .protocolSend
            if nbl.pointee.source != sole { allSole = false }
        }
        // Usually the only binding sent them all: route directly.
        if allSole, let b = fp.pointee.soleBinding {
            var pending = chain
            b._withUnsafeGuaranteedRef { b in
                var mine = NetBufferListChain()
                swap(&mine, &pending)
                b.sendComplete(mine)
            }
            return
        }
        NDIS.completeSends(chain)
    }

    // MARK: - Status

    func indicateStatus(_ status: StatusIndication) {
        if case let .linkState(l) = status { linkState = l }
        if statusLog.count < 1024 { statusLog.append(status) }
        for b in bindings where b.isOpen { b.protocolDriver.status(status, binding: b) }
    }
}
