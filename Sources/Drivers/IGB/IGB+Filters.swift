import DeviceAccess
import NDIS

// VMQ on VMDq (§7.10): a VMQ queue is a VMDq pool with its receive queue (pool n = queue n); a MAC
// filter is a receive-address entry (RAL/RAH) with the pool's pool-select bit; a VLAN filter is a
// VLVF entry with the pool's bit plus the VFTA; broadcast and multicast acceptance are per pool
// (VMOLR); the default queue is VT_CTL's default pool 0, which gets unicast no pool claimed.

/// A VMQ queue the framework allocated on a pool.
struct VMQQueue {
    let id: ReceiveQueueID
    let pool: Int
    var parameters: ReceiveQueueParameters
    /// Header (lookahead) buffer bytes, 0 without lookahead split.
    let headerSize: Int
    var memoryAllocated = false
}

/// A filter the hardware runs: a destination MAC, optionally with a VLAN id, steering to a pool.
struct HardwareFilter: Equatable {
    let pool: Int
    let mac: MACAddress
    let vlan: UInt16?
}

extension IGBMiniport {
    /// What the 82576 can filter and steer (reported as NDIS_RECEIVE_FILTER_CAPABILITIES).
    ///
    /// - 8 VMDq pools: the default pool plus 7 VMQ queues.
    /// - 24 receive addresses: entry 0 holds the adapter's address, 23 are left for MAC filters.
    /// - 32 VLVF entries. VLAN filtering only narrows MAC-selected pools (a frame reaches a pool when
    ///   its MAC selects the pool AND, if tagged, its VLAN's VLVF entry names the pool), so the
    ///   hardware runs {MAC} and {MAC, VLAN}; a VLAN-only filter runs in the framework's software path.
    /// - Lookahead split through SRRCTL header split: header buffers of 64…960 bytes.
    static var receiveFilterCapabilities: ReceiveFilterCapabilities {
        ReceiveFilterCapabilities(
            numberOfQueues: 7, maxMACHeaderFilters: 23, maxFiltersPerQueue: 23,
            supportedTests: [.equal], supportedFields: [.macDestination, .vlanID],
            supportedFieldCombinations: [[.macDestination], [.macDestination, .vlanID]],
            lookaheadSplitSupported: true, minLookaheadSplitSize: 64, maxLookaheadSplitSize: 960,
            maxBuffersPerQueue: 4096)
    }

    /// VMDq pools the 82576 has (§7.10.3).
    static var vmdqPools: Int { 8 }
    /// Receive address entries (§8.10.15).
    static var receiveAddresses: Int { 24 }
    /// VLVF entries (§8.10.24).
    static var vlanPoolFilters: Int { 32 }

    // MARK: - Initialization

    /// Clears every receive filter table: MTA, VFTA, RAR 1–23, VLVF, UTA (§4.5.9).
    func clearReceiveFilters() {
        for i in 0..<128 {
            regs.write32(IGBReg.MTA(i), 0)
            regs.write32(IGBReg.VFTA(i), 0)
            regs.write32(IGBReg.UTA(i), 0)
        }
        for i in 1..<Self.receiveAddresses {
            regs.write32(IGBReg.RAH(i), 0)
            regs.write32(IGBReg.RAL(i), 0)
        }
        for i in 0..<Self.vlanPoolFilters { regs.write32(IGBReg.VLVF(i), 0) }
        rarShadow = [UInt64](repeating: 0, count: Self.receiveAddresses)
        vlvfShadow = [UInt32](repeating: 0, count: Self.vlanPoolFilters)
    }

    /// §7.10.3.2: VMDq mode (MRQC), default pool 0 (VT_CTL), the adapter's address in pool 0,
    /// per-pool offloads (VMOLR), pool 0 enabled for receive and transmit (VFRE, VFTE).
    func configureVMDqPools() {
        regs.write32(IGBReg.MRQC, MRQC.MODE_VMDQ)
        regs.write32(IGBReg.VT_CTL, poolControl())
        // No loopback between pools: every transmitted frame goes to the wire.
        regs.write32(IGBReg.DTXSWC, 0)
        writeReceiveAddress(0, permanentAddress, pools: 1)
        for pool in 0..<Self.vmdqPools { regs.write32(IGBReg.VMOLR(pool), poolOffload(pool)) }
        regs.write32(IGBReg.VFRE, 1)
        regs.write32(IGBReg.VFTE, 1)
    }

    /// VT_CTL: default pool 0. Unicast that no pool claims reaches it only with a promiscuous packet
    /// filter (or before any filter is set); otherwise the default pool is disabled and such frames
    /// are dropped in hardware (§8.10.? VT_CTL.DIS_DEF_POOL, which QEMU honours too).
    func poolControl() -> UInt32 {
        var v: UInt32 = 0 << VT_CTL.DEF_PL_SHIFT
        if packetFilterSet && !packetFilter.contains(.promiscuous) { v |= VT_CTL.DIS_DEF_POOL }
        return v
    }

    /// VMOLR for a pool: VLAN stripping, long packets, and which frames beyond its filters it takes.
    func poolOffload(_ pool: Int) -> UInt32 {
        var v: UInt32 = 0
        if configuration.stripVLANTags { v |= VMOLR.STRVLAN }
        if configuration.maxFrameSize > 1518 {
            v |= VMOLR.LPE | (UInt32(configuration.maxFrameSize + 4) & VMOLR.RLPML_MASK)
        }
        let promiscuous = packetFilter.contains(.promiscuous)
        let broadcast = packetFilter.contains(.broadcast) || promiscuous
        let multicast = !packetFilter.isDisjoint(with: [.multicast, .allMulticast, .promiscuous])
        if pool == 0 {
            v |= VMOLR.AUPE
            if broadcast { v |= VMOLR.BAM }
            if multicast { v |= VMOLR.ROMPE }
            if packetFilter.contains(.allMulticast) || promiscuous { v |= VMOLR.MPME }
            return v
        }
        let filters = hardwareFilters.values.filter { $0.pool == pool }
        guard !filters.isEmpty else { return v }
        if !filters.contains(where: { $0.vlan != nil }) { v |= VMOLR.AUPE }
        // A VMQ queue takes broadcast and the multicast list only if the packet filter asks for them.
        if configuration.queuesAcceptBroadcast && broadcast { v |= VMOLR.BAM }
        if configuration.queuesAcceptMulticast && multicast { v |= VMOLR.ROMPE }
        return v
    }

    /// RCTL.VFE is needed once a hardware filter tests a VLAN (VMDq mode only).
    var vlanFilteringNeeded: Bool {
        rssQueueCount == 0 && hardwareFilters.values.contains { $0.vlan != nil }
    }

    /// Writes receive address entry `index` (§8.10.15–16): RAH without AV first, so the entry is
    /// never valid with half an address.
    func writeReceiveAddress(_ index: Int, _ mac: MACAddress?, pools: UInt32) {
        var low: UInt32 = 0, high: UInt32 = 0
        if let mac {
            let b = mac.array
            low = UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24
            high = UInt32(b[4]) | UInt32(b[5]) << 8 | (pools << RAH.POOLSEL_SHIFT) & RAH.POOLSEL_MASK | RAH.AV
        }
        let value = UInt64(low) | UInt64(high) << 32
        if rarShadow[index] == value && index != 0 { return }
        regs.write32(IGBReg.RAH(index), 0)
        regs.write32(IGBReg.RAL(index), low)
        regs.write32(IGBReg.RAH(index), high)
        rarShadow[index] = value
    }

    // MARK: - Queue lifecycle (OID_RECEIVE_FILTER_ALLOCATE_QUEUE … FREE_QUEUE)

    /// ALLOCATE_QUEUE: claims a free pool; no memory yet.
    func allocateQueue(_ id: ReceiveQueueID, _ parameters: ReceiveQueueParameters) throws {
        guard rssQueueCount == 0 else { throw NDISError.invalidState("RSS is on: disable it before allocating VMQ queues") }
        guard vmqQueues[id.rawValue] == nil else { throw NDISError.invalidParameter("\(id) is already allocated on \(deviceName)") }
        let used = Set(vmqQueues.values.map(\.pool))
        guard let pool = (1..<Self.vmdqPools).first(where: { !used.contains($0) && !rx[$0].active && ringMemory[$0].isEmpty }) else {
            throw NDISError.resources("\(deviceName): all \(Self.vmdqPools - 1) VMDq pools are in use")
        }
        var headerSize = 0
        if parameters.flags.contains(.lookaheadSplitRequired) {
            headerSize = (parameters.lookaheadSize + 63) / 64 * 64
            guard (64...960).contains(headerSize) else {
                throw NDISError.invalidParameter("lookahead size \(parameters.lookaheadSize) does not fit SRRCTL.BSIZEHEADER (64…960 bytes)")
            }
        }
        vmqQueues[id.rawValue] = VMQQueue(id: id, pool: pool, parameters: parameters, headerSize: headerSize)
    }

    /// QUEUE_ALLOCATION_COMPLETE: the queue's shared memory and ring, then its pool may receive.
    func completeQueueAllocation(_ id: ReceiveQueueID) throws {
        guard var q = vmqQueues[id.rawValue] else { throw NDISError.unknownQueue(id) }
        let wanted = max(1, q.parameters.numberOfBuffers)
        var descriptors = 64
        while descriptors < wanted && descriptors < 4096 { descriptors <<= 1 }
        let buffers = max(wanted, descriptors) + descriptors / 2
        try setUpReceiveRing(slot: q.pool, hardwareQueue: q.pool, queue: id, descriptors: descriptors,
                             buffers: buffers, headerSize: q.headerSize, lookahead: q.parameters.lookaheadSize)
        q.memoryAllocated = true
        vmqQueues[id.rawValue] = q
        regs.write32(IGBReg.VMOLR(q.pool), poolOffload(q.pool))
        regs.setBits(IGBReg.VFRE, 1 << UInt32(q.pool))
        mapQueueInterrupt(slot: q.pool)
    }

    /// FREE_QUEUE step 1: the pool stops receiving (VFRE), the queue is disabled (RXDCTL.ENABLE reads
    /// back 0), and the buffers still posted come back to the driver. Buffers stay mapped.
    func stopQueueDMA(_ id: ReceiveQueueID) throws {
        guard let q = vmqQueues[id.rawValue] else { throw NDISError.unknownQueue(id) }
        regs.clearBits(IGBReg.VFRE, 1 << UInt32(q.pool))
        regs.write32(IGBReg.VMOLR(q.pool), 0)
        if q.memoryAllocated {
            try disableReceiveQueue(hardwareQueue: q.pool)
            retireReceiveRing(slot: q.pool)
        }
    }

    /// FREE_QUEUE step 4: every NBL is back; clear the ring registers and free the shared memory.
    func freeQueueResources(_ id: ReceiveQueueID) throws {
        guard let q = vmqQueues[id.rawValue] else { throw NDISError.unknownQueue(id) }
        if rx[q.pool].active { try disableReceiveQueue(hardwareQueue: q.pool); retireReceiveRing(slot: q.pool) }
        regs.write32(IGBReg.RDBAL(q.pool), 0)
        regs.write32(IGBReg.RDBAH(q.pool), 0)
        regs.write32(IGBReg.RDLEN(q.pool), 0)
        regs.write32(IGBReg.SRRCTL(q.pool), 0)
        freeRingMemory(slot: q.pool)
        vmqQueues.removeValue(forKey: id.rawValue)
    }

    /// OID_RECEIVE_FILTER_QUEUE_PARAMETERS: a new affinity or name.
    func setQueueParameters(_ id: ReceiveQueueID, _ parameters: ReceiveQueueParameters) throws {
        guard var q = vmqQueues[id.rawValue] else { throw NDISError.unknownQueue(id) }
        q.parameters = parameters
        vmqQueues[id.rawValue] = q
    }

    // MARK: - Filters

    /// SET_FILTER in hardware. Anything the tables cannot run exactly is refused with
    /// `notSupported`, and the framework runs the filter in software on the default queue instead.
    func setFilter(_ filter: ReceiveFilter) throws {
        let f = try hardwareForm(of: filter)
        var proposed = hardwareFilters
        proposed[filter.id.rawValue] = f
        try checkExact(proposed, adding: f)
        hardwareFilters = proposed
        applyFilterTables(changedPool: f.pool)
    }

    /// CLEAR_FILTER in hardware.
    func clearFilter(_ filter: ReceiveFilter) throws {
        guard let f = hardwareFilters.removeValue(forKey: filter.id.rawValue) else {
            throw NDISError.unknownFilter(filter.id)
        }
        applyFilterTables(changedPool: f.pool)
    }

    /// The hardware form of an NDIS filter, or `notSupported`.
    func hardwareForm(of filter: ReceiveFilter) throws -> HardwareFilter {
        let p = filter.parameters
        guard let q = vmqQueues[p.queue.rawValue], q.memoryAllocated else {
            throw NDISError.notSupported("\(p.queue) has no VMDq pool on \(deviceName)")
        }
        var mac: MACAddress?
        var vlan: UInt16?
        for t in p.tests {
            guard t.test == .equal else { throw NDISError.notSupported("the 82576 matches fields for equality only") }
            switch t.field {
            case .macDestination where mac == nil: mac = MACAddress(bytes: t.value)
            case .vlanID where vlan == nil: vlan = UInt16(t.value[0]) << 8 | UInt16(t.value[1])
            default: throw NDISError.notSupported("the 82576 steers by destination MAC, optionally with a VLAN id; \(t.field.rawValue) runs in software")
            }
        }
        guard let mac, !mac.isMulticast else {
            throw NDISError.notSupported("a hardware filter needs a unicast destination MAC (RAH pool select)")
        }
        if let v = vlan {
            guard v != 0, !p.flags.contains(.vlanUntaggedOrZero) else {
                throw NDISError.notSupported("VLAN 0 / untagged-or-zero runs in software")
            }
        }
        return HardwareFilter(pool: q.pool, mac: mac, vlan: vlan)
    }

    /// Refuses a filter set the tables cannot run exactly.
    func checkExact(_ filters: [UInt32: HardwareFilter], adding f: HardwareFilter) throws {
        // RCTL.VFE is global: with it on, a MAC-only pool would lose tagged frames; with it off, a
        // {MAC, VLAN} pool would get every VLAN. The two kinds cannot run side by side.
        let withVLAN = filters.values.contains { $0.vlan != nil }
        let withoutVLAN = filters.values.contains { $0.vlan == nil }
        if withVLAN && withoutVLAN {
            throw NDISError.notSupported("MAC-only and MAC+VLAN filters cannot both run in hardware (RCTL.VFE is global)")
        }
        // Per pool the hardware accepts (any of its MACs) × (any of its VLANs): the set must be that product.
        let mine = filters.values.filter { $0.pool == f.pool }
        if f.vlan != nil {
            let macs = Set(mine.map(\.mac)), vlans = Set(mine.compactMap(\.vlan))
            let pairs = Set(mine.map { "\($0.mac)/\($0.vlan!)" })
            if pairs.count != macs.count * vlans.count {
                throw NDISError.notSupported("pool \(f.pool) would accept MAC/VLAN pairs no filter asked for")
            }
        }
        let macs = Set(filters.values.map(\.mac)).subtracting([permanentAddress])
        if macs.count > Self.receiveAddresses - 1 {
            throw NDISError.notSupported("all \(Self.receiveAddresses - 1) receive address entries are in use")
        }
        if Set(filters.values.compactMap(\.vlan)).count > Self.vlanPoolFilters {
            throw NDISError.notSupported("all \(Self.vlanPoolFilters) VLVF entries are in use")
        }
    }

    /// Reprograms RAR 0–23, VLVF, VFTA, RCTL.VFE and the changed pool's VMOLR from `hardwareFilters`.
    func applyFilterTables(changedPool: Int) {
        // Receive addresses: entry 0 keeps the adapter's address; a filter on it moves its pools.
        var byMAC: [MACAddress: UInt32] = [:]
        for f in hardwareFilters.values { byMAC[f.mac, default: 0] |= 1 << UInt32(f.pool) }
        writeReceiveAddress(0, permanentAddress, pools: byMAC.removeValue(forKey: permanentAddress) ?? 1)
        var free = Array(1..<Self.receiveAddresses)
        var placed: [Int: (MACAddress, UInt32)] = [:]
        // Keep entries that already hold a MAC in place, so unchanged filters never blink.
        for index in 1..<Self.receiveAddresses where rarShadow[index] != 0 {
            let raw = rarShadow[index]
            let mac = MACAddress(UInt8(truncatingIfNeeded: raw), UInt8(truncatingIfNeeded: raw >> 8),
                                 UInt8(truncatingIfNeeded: raw >> 16), UInt8(truncatingIfNeeded: raw >> 24),
                                 UInt8(truncatingIfNeeded: raw >> 32), UInt8(truncatingIfNeeded: raw >> 40))
            if let pools = byMAC.removeValue(forKey: mac) {
                placed[index] = (mac, pools)
                free.removeAll { $0 == index }
            }
        }
        for (mac, pools) in byMAC.sorted(by: { $0.key < $1.key }) {
            guard !free.isEmpty else { break }
            placed[free.removeFirst()] = (mac, pools)
        }
        for index in 1..<Self.receiveAddresses {
            if let (mac, pools) = placed[index] { writeReceiveAddress(index, mac, pools: pools) }
            else if rarShadow[index] != 0 { writeReceiveAddress(index, nil, pools: 0) }
        }
        // VLAN pool filters: each VLAN names its pools, plus the default pool so tagged broadcast
        // and tagged frames for the adapter's own address still reach the default queue.
        var byVLAN: [UInt16: UInt32] = [:]
        for f in hardwareFilters.values { if let v = f.vlan { byVLAN[v, default: 1] |= 1 << UInt32(f.pool) } }
        var vlvf = [UInt32](repeating: 0, count: Self.vlanPoolFilters)
        var unplaced = byVLAN
        for i in 0..<Self.vlanPoolFilters where vlvfShadow[i] & VLVF.VI_EN != 0 {
            let v = UInt16(vlvfShadow[i] & VLVF.VLANID_MASK)
            if let pools = unplaced.removeValue(forKey: v) {
                vlvf[i] = VLVF.VI_EN | pools << VLVF.POOLSEL_SHIFT | UInt32(v)
            }
        }
        for (v, pools) in unplaced.sorted(by: { $0.key < $1.key }) {
            guard let i = vlvf.firstIndex(of: 0) else { break }
            vlvf[i] = VLVF.VI_EN | pools << VLVF.POOLSEL_SHIFT | UInt32(v)
        }
        for i in 0..<Self.vlanPoolFilters where vlvf[i] != vlvfShadow[i] {
            regs.write32(IGBReg.VLVF(i), vlvf[i])
            vlvfShadow[i] = vlvf[i]
        }
        // With VLAN filtering on, the VFTA admits every VLAN; VLVF decides per pool.
        let vfe = vlanFilteringNeeded
        for i in 0..<128 { regs.write32(IGBReg.VFTA(i), vfe ? 0xFFFF_FFFF : 0) }
        regs.write32(IGBReg.RCTL, receiveControl(enable: running))
        for pool in 1..<Self.vmdqPools where rx[pool].active || pool == changedPool {
            regs.write32(IGBReg.VMOLR(pool), vmqQueues.values.contains { $0.pool == pool } ? poolOffload(pool) : 0)
        }
    }

    // MARK: - Packet filter and multicast

    /// OID_GEN_CURRENT_PACKET_FILTER: default pool acceptance (VMOLR0), RCTL, and the MTA.
    func setPacketFilter(_ filter: PacketFilter) throws {
        packetFilter = filter
        packetFilterSet = true
        regs.write32(IGBReg.VT_CTL, poolControl())
        for pool in 0..<Self.vmdqPools where pool == 0 || vmqQueues.values.contains(where: { $0.pool == pool }) {
            regs.write32(IGBReg.VMOLR(pool), poolOffload(pool))
        }
        regs.write32(IGBReg.RCTL, receiveControl(enable: running))
        writeMulticastTable()
    }

    /// OID_802_3_MULTICAST_LIST: the MTA hash (§8.10.14).
    func setMulticastList(_ list: [MACAddress]) throws {
        multicastList = list
        writeMulticastTable()
    }

    /// MTA with RCTL.MO = 00b: the hash is destination bits 47:36, register = hash[11:5], bit = hash[4:0].
    func writeMulticastTable() {
        var table = [UInt32](repeating: 0, count: 128)
        if packetFilter.contains(.allMulticast) || packetFilter.contains(.promiscuous) {
            // QEMU ignores RCTL.MPE and VMOLR.MPME in VMDq mode: an all-ones MTA does the same job.
            table = [UInt32](repeating: 0xFFFF_FFFF, count: 128)
        } else {
            for mac in multicastList {
                let hash = Self.multicastHash(mac)
                table[Int(hash >> 5)] |= 1 << (hash & 31)
            }
        }
        for i in 0..<128 { regs.write32(IGBReg.MTA(i), table[i]) }
    }

    /// The 12-bit MTA hash of a multicast address with RCTL.MO = 00b (§8.10.14).
    static func multicastHash(_ mac: MACAddress) -> UInt32 {
        let b = mac.array
        return ((UInt32(b[5]) << 8 | UInt32(b[4])) >> 4) & 0xFFF
    }
}
