extension Adapter {
    /// Issues a control request (an OID). Requests are serialized and validated here; the miniport
    /// sees only checked requests. `from` is the binding asking (nil: an administrator or tool);
    /// only the binding that allocated a queue may set or clear its filters and free it.
    public func request(_ oid: OIDRequest, from binding: Binding? = nil) throws(NDISError) -> OIDResponse {
        // With per-queue workers, no worker is inside a batch while a request changes queues and filters.
        try withDatapathStopped { () throws(NDISError) -> OIDResponse in try requestStopped(oid, from: binding) }
    }

    func requestStopped(_ oid: OIDRequest, from binding: Binding?) throws(NDISError) -> OIDResponse {
        try checkPresent("the request")
        guard state != .halted && state != .halting else { throw .invalidState("\(name) is \(state.rawValue): no requests") }
        let busy = requestLock.withLock { _ -> Bool in
            if requestInProgress { return true }
            requestInProgress = true
            return false
        }
        if busy { throw .requestPending("\(name) is handling another request") }
        defer { requestLock.withLock { _ in requestInProgress = false } }
        if let pendingFree, case .freeQueue = oid {
            throw .requestPending("OID_RECEIVE_FILTER_FREE_QUEUE for \(pendingFree) waits for its NBLs")
        }
        switch oid {
        case let .allocateQueue(params): return try allocateQueue(params, owner: binding)
        case let .queueAllocationComplete(ids): return try allocationComplete(ids, owner: binding)
        case let .setFilter(params): return try setFilter(params, owner: binding)
        case let .clearFilter(id): return try clearFilter(id, owner: binding)
        case let .freeQueue(id): return try freeQueue(id, owner: binding)
        case let .setQueueParameters(id, change): return try setQueueParameters(id, change, owner: binding)
        case .enumerateQueues:
            return .queues(queues.values.sorted { $0.id < $1.id })
        case let .enumerateFilters(q):
            if !q.isDefault && queues[q.rawValue] == nil { throw .unknownQueue(q) }
            return .filters(filters.values.filter { $0.queue == q }.sorted { $0.id < $1.id })
        case .hardwareCapabilities:
            return .hardwareCapabilities(try hardwareCapabilities())
        case .currentCapabilities:
            return .currentCapabilities(try currentCapabilities())
        case .statistics:
            let response = try miniport.handleRequest(.queryStatistics)
            guard case var .statistics(report) = response else { throw .miniportFailure("statistics request answered without statistics") }
            report.frameworkDrops = frameworkDrops
            report.leakedNBLs = UInt64(NetBufferListLeaks.totalLeaked)
            report.indicationsWhilePaused = indicationsWhilePaused
            report.sendsWhileLinkDown = sendsWhileLinkDown
            return .statistics(report)
        case let .setPacketFilter(f):
            try setPacketFilter(f, from: binding)
            return .done
        case let .setMulticastList(list):
            guard list.allSatisfy(\.isMulticast) else {
                throw .invalidParameter("the multicast list holds a unicast address: \(list.filter { !$0.isMulticast }.map(\.description).joined(separator: ", "))")
            }
            guard list.count <= PacketFilterTable.multicastCapacity else {
                throw .invalidParameter("the multicast list holds \(list.count) addresses; at most \(PacketFilterTable.multicastCapacity) are taken (set all-multicast instead)")
            }
            _ = try miniport.handleRequest(.setMulticastList(list))
            multicastList = list
            refreshPacketFilterTable()
            return .done
        case let .setReceiveScale(p):
            guard attributes?.supportsRSS == true else { throw .notSupported("\(name) does not do RSS") }
            guard queues.isEmpty else { throw .invalidState("RSS and VMQ queues are exclusive: free the \(queues.count) VMQ queue(s) first") }
            guard p.key.count == 40 else { throw .invalidParameter("the RSS key must be 40 bytes, got \(p.key.count)") }
            let n = p.indirectionTable.count
            guard n > 0, n <= 128, n & (n - 1) == 0 else { throw .invalidParameter("the indirection table needs a power-of-two size up to 128, got \(n)") }
            let maxQ = attributes?.maxRSSQueues ?? 1
            if let bad = p.indirectionTable.first(where: { Int($0) >= maxQ }) {
                throw .invalidParameter("indirection table entry \(bad) is beyond the \(maxQ) RSS queues")
            }
            _ = try miniport.handleRequest(.setReceiveScale(p))
            rssEnabled = !p.hashTypes.isEmpty
            return .done
        case .linkState:
            if case let .linkState(l) = try miniport.handleRequest(.queryLinkState) { linkState = l }
            return .linkState(linkState)
        }
    }

    func hardwareCapabilities() throws(NDISError) -> ReceiveFilterCapabilities {
        guard let a = attributes else { throw .invalidState("\(name) is not initialized") }
        return a.receiveFilterCapabilities
    }

    public func currentCapabilities() throws(NDISError) -> CurrentReceiveFilterCapabilities {
        let hw = try hardwareCapabilities()
        return CurrentReceiveFilterCapabilities(
            hardware: hw, softwareFields: Set(FilterField.allCases), softwareTests: Set(FilterTest.allCases),
            numberOfQueues: hw.numberOfQueues + Adapter.softwareQueueLimit)
    }

    func checkOwner(_ q: ReceiveQueueID, _ owner: Binding?) throws(NDISError) {
        if let recorded = queueOwners[q.rawValue], let owner, recorded != ObjectIdentifier(owner) {
            throw .invalidParameter("\(q) was allocated by another binding; only its owner may change it")
        }
    }

    func allocateQueue(_ p: ReceiveQueueParameters, owner: Binding?) throws(NDISError) -> OIDResponse {
        let caps = try currentCapabilities()
        guard !rssEnabled else { throw .invalidState("RSS is enabled on \(name): VMQ queues and RSS are exclusive") }
        guard !p.processorAffinity.isEmpty else { throw .invalidParameter("the queue's processor affinity is empty: name at least one CPU") }
        guard p.numberOfBuffers > 0, p.numberOfBuffers <= caps.hardware.maxBuffersPerQueue || caps.hardware.maxBuffersPerQueue == 0 else {
            throw .invalidParameter("\(p.numberOfBuffers) buffers requested; the hardware takes 1...\(caps.hardware.maxBuffersPerQueue)")
        }
        if p.flags.contains(.lookaheadSplitRequired) {
            guard caps.hardware.lookaheadSplitSupported else {
                throw .notSupported("\(name) cannot split received frames (LOOKAHEAD_SPLIT_REQUIRED): allocate the queue without the lookahead split flag")
            }
            guard p.lookaheadSize >= caps.hardware.minLookaheadSplitSize, p.lookaheadSize <= caps.hardware.maxLookaheadSplitSize else {
                throw .invalidParameter("lookahead size \(p.lookaheadSize) is outside \(caps.hardware.minLookaheadSplitSize)...\(caps.hardware.maxLookaheadSplitSize)")
            }
        }
        guard queues.count < caps.numberOfQueues else {
            throw .resources("\(name) offers \(caps.numberOfQueues) queues besides the default one, all allocated")
        }
        // Ids are the framework's: the lowest free id ≥ 1.
        var raw: UInt16 = 1
        while queues[raw] != nil { raw += 1 }
        let id = ReceiveQueueID(raw)
        let hardware = hardwareQueuesInUse < caps.hardware.numberOfQueues
        if hardware {
            _ = try miniport.handleRequest(.allocateQueue(id, p))
            hardwareQueuesInUse += 1
        } else if p.flags.contains(.lookaheadSplitRequired) {
            throw .resources("no hardware queue is left for a lookahead-split queue")
        }
        queues[raw] = ReceiveQueueInfo(id: id, parameters: p, state: .allocated, filters: [], softwareOnly: !hardware)
        if let owner { queueOwners[raw] = ObjectIdentifier(owner) }
        return .queueAllocated(id)
    }

    func allocationComplete(_ ids: [ReceiveQueueID], owner: Binding?) throws(NDISError) -> OIDResponse {
        var results: [(ReceiveQueueID, NDISStatus)] = []
        for id in ids {
            guard var q = queues[id.rawValue] else { results.append((id, .invalidParameter)); continue }
            guard q.state == .allocated else { results.append((id, .invalidParameter)); continue }
            // Memory may be allocated from now on, so the state moves before the miniport runs.
            q.state = .paused
            queues[id.rawValue] = q
            if !q.softwareOnly {
                do { _ = try miniport.handleRequest(.queueAllocationComplete(id)) } catch {
                    q.state = .allocated
                    queues[id.rawValue] = q
                    results.append((id, error.status))
                    continue
                }
            }
            results.append((id, .success))
        }
        return .allocationComplete(results)
    }

    func setFilter(_ p: ReceiveFilterParameters, owner: Binding?) throws(NDISError) -> OIDResponse {
        guard !p.tests.isEmpty else { throw .invalidParameter("a filter needs at least one field test") }
        for t in p.tests { try t.validate() }
        let q = p.queue
        var info: ReceiveQueueInfo?
        if !q.isDefault {
            guard let found = queues[q.rawValue] else { throw .unknownQueue(q) }
            guard found.state == .paused || found.state == .running else {
                throw .invalidState("\(q) is \(found.state.rawValue); filters can be set after allocation complete and before free")
            }
            try checkOwner(q, owner)
            info = found
        }
        let caps = try currentCapabilities()
        guard let placement = caps.placement(of: p) else { throw .notSupported("no hardware or software support for this filter") }
        // Default-queue filters and software-only queues are always software.
        let inHardware = placement && !q.isDefault && !(info?.softwareOnly ?? true)
            && filters.values.filter(\.inHardware).count < caps.hardware.maxMACHeaderFilters
            && (info?.filters.compactMap { filters[$0.rawValue] }.filter(\.inHardware).count ?? 0) < caps.hardware.maxFiltersPerQueue
        let id = ReceiveFilterID(nextFilter)
        nextFilter += 1
        let filter = ReceiveFilter(id: id, parameters: p, inHardware: inHardware)
        if inHardware {
            do { _ = try miniport.handleRequest(.setFilter(filter)) } catch {
                // The hardware refused (e.g. its table is full): run the filter in software instead.
                return try installSoftware(ReceiveFilter(id: id, parameters: p, inHardware: false), queue: info)
            }
        }
        return try installSoftware(filter, queue: info)
    }

    func installSoftware(_ filter: ReceiveFilter, queue: ReceiveQueueInfo?) throws(NDISError) -> OIDResponse {
        filters[filter.id.rawValue] = filter
        if !filter.inHardware && !filter.queue.isDefault {
            softwareFilters.append(filter)
            softwareFilters.sort { $0.id < $1.id }
            miniport.softwareFiltersChanged(softwareFilters)
        }
        // The queue's MACs count as directed there; a software MAC filter widens the hardware's filter.
        try? applyPacketFilters(force: false)
        if var q = queue {
            q.filters.append(filter.id)
            q.state = .running
            queues[q.id.rawValue] = q
        }
        return .filterSet(filter.id)
    }

    func clearFilter(_ id: ReceiveFilterID, owner: Binding?) throws(NDISError) -> OIDResponse {
        guard let filter = filters[id.rawValue] else { throw .unknownFilter(id) }
        if !filter.queue.isDefault { try checkOwner(filter.queue, owner) }
        if filter.inHardware { _ = try miniport.handleRequest(.clearFilter(filter)) }
        filters.removeValue(forKey: id.rawValue)
        if !filter.inHardware && !filter.queue.isDefault {
            softwareFilters.removeAll { $0.id == id }
            miniport.softwareFiltersChanged(softwareFilters)
        }
        try? applyPacketFilters(force: false)
        if var q = queues[filter.queue.rawValue] {
            q.filters.removeAll { $0 == id }
            // A queue whose last filter is gone stops indicating (Paused).
            if q.filters.isEmpty && q.state == .running { q.state = .paused }
            queues[q.id.rawValue] = q
        }
        return .done
    }

    func setQueueParameters(_ id: ReceiveQueueID, _ change: ReceiveQueueParameterChange, owner: Binding?) throws(NDISError) -> OIDResponse {
        guard var q = queues[id.rawValue] else { throw .unknownQueue(id) }
        try checkOwner(id, owner)
        if let a = change.processorAffinity {
            guard !a.isEmpty else { throw .invalidParameter("the queue's processor affinity is empty: name at least one CPU") }
            q.parameters.processorAffinity = a
        }
        if let n = change.name { q.parameters.name = n }
        if !q.softwareOnly { _ = try miniport.handleRequest(.setQueueParameters(id, q.parameters)) }
        queues[id.rawValue] = q
        return .done
    }

    /// OID_RECEIVE_FILTER_FREE_QUEUE, in the five NDIS steps: stop DMA, indicate DMA stopped, wait
    /// for every indicated NBL, free the shared memory, complete.
    func freeQueue(_ id: ReceiveQueueID, owner: Binding?) throws(NDISError) -> OIDResponse {
        guard !id.isDefault else { throw .invalidParameter("the default queue always exists and is never freed") }
        guard var q = queues[id.rawValue] else { throw .unknownQueue(id) }
        try checkOwner(id, owner)
        guard q.filters.isEmpty else {
            throw .invalidState("\(id) still has \(q.filters.count) filter(s) (ids \(q.filters.map { String($0.rawValue) }.joined(separator: ", "))): clear them first (OID_RECEIVE_FILTER_CLEAR_FILTER)")
        }
        // Step 1: stop DMA.
        if !q.softwareOnly { _ = try miniport.handleRequest(.stopQueueDMA(id)) }
        q.state = .dmaStopped
        queues[id.rawValue] = q
        // Step 2: NDIS_STATUS_RECEIVE_QUEUE_STATE (DmaStopped), so holders give buffers back.
        indicateStatus(.receiveQueueDMAStopped(id))
        // Step 3: wait for every indicated NBL of the queue.
        if outstandingByQueue[Int(id.rawValue)] > 0 {
            pendingFree = id
            return .pending
        }
        // Steps 4–5.
        try finishFreeQueue(id)
        return .done
    }

    func finishFreeQueue(_ id: ReceiveQueueID) throws(NDISError) {
        guard var q = queues[id.rawValue] else { throw .unknownQueue(id) }
        q.state = .freeing
        queues[id.rawValue] = q
        if !q.softwareOnly {
            _ = try miniport.handleRequest(.freeQueueResources(id))
            hardwareQueuesInUse -= 1
        }
        let left = allocations.values.filter { $0.queue == id }
        queues.removeValue(forKey: id.rawValue)
        queueOwners.removeValue(forKey: id.rawValue)
        if let vc = vcForQueue.removeValue(forKey: id.rawValue) { vcs.removeValue(forKey: vc.rawValue) }
        if !left.isEmpty {
            for shm in left { try? provider.freeSharedMemory(shm.region); allocations.removeValue(forKey: shm.allocationHandle.rawValue) }
            throw .miniportFailure("the miniport left \(left.count) shared memory block(s) of \(id) allocated; the framework freed them")
        }
    }
}
