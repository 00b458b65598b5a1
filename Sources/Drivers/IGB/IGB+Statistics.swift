import DeviceAccess
import NDIS

/// The 82576's statistics registers accumulated into 64-bit counters (§8.19). The registers clear
/// on read, so every read is added here; the watchdog reads them before they can wrap.
public struct IGBHardwareStatistics: Sendable, Equatable {
    /// GPRC, GORC, BPRC, MPRC, TPR.
    public var goodPacketsReceived: UInt64 = 0
    public var goodOctetsReceived: UInt64 = 0
    public var broadcastPacketsReceived: UInt64 = 0
    public var multicastPacketsReceived: UInt64 = 0
    public var totalPacketsReceived: UInt64 = 0
    /// GPTC, GOTC, BPTC, MPTC, TPT.
    public var goodPacketsTransmitted: UInt64 = 0
    public var goodOctetsTransmitted: UInt64 = 0
    public var broadcastPacketsTransmitted: UInt64 = 0
    public var multicastPacketsTransmitted: UInt64 = 0
    public var totalPacketsTransmitted: UInt64 = 0
    /// MPC (no packet buffer space), RNBC (no descriptor), RQDPC summed over queues.
    public var missedPackets: UInt64 = 0
    public var receiveNoBuffers: UInt64 = 0
    public var queueDrops: UInt64 = 0
    /// CRCERRS, RXERRC, RLEC, RUC, ROC, RFC, RJC.
    public var crcErrors: UInt64 = 0
    public var receiveErrors: UInt64 = 0
    public var lengthErrors: UInt64 = 0
    public var undersize: UInt64 = 0
    public var oversize: UInt64 = 0
    public var fragments: UInt64 = 0
    public var jabbers: UInt64 = 0
    public init() {}
}

extension IGBMiniport {
    /// Adds the current register values (which clear on read) to the 64-bit counters.
    func accumulateStatistics() {
        guard !removed else { return }
        func add(_ counter: inout UInt64, _ offset: Int) { counter &+= UInt64(regs.read32(offset)) }
        // The octet pairs clear when the high half is read: read low, then high.
        func add64(_ counter: inout UInt64, _ low: Int, _ high: Int) {
            let l = UInt64(regs.read32(low))
            let h = UInt64(regs.read32(high))
            counter &+= h << 32 | l
        }
        var s = statistics
        add(&s.goodPacketsReceived, IGBReg.GPRC)
        add64(&s.goodOctetsReceived, IGBReg.GORCL, IGBReg.GORCH)
        add(&s.broadcastPacketsReceived, IGBReg.BPRC)
        add(&s.multicastPacketsReceived, IGBReg.MPRC)
        add(&s.totalPacketsReceived, IGBReg.TPR)
        add(&s.goodPacketsTransmitted, IGBReg.GPTC)
        add64(&s.goodOctetsTransmitted, IGBReg.GOTCL, IGBReg.GOTCH)
        add(&s.broadcastPacketsTransmitted, IGBReg.BPTC)
        add(&s.multicastPacketsTransmitted, IGBReg.MPTC)
        add(&s.totalPacketsTransmitted, IGBReg.TPT)
        add(&s.missedPackets, IGBReg.MPC)
        add(&s.receiveNoBuffers, IGBReg.RNBC)
        for q in 0..<16 { add(&s.queueDrops, IGBReg.RQDPC(q)) }
        add(&s.crcErrors, IGBReg.CRCERRS)
        add(&s.receiveErrors, IGBReg.RXERRC)
        add(&s.lengthErrors, IGBReg.RLEC)
        add(&s.undersize, IGBReg.RUC)
        add(&s.oversize, IGBReg.ROC)
        add(&s.fragments, IGBReg.RFC)
        add(&s.jabbers, IGBReg.RJC)
        // Octet pairs read as all ones would mean a vanished device, not traffic.
        if regs.read32(IGBReg.STATUS) == 0xFFFF_FFFF { deviceGone(); return }
        statistics = s
    }

    /// The hardware counters, brought up to date.
    public var hardwareStatistics: IGBHardwareStatistics {
        accumulateStatistics()
        return statistics
    }

    /// Software counters of the ring(s) behind an NDIS queue (the default queue includes RSS rings).
    public func queueCounters(_ queue: ReceiveQueueID) -> IGBQueueCounters {
        var total = IGBQueueCounters()
        for slot in 0..<Self.ringSlots where ringMemory[slot].isEmpty == false || rx[slot].active {
            guard rx[slot].queueID == queue else { continue }
            let c = rx[slot].counters
            total.frames &+= c.frames
            total.bytes &+= c.bytes
            total.broadcast &+= c.broadcast
            total.multicast &+= c.multicast
            total.badWriteBacks &+= c.badWriteBacks
            total.noNetBufferList &+= c.noNetBufferList
            total.resourcesIndications &+= c.resourcesIndications
        }
        return total
    }

    /// Software counters of the transmit ring.
    public var transmitCounters: IGBTransmitCounters { tx.counters }

    /// Receive buffers of a queue's ring(s): posted to the hardware, free, held by protocols.
    public func bufferCounts(_ queue: ReceiveQueueID) -> (posted: Int, free: Int, held: Int, total: Int) {
        var result = (posted: 0, free: 0, held: 0, total: 0)
        for slot in 0..<Self.ringSlots where rx[slot].bufferCount > 0 && rx[slot].queueID == queue {
            result.posted += rx[slot].posted
            result.free += rx[slot].freeCount
            result.held += rx[slot].held
            result.total += rx[slot].bufferCount
        }
        return result
    }

    /// Descriptors posted to the hardware and ring size, over a queue's ring(s).
    func ringFill(_ queue: ReceiveQueueID) -> (posted: Int, size: Int) {
        var result = (posted: 0, size: 0)
        for slot in 0..<Self.ringSlots where rx[slot].bufferCount > 0 && rx[slot].queueID == queue {
            result.posted += rx[slot].posted
            result.size += rx[slot].count
        }
        return result
    }

    /// OID_GEN_STATISTICS: global counters from the hardware, per-queue counters from the rings.
    func collectStatistics() throws -> StatisticsReport {
        accumulateStatistics()
        let h = statistics
        var report = StatisticsReport()
        var badWriteBacks: UInt64 = 0
        var queueIDs: Set<UInt16> = []
        for slot in 0..<Self.ringSlots where rx[slot].bufferCount > 0 {
            queueIDs.insert(rx[slot].queueID.rawValue)
            badWriteBacks &+= rx[slot].counters.badWriteBacks
        }
        report.global.receivedFrames = h.goodPacketsReceived
        report.global.receivedBytes = h.goodOctetsReceived
        report.global.transmittedFrames = h.goodPacketsTransmitted
        report.global.transmittedBytes = h.goodOctetsTransmitted
        report.global.receiveBroadcast = h.broadcastPacketsReceived
        report.global.receiveMulticast = h.multicastPacketsReceived
        report.global.receiveDrops = h.missedPackets &+ h.receiveNoBuffers &+ h.queueDrops
        report.global.receiveErrors = h.crcErrors &+ h.receiveErrors &+ h.lengthErrors &+ badWriteBacks
        report.global.transmitErrors = tx.counters.rejected
        for id in queueIDs {
            let c = queueCounters(ReceiveQueueID(id))
            var s = Statistics()
            s.receivedFrames = c.frames
            s.receivedBytes = c.bytes
            s.receiveBroadcast = c.broadcast
            s.receiveMulticast = c.multicast
            s.receiveErrors = c.badWriteBacks
            s.receiveDrops = c.noNetBufferList
            s.resourcesIndications = c.resourcesIndications
            let ring = ringFill(ReceiveQueueID(id))
            s.ringFill = UInt64(ring.posted)
            s.ringSize = UInt64(ring.size)
            if id == 0 {
                s.transmittedFrames = tx.counters.completed
                s.transmittedBytes = tx.counters.bytes
                s.transmitErrors = tx.counters.rejected
            }
            report.queues[id] = s
        }
        return report
    }
}
