import DeviceAccess
import NDIS

// RSS (§7.1.2.8): MRQC in RSS mode with the hash fields, the 40-byte key in RSSRK, the 128-entry
// redirection table in RETA. Only while no VMQ queue is allocated (the framework enforces it).
// QEMU's igb hashes only with RXCSUM.PCSD set, which also puts the hash in the write-back.

extension IGBMiniport {
    /// Hardware queues RSS spreads over.
    static var maxRSSQueues: Int { 8 }

    /// Ring slot of RSS queue `q` (queue 0 shares the default queue's ring).
    static func rssSlot(_ q: Int) -> Int { q == 0 ? 0 : 8 + q }

    /// MRQC hash-field bits for NDIS hash types.
    static func hashFields(_ types: HashType) -> UInt32 {
        var f: UInt32 = 0
        if types.contains(.ipv4) { f |= MRQC.RSS_FIELD_IPV4 }
        if types.contains(.tcpIPv4) { f |= MRQC.RSS_FIELD_IPV4_TCP }
        if types.contains(.udpIPv4) { f |= MRQC.RSS_FIELD_IPV4_UDP }
        if types.contains(.ipv6) { f |= MRQC.RSS_FIELD_IPV6 }
        if types.contains(.ipv6Ex) { f |= MRQC.RSS_FIELD_IPV6_EX }
        if types.contains(.tcpIPv6) { f |= MRQC.RSS_FIELD_IPV6_TCP }
        if types.contains(.tcpIPv6Ex) { f |= MRQC.RSS_FIELD_IPV6_TCP_EX }
        if types.contains(.udpIPv6) { f |= MRQC.RSS_FIELD_IPV6_UDP }
        if types.contains(.udpIPv6Ex) { f |= MRQC.RSS_FIELD_IPV6_UDP_EX }
        return f
    }

    /// OID_GEN_RECEIVE_SCALE_PARAMETERS: no hash types turns RSS off (back to VMDq mode).
    func setReceiveScale(_ p: ReceiveScaleParameters) throws {
        if workerSet != nil && !p.hashTypes.isEmpty {
            throw NDISError.notSupported("\(deviceName): RSS with receive workers (its rings 9–15 have no worker); turn receiveWorkers off to use RSS")
        }
        let fields = Self.hashFields(p.hashTypes)
        if fields == 0 {
            try disableRSS()
            return
        }
        guard vmqQueues.isEmpty else { throw NDISError.invalidState("VMQ queues are allocated: free them before enabling RSS") }
        guard p.key.count == 40, !p.indirectionTable.isEmpty else {
            throw NDISError.invalidParameter("RSS needs a 40-byte key and a non-empty indirection table")
        }
        let queues = Int(p.indirectionTable.max()!) + 1
        guard queues <= Self.maxRSSQueues else {
            throw NDISError.invalidParameter("indirection table names queue \(queues - 1); the 82576 hashes to at most \(Self.maxRSSQueues) queues")
        }
        // Rings for queues 1..<queues: default-queue memory, kept until halt and reused.
        for q in 1..<max(queues, 1) {
            let slot = Self.rssSlot(q)
            if rx[slot].active { continue }
            if ringMemory[slot].isEmpty {
                try setUpReceiveRing(slot: slot, hardwareQueue: q, queue: .default,
                                     descriptors: configuration.defaultQueueDescriptors,
                                     buffers: configuration.defaultQueueBuffers, headerSize: 0)
            } else {
                try programReceiveQueue(slot: slot)
            }
            mapQueueInterrupt(slot: slot)
        }
        if rssQueueCount > queues {
            for q in queues..<rssQueueCount { try stopRSSRing(q) }
        }
        // §8.10.12: key byte 0 is the low byte of RSSRK0.
        for i in 0..<10 {
            let k = p.key[(4 * i)..<(4 * i + 4)].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
            regs.write32(IGBReg.RSSRK(i), k)
        }
        // §8.10.13: 128 one-byte entries, four per register; a shorter NDIS table repeats.
        let table = p.indirectionTable
        for i in 0..<32 {
            var v: UInt32 = 0
            for j in 0..<4 { v |= UInt32(table[(4 * i + j) % table.count] & 0x7) << (8 * UInt32(j)) }
            regs.write32(IGBReg.RETA(i), v)
        }
        regs.setBits(IGBReg.RXCSUM, RXCSUM.PCSD)
        regs.write32(IGBReg.MRQC, MRQC.MODE_RSS | fields)
        rssQueueCount = queues
        rssParameters = p
        regs.write32(IGBReg.RCTL, receiveControl(enable: running))
    }

    /// Back to VMDq mode: RSS rings stop (their memory stays until halt).
    func disableRSS() throws {
        guard rssQueueCount > 0 else { return }
        regs.write32(IGBReg.MRQC, MRQC.MODE_VMDQ)
        regs.clearBits(IGBReg.RXCSUM, RXCSUM.PCSD)
        for q in 1..<rssQueueCount { try stopRSSRing(q) }
        rssQueueCount = 0
        rssParameters = nil
        regs.write32(IGBReg.RCTL, receiveControl(enable: running))
    }

    func stopRSSRing(_ q: Int) throws {
        let slot = Self.rssSlot(q)
        guard rx[slot].active else { return }
        try disableReceiveQueue(hardwareQueue: q)
        retireReceiveRing(slot: slot)
        regs.write32(IGBReg.RDLEN(q), 0)
    }
}
