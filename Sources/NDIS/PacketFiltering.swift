/// OID_GEN_CURRENT_PACKET_FILTER as NDIS defines it, per binding, on every queue.
///
/// Each binding sets its own filter (a binding that never set one follows the filter set on the
/// adapter without a binding; if neither was set it takes every frame the hardware accepts). The
/// miniport is asked for the union of the filters in effect (widened to promiscuous while a
/// software filter steers by destination MAC, so the hardware lets those frames in), and the
/// framework checks each frame against each binding's own filter:
///
/// - promiscuous: every frame;
/// - broadcast: `ff:ff:ff:ff:ff:ff`;
/// - all-multicast: every multicast (group) address; multicast: only the multicast list's;
/// - directed: unicast to the adapter's current address, or, on a VMQ queue, to a MAC one of the
///   queue's filters names (the queue's own address).
///
/// Frames no binding's filter accepts are given back and counted in `packetFilterRejects` (not
/// drops: the NIC was not asked for them).
struct PacketFilterTable {
    /// Per queue id, the unicast MACs that count as directed there (the queue's MAC filters).
    static let macsPerQueue = 8
    /// The multicast list the framework checks (OID_802_3_MULTICAST_LIST), at most this many.
    static let multicastCapacity = 256
    /// Raw filter value meaning "no filter set: accept everything".
    static let unfiltered = UInt32.max

    let queueMACs: UnsafeMutablePointer<UInt64>
    let queueMACCount: UnsafeMutablePointer<UInt8>
    let multicast: UnsafeMutablePointer<UInt64>
    /// [0]: the adapter's current address, [1]: multicast list length.
    let scalars: UnsafeMutablePointer<UInt64>

    init() {
        queueMACs = .allocate(capacity: Adapter.maxQueueIDs * Self.macsPerQueue)
        queueMACs.initialize(repeating: 0, count: Adapter.maxQueueIDs * Self.macsPerQueue)
        queueMACCount = .allocate(capacity: Adapter.maxQueueIDs)
        queueMACCount.initialize(repeating: 0, count: Adapter.maxQueueIDs)
        multicast = .allocate(capacity: Self.multicastCapacity)
        multicast.initialize(repeating: 0, count: Self.multicastCapacity)
        scalars = .allocate(capacity: 2)
        scalars.initialize(repeating: 0, count: 2)
    }

    func release() {
        // Safety: every table holds plain integers; nothing to deinitialize.
        queueMACs.deallocate()
        queueMACCount.deallocate()
        multicast.deallocate()
        scalars.deallocate()
    }

    static func value(_ mac: MACAddress) -> UInt64 { mac.array.reduce(0) { $0 << 8 | UInt64($1) } }

    /// Whether a frame for `destination` (48 bits) on queue `queue` passes `filter`.
    @inline(__always)
    func accepts(_ filter: UInt32, destination: UInt64, queue: Int) -> Bool {
        let f = PacketFilter(rawValue: filter)
        if f.contains(.promiscuous) { return true }
        if destination == 0xFFFF_FFFF_FFFF { return f.contains(.broadcast) }
        if destination & (1 << 40) != 0 {
            if f.contains(.allMulticast) { return true }
            guard f.contains(.multicast) else { return false }
            let n = Int(scalars[1])
            var i = 0
            while i < n {
                if multicast[i] == destination { return true }
                i &+= 1
            }
            return false
        }
        guard f.contains(.directed) else { return false }
        if destination == scalars[0] { return true }
        let n = Int(queueMACCount[queue])
        let base = queueMACs + queue &* Self.macsPerQueue
        var i = 0
        while i < n {
            if base[i] == destination { return true }
            i &+= 1
        }
        return false
    }

    /// The destination MAC of a frame (48 bits), or nil if the frame is shorter than one.
    @inline(__always)
    static func destination(_ nbl: NetBufferList) -> UInt64? {
        var d: UInt64 = 0
        for i in 0..<6 {
            guard let b = nbl.byte(at: i) else { return nil }
            d = d << 8 | UInt64(b)
        }
        return d
    }
}

extension Adapter {
    /// Whether `binding`'s packet filter (raw, as the datapath keeps it) takes `nbl` on `queue`.
    @inline(__always)
    func packetFilterTakes(_ raw: UInt32, _ nbl: NetBufferList, queue: Int) -> Bool {
        if raw == PacketFilterTable.unfiltered { return true }
        guard let d = PacketFilterTable.destination(nbl) else { return false }
        return packetFilterTable.accepts(raw, destination: d, queue: queue)
    }

    /// OID_GEN_CURRENT_PACKET_FILTER from `binding` (nil: set on the adapter, for bindings that set none).
    func setPacketFilter(_ filter: PacketFilter, from binding: Binding?) throws(NDISError) {
        let known: PacketFilter = [.directed, .multicast, .allMulticast, .broadcast, .promiscuous]
        guard known.isSuperset(of: filter) else {
            throw .notSupported("packet filter bits 0x\(String(filter.subtracting(known).rawValue, radix: 16)) are not supported; use directed, multicast, all-multicast, broadcast and promiscuous")
        }
        let previousOwn = binding?.ownPacketFilter
        let previousAdapter = adapterPacketFilter
        if let binding { binding.ownPacketFilter = filter } else { adapterPacketFilter = filter }
        do { try applyPacketFilters(force: true) } catch {
            if let binding { binding.ownPacketFilter = previousOwn } else { adapterPacketFilter = previousAdapter }
            try? applyPacketFilters(force: false)
            throw error
        }
    }

    /// Recomputes each binding's filter in effect and the tables, and gives the miniport the union
    /// when it changed (or `force`).
    func applyPacketFilters(force: Bool) throws(NDISError) {
        var union: PacketFilter = []
        var anySet = false
        var filtering = false
        for b in bindings where b.isOpen {
            let effective = b.ownPacketFilter ?? adapterPacketFilter
            b.packetFilterCell.pointee = effective?.rawValue ?? PacketFilterTable.unfiltered
            guard let effective else { continue }
            anySet = true
            union.formUnion(effective)
            // Monitors look at every indication; their filter only shapes the hardware's.
            if !b.isMonitor && !effective.contains(.promiscuous) { filtering = true }
        }
        if let a = adapterPacketFilter {
            anySet = true
            union.formUnion(a)
        }
        refreshPacketFilterTable()
        fast.pointee.packetFiltering = filtering
        guard anySet else { return }
        // A software filter that steers by destination MAC needs those frames let in by the hardware.
        // (Unless the miniport lets them in itself: it programs its device's MAC table from
        // `softwareFiltersChanged`, as virtio-net does.)
        if !(attributes?.admitsSoftwareFilterMACs ?? false),
           softwareFilters.contains(where: { $0.parameters.tests.contains { $0.field == .macDestination } }) {
            union.insert(.promiscuous)
        }
        guard force || union != hardwarePacketFilter else { return }
        _ = try miniport.handleRequest(.setPacketFilter(union))
        hardwarePacketFilter = union
    }

    /// The adapter's address, the multicast list and each queue's MAC filters, for the per-frame check.
    func refreshPacketFilterTable() {
        let t = packetFilterTable
        t.scalars[0] = attributes.map { PacketFilterTable.value($0.currentAddress) } ?? 0
        let list = multicastList.prefix(PacketFilterTable.multicastCapacity)
        for (i, m) in list.enumerated() { t.multicast[i] = PacketFilterTable.value(m) }
        t.scalars[1] = UInt64(list.count)
        t.queueMACCount.update(repeating: 0, count: Adapter.maxQueueIDs)
        for f in filters.values.sorted(by: { $0.id < $1.id }) where !f.queue.isDefault {
            let q = Int(f.queue.rawValue)
            for test in f.parameters.tests where test.field == .macDestination && test.value.count == 6 {
                let n = Int(t.queueMACCount[q])
                guard n < PacketFilterTable.macsPerQueue else { continue }
                t.queueMACs[q * PacketFilterTable.macsPerQueue + n] = test.value.reduce(0) { $0 << 8 | UInt64($1) }
                t.queueMACCount[q] = UInt8(n + 1)
            }
        }
    }

    /// Counts frames no binding's packet filter accepted (given back; not drops).
    func countPacketFilterRejects(_ n: Int) {
        let fp = fast
        withUnsafeMutablePointer(to: &fp.pointee.packetFilterRejects) { Adapter.addShared($0, UInt64(n), fp.pointee.concurrent) }
    }

    /// Frames no binding's packet filter accepted, given back to the miniport (not counted as drops).
    public var packetFilterRejects: UInt64 { fast.pointee.packetFilterRejects }
}

extension Binding {
    /// The packet filter this binding set (OID_GEN_CURRENT_PACKET_FILTER); nil if it set none (it then
    /// follows the adapter's, or takes every frame).
    public var packetFilter: PacketFilter? { ownPacketFilter }
}
