extension Adapter {
    // MARK: - Receive

    /// Indicate path: check adapter and queue state, apply software filters on the default queue,
    /// account the NBLs per queue and per shared memory block, and hand sub-chains to the bindings.
        func indicateReceive(_ chain: consuming NetBufferListChain, queue: ReceiveQueueID, flags: ReceiveFlags) {
        guard state == .running, !isSurpriseRemoved else {
            // NDIS: a paused adapter indicates nothing; give the buffers straight back.
            frameworkDrops &+= UInt64(chain.count)
            miniport.returnNetBufferLists(chain, flags: [])
            return
        }
        if !queue.isDefault {
            guard let q = queues[queue.rawValue], q.state == .running else {
                // A queue with no filter (Paused) or a stopping queue discards its frames.
                frameworkDrops &+= UInt64(chain.count)
                miniport.returnNetBufferLists(chain, flags: .singleQueue)
                return
            }
        }
        var chain = chain
        let source = sourceHandle
        chain.forEach { nbl in
            nbl.storage.pointee.source = source
            nbl.storage.pointee.info.receiveQueueID = queue.rawValue
            if nbl.storage.pointee.info.frameType == 0 { nbl.storage.pointee.info.frameType = Adapter.frameType(of: nbl) }
        }
        if queue.isDefault && !softwareFilters.isEmpty {
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

    static func frameType(of nbl: NetBufferList) -> UInt16 {
        guard let hi = nbl.byte(at: 12), let lo = nbl.byte(at: 13) else { return 0 }
        let t = UInt16(hi) << 8 | UInt16(lo)
        if t == 0x8100, let h2 = nbl.byte(at: 16), let l2 = nbl.byte(at: 17) { return UInt16(h2) << 8 | UInt16(l2) }
        return t
    }

    /// Accounts and hands a one-queue chain to monitors (borrowed) and owners (moved).
        func deliver(_ chain: consuming NetBufferListChain, queue: ReceiveQueueID, flags: ReceiveFlags) {
        let count = chain.count
        let flags = flags.union(.singleQueue)
        if let vc = vcForQueue[queue.rawValue], let conn = vcs[vc.rawValue] {
            // A VC stands for this queue: indicate per connection.
            account(chain, queue: queue, sign: 1)
            chain.forEach { $0.storage.pointee.source = conn.sourceHandle }
            indicatedFrames[queue.rawValue, default: 0] &+= UInt64(count)
            conn.binding.protocolDriver.coReceiveNetBufferLists(chain, vc: conn, count: count, flags: flags)
            return
        }
        for b in bindings where b.isMonitor && b.isOpen {
            b.protocolDriver.receiveNetBufferListsWithResources(chain, binding: b, queue: queue, count: count, flags: flags.union(.resources))
        }
        var chain = chain
        account(chain, queue: queue, sign: 1)
        for b in bindings where !b.isMonitor && b.isOpen {
            if chain.isEmpty { break }
            var mine = NetBufferListChain()
            if b.frameTypes.isEmpty {
                // Takes every frame: move the whole chain (O(1)) instead of relinking NBL by NBL.
                swap(&mine, &chain)
            } else {
                let types = b.frameTypes
                mine = chain.removeAll { types.contains($0.storage.pointee.info.frameType) }
            }
            if mine.isEmpty { continue }
            let n = mine.count
            indicatedFrames[queue.rawValue, default: 0] &+= UInt64(n)
            b.protocolDriver.receiveNetBufferLists(mine, binding: b, queue: queue, count: n, flags: flags)
        }
        if !chain.isEmpty {
            // No binding wants these frames: give them back now.
            frameworkDrops &+= UInt64(chain.count)
            returnNetBufferLists(chain, flags: .singleQueue)
        }
    }

    /// Adds (`sign` 1) or removes (-1) NBLs from the outstanding counts.
    func account(_ chain: borrowing NetBufferListChain, queue: ReceiveQueueID?, sign: Int) {
        var p = chain.head
        while let nbl = p {
            p = nbl.pointee.next
            let q = queue.map { Int($0.rawValue) } ?? Int(nbl.pointee.info.receiveQueueID)
            outstandingByQueue[q] &+= sign
            let n = Int(nbl.pointee.segmentCount)
            var i = 0
            while i < n {
                let h = Int(nbl.pointee.segments[i].sharedMemory.rawValue)
                if h > 0 && h < Adapter.maxSharedMemoryHandles { outstandingByHandle[h] &+= Int32(sign) }
                i += 1
            }
            nbl.pointee.owner = sign > 0 ? .indicated : .miniport
        }
        totalOutstanding &+= sign * chain.count
    }

    /// RESOURCES: protocols that can take a borrowed chain see it in place; for the others the
    /// framework copies each frame into its own pool and indicates the copy without the flag.
        func indicateReceiveWithResources(_ chain: borrowing NetBufferListChain, queue: ReceiveQueueID, flags: ReceiveFlags) {
        guard state == .running, !isSurpriseRemoved else { frameworkDrops &+= UInt64(chain.count); return }
        if !queue.isDefault, queues[queue.rawValue]?.state != .running { frameworkDrops &+= UInt64(chain.count); return }
        chain.forEach { nbl in
            nbl.storage.pointee.source = sourceHandle
            nbl.storage.pointee.info.receiveQueueID = queue.rawValue
            if nbl.storage.pointee.info.frameType == 0 { nbl.storage.pointee.info.frameType = Adapter.frameType(of: nbl) }
        }
        let count = chain.count
        let flags = flags.union([.resources, .singleQueue])
        var needsCopy = false
        for b in bindings where b.isOpen {
            if b.isMonitor || b.protocolDriver.handlesResourcesIndications {
                b.protocolDriver.receiveNetBufferListsWithResources(chain, binding: b, queue: queue, count: count, flags: flags)
            } else {
                needsCopy = true
            }
        }
        guard needsCopy, let pool = copyPool else { return }
        var copies = NetBufferListChain()
        chain.forEach { nbl in
            var one = pool.allocate(count: 1)
            guard let copy = one.first else {
                frameworkDrops &+= 1
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
            let mine = copies.removeAll { types.isEmpty || types.contains($0.storage.pointee.info.frameType) }
            if mine.isEmpty { continue }
            let n = mine.count
            indicatedFrames[queue.rawValue, default: 0] &+= UInt64(n)
            b.protocolDriver.receiveNetBufferLists(mine, binding: b, queue: queue, count: n, flags: flags.subtracting(.resources))
        }
        if !copies.isEmpty {
            frameworkDrops &+= UInt64(copies.count)
            _ = pool.free(copies)
        }
    }

        func coIndicateReceive(_ chain: consuming NetBufferListChain, vc: VirtualConnectionHandle, flags: ReceiveFlags) {
        guard state == .running, !isSurpriseRemoved, let conn = vcs[vc.rawValue] else {
            frameworkDrops &+= UInt64(chain.count)
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
        indicatedFrames[q.rawValue, default: 0] &+= UInt64(n)
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
        account(chain, queue: nil, sign: -1)
        miniport.returnNetBufferLists(chain, flags: flags)
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

    func send(_ chain: consuming NetBufferListChain, from binding: Binding, flags: SendFlags) {
        let handle = binding.sourceHandle
        chain.forEach {
            $0.storage.pointee.source = handle
            $0.storage.pointee.owner = .miniportSend
        }
        if isSurpriseRemoved || state != .running {
            let status: NDISStatus = isSurpriseRemoved ? .deviceRemoved : .paused
            chain.forEach { $0.storage.pointee.status = status }
            binding.sendComplete(chain)
            return
        }
        miniport.sendNetBufferLists(chain, flags: flags)
    }

        func sendComplete(_ chain: consuming NetBufferListChain) {
        chain.forEach { $0.storage.pointee.owner = .protocolSend }
        // Usually one binding sent them all: route directly.
        if let first = chain.first, bindings.count == 1, let b = bindings.first, first.sourceHandle == b.sourceHandle {
            var allSame = true
            chain.forEach { if $0.storage.pointee.source != b.sourceHandle { allSame = false } }
            if allSame { b.sendComplete(chain); return }
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
