import DeviceAccess
import NDIS
import Synchronization

/// Software counters of the transmit ring.
public struct IGBTransmitCounters: Sendable, Equatable {
    public var frames: UInt64 = 0
    public var bytes: UInt64 = 0
    /// Frames completed by the device (DD written back).
    public var completed: UInt64 = 0
    /// Frames refused before reaching the ring (too short or long, too many segments, headers not
    /// in the first segment for a checksum offload).
    public var rejected: UInt64 = 0
    /// Frames copied into a bounce buffer because a segment had no device address.
    public var bounced: UInt64 = 0
    /// Context descriptors written (offload settings changed).
    public var contextDescriptors: UInt64 = 0
    /// Posted sends a stuck ring still held when pause ran: completed with REQUEST_ABORTED.
    public var abortedAtPause: UInt64 = 0
}

/// The transmit ring of queue 0.
///
///     descriptor slots:  [ head of the oldest in-flight packet … nextToUse )  owned by hardware
///                        [ nextToUse … )                                       free
///     records:           one per RS descriptor in flight, oldest first: its EOP slot and the packets
///                        it completes (those since the previous record); every batch ends with one
struct IGBTransmitRing {
    var descriptors: UnsafeMutableRawPointer?
    var descriptorIOVA: UInt64 = 0
    var count = 0
    var mask = 0
    var nextToUse = 0
    /// Free descriptors (one always stays unused so TDH == TDT means "empty").
    var free = 0
    /// Per RS descriptor in flight: EOP slot (bits 15:0), packets it completes (bits 31:16).
    var records: UnsafeMutablePointer<UInt32>?
    var recordHead = 0
    var recordCount = 0
    /// Descriptors posted since the last RS.
    var sinceReport = 0
    /// Packets posted since the last record, and the EOP slot of the last one (the batch's end
    /// gives them a record of their own).
    var unreported = 0
    var lastEOP = 0
    /// The offload context in slot IDX 0 of the device, to skip rewriting an unchanged one.
    var contextValid = false
    var contextVlanMacIP: UInt32 = 0
    var contextTucmd: UInt32 = 0
    /// One bounce buffer per descriptor slot, for frames whose memory the device cannot reach.
    var bounce: UnsafeMutableRawPointer?
    var bounceIOVA: UnsafeMutablePointer<UInt64>?
    var counters = IGBTransmitCounters()


    mutating func releaseTables() {
        records?.deallocate(); records = nil
        bounceIOVA?.deallocate(); bounceIOVA = nil
        descriptors = nil
        bounce = nil
        recordCount = 0
        recordHead = 0
        unreported = 0
        free = 0
    }

    /// Records an RS descriptor at `eop` that completes `packets` packets (records ≤ packets in
    /// flight < count: the table never overflows).
    @inline(__always)
    mutating func pushRecord(eop: Int, packets: Int) {
        // Safety: recordHead + recordCount is masked into the table of `count` entries.
        records![(recordHead &+ recordCount) & mask] = UInt32(truncatingIfNeeded: eop) | UInt32(truncatingIfNeeded: packets) << 16
        recordCount &+= 1
    }
}

/// Bytes of a transmit bounce buffer.
let igbBounceBufferSize = 2048

/// How one NBL goes on the ring.
struct IGBTransmitPlan {
    var descriptors = 0
    var bounce = false
    var context = false
    var vlanMacIP: UInt32 = 0
    var tucmd: UInt32 = 0
    var popts: UInt32 = 0
    var command: UInt32 = 0
    var status = NDISStatus.success
}

extension IGBMiniport {
    // MARK: - Setup

    /// §4.5.10: transmit ring of queue 0: base, length, head and tail, then TXDCTL.ENABLE.
    func setUpTransmitRing() throws {
        let count = configuration.transmitDescriptors
        var memory: [SharedMemory] = []
        do {
            let ring = try handle.allocateSharedMemory(queue: .default, length: count * AdvancedTxData.size,
                                                       usage: .transmit, flags: .contiguous)
            memory.append(ring)
            let bounce = try handle.allocateSharedMemory(queue: .default, length: count * igbBounceBufferSize, usage: .transmit)
            memory.append(bounce)
            transmitMemory = memory
            tx.releaseTables()
            tx.descriptors = ring.unsafeVirtualAddress
            tx.descriptorIOVA = ring.scatterGatherList[0].iova
            tx.count = count
            tx.mask = count - 1
            tx.nextToUse = 0
            tx.free = count - 1
            tx.sinceReport = 0
            tx.unreported = 0
            tx.contextValid = false
            tx.counters = IGBTransmitCounters()
            let records = UnsafeMutablePointer<UInt32>.allocate(capacity: count)
            records.initialize(repeating: 0, count: count)
            tx.records = records
            tx.bounce = bounce.unsafeVirtualAddress
            let iovas = UnsafeMutablePointer<UInt64>.allocate(capacity: count)
            for i in 0..<count { iovas[i] = bounce.region.iova(atOffset: i * igbBounceBufferSize) ?? 0 }
            tx.bounceIOVA = iovas
            // Safety: the ring block is `count * 16` bytes, just allocated.
            ring.unsafeVirtualAddress.initializeMemory(as: UInt8.self, repeating: 0, count: count * AdvancedTxData.size)
        } catch {
            for m in memory { try? handle.freeSharedMemory(m.allocationHandle) }
            transmitMemory = []
            tx.releaseTables()
            throw error
        }
        try programTransmitQueue()
    }

    /// §4.5.10: ring base and length, head and tail 0, TXDCTL.ENABLE (and wait for it).
    func programTransmitQueue() throws {
        let count = tx.count
        regs.write32(IGBReg.TXDCTL(0), 0)
        regs.write32(IGBReg.TDBAL(0), UInt32(truncatingIfNeeded: tx.descriptorIOVA))
        regs.write32(IGBReg.TDBAH(0), UInt32(truncatingIfNeeded: tx.descriptorIOVA >> 32))
        regs.write32(IGBReg.TDLEN(0), UInt32(count * AdvancedTxData.size))
        regs.write32(IGBReg.TDH(0), 0)
        regs.write32(IGBReg.TDT(0), 0)
        regs.write32(IGBReg.TXDCTL(0), XDCTL.ENABLE | 8 << XDCTL.PTHRESH_SHIFT | 1 << XDCTL.HTHRESH_SHIFT | 1 << XDCTL.WTHRESH_SHIFT)
        let on = try waitUntil(timeout: .milliseconds(10)) { () throws(IGBError) -> Bool in
            try readChecked(IGBReg.TXDCTL(0), "TXDCTL0") & XDCTL.ENABLE != 0
        }
        guard on else { throw IGBError.queueEnableTimeout(device: deviceName, queue: "TXDCTL0", enable: true) }
    }

    func freeTransmitMemory() {
        tx.releaseTables()
        for m in transmitMemory { try? handle.freeSharedMemory(m.allocationHandle) }
        transmitMemory = []
    }

    // MARK: - Hot path

    /// Reaps completions, then moves backlog NBLs onto the ring; one tail write per call.
    /// - Returns: frames completed plus frames posted.
    @discardableResult
    func transmitBacklog() -> Int {
        guard tx.descriptors != nil else { return 0 }
        var handled = reapTransmit()
        guard running, !txBacklog.isEmpty else { return handled }
        var rejected = NetBufferListChain()
        var posted = postSimpleFrames()
        while let nbl = txBacklog.first {
            let plan = planTransmit(nbl)
            if plan.descriptors == 0 {
                nbl.status = plan.status
                tx.counters.rejected &+= 1
                rejected.append(txBacklog.popFirst())
                continue
            }
            if tx.free < plan.descriptors {
                handled &+= reapTransmit()
                if tx.free < plan.descriptors { break }
            }
            postTransmit(nbl, plan)
            nbl.status = .success
            txInFlight.append(txBacklog.popFirst())
            posted &+= 1
        }
        if posted > 0 {
            // The last packet of every batch reports status, so every packet completes.
            if tx.unreported > 0 {
                let eop = tx.lastEOP
                let d = tx.descriptors! + eop &* AdvancedTxData.size
                // Safety: `eop` < count: inside the ring.
                let cmd = UInt32(littleEndian: d.load(fromByteOffset: AdvancedTxData.cmdTypeLenOffset, as: UInt32.self))
                d.storeBytes(of: (cmd | AdvancedTxData.RS).littleEndian, toByteOffset: AdvancedTxData.cmdTypeLenOffset, as: UInt32.self)
                tx.pushRecord(eop: eop, packets: tx.unreported)
                tx.unreported = 0
                tx.sinceReport = 0
            }
            // Descriptors must be visible before the device is told.
            atomicMemoryFence(ordering: .releasing)
            regs.write32(IGBReg.TDT(0), UInt32(tx.nextToUse))
            handled &+= posted
        }
        if !rejected.isEmpty { handle.sendComplete(rejected) }
        return handled
    }

    /// The fast path: posts leading backlog NBLs that are one segment the device can reach, with no
    /// VLAN tag to insert and no checksum to offload (one data descriptor each), and moves them to
    /// `txInFlight` at once. Stops at the first NBL that needs `planTransmit` or finds no descriptor.
    /// - Returns: NBLs posted.
    @inline(__always)
    func postSimpleFrames() -> Int {
        let t = hot.tx
        guard let d = t.pointee.descriptors, let recordTable = t.pointee.records else { return 0 }
        let mask = t.pointee.mask
        let maxFrame = configuration.maxFrameSize
        let reportInterval = configuration.transmitReportInterval
        let command = AdvancedTxData.DTYP_DATA | AdvancedTxData.DEXT | AdvancedTxData.IFCS | AdvancedTxData.EOP
        var slot = t.pointee.nextToUse
        var free = t.pointee.free
        var sinceReport = t.pointee.sinceReport
        var unreported = t.pointee.unreported
        var recordTail = (t.pointee.recordHead &+ t.pointee.recordCount) & mask
        var records = 0
        var bytes = 0
        let n = txBacklog.forEachPrefix { nbl in
            guard free > 0, nbl.segmentCount == 1 else { return false }
            let info = nbl.info
            guard !info.vlanPresent, info.checksum.rawValue & 0x0700 == 0 else { return false }
            let segment = nbl.segment(0)
            let offset = nbl.dataOffset
            let length = nbl.dataLength
            guard length >= 14, length <= maxFrame, segment.iova != 0, segment.address != nil,
                  offset &+ length <= Int(segment.length) else { return false }
            var cmd = command | UInt32(length)
            sinceReport &+= 1
            unreported &+= 1
            if sinceReport >= reportInterval {
                cmd |= AdvancedTxData.RS
                // Safety: recordTail ≤ mask; slot ≤ mask < 65 536 (no range check needed).
                recordTable[recordTail] = UInt32(truncatingIfNeeded: slot) | UInt32(truncatingIfNeeded: unreported) << 16
                recordTail = (recordTail &+ 1) & mask
                records &+= 1
                unreported = 0
                sinceReport = 0
            }
            writeData(d, slot, address: segment.iova &+ UInt64(offset), command: cmd,
                      olinfo: (UInt32(length) << AdvancedTxData.PAYLEN_SHIFT).littleEndian)
            slot = (slot &+ 1) & mask
            free &-= 1
            bytes &+= length
            nbl.status = .success
            return true
        }
        guard n > 0 else { return 0 }
        t.pointee.nextToUse = slot
        t.pointee.free = free
        t.pointee.sinceReport = sinceReport
        t.pointee.unreported = unreported
        t.pointee.lastEOP = (slot &- 1) & mask
        t.pointee.recordCount &+= records
        t.pointee.counters.frames &+= UInt64(n)
        t.pointee.counters.bytes &+= UInt64(bytes)
        txBacklog.moveFirst(n, to: &txInFlight)
        return n
    }

    /// Decides descriptors, offloads and bounce for one NBL. Seeds the checksum fields the device
    /// completes (pseudo-header sum for TCP/UDP, zero for the IPv4 header checksum).
    /// - Returns: a plan with `descriptors == 0` and a status if the NBL cannot be sent.
    @inline(__always)
    func planTransmit(_ nbl: NetBufferList) -> IGBTransmitPlan {
        var plan = IGBTransmitPlan()
        let total = nbl.dataLength
        guard total >= 14, total <= configuration.maxFrameSize else {
            plan.status = .invalidLength
            return plan
        }
        // Count the segments the data spans and check the device can reach each.
        let (firstIndex, firstOffset) = nbl.currentSegment
        var segmentsUsed = 0
        var remaining = total
        var reachable = true
        var index = firstIndex
        var offset = firstOffset
        while remaining > 0 && index < nbl.segmentCount {
            let segment = nbl.segment(index)
            let bytes = min(Int(segment.length) - offset, remaining)
            if bytes > 0 {
                if segment.iova == 0 || segment.address == nil { reachable = false }
                segmentsUsed &+= 1
                remaining &-= bytes
            }
            index &+= 1
            offset = 0
        }
        guard remaining == 0 else {
            plan.status = .invalidLength
            return plan
        }
        if !reachable {
            guard total <= igbBounceBufferSize else {
                plan.status = .invalidParameter
                return plan
            }
            plan.bounce = true
        }
        plan.command = AdvancedTxData.DTYP_DATA | AdvancedTxData.DEXT | AdvancedTxData.IFCS
        let info = nbl.info
        if info.vlanPresent {
            let tci = UInt32(info.vlanID & 0x0FFF) | UInt32(info.userPriority & 0x7) << 13
            plan.vlanMacIP |= tci << AdvancedTxContext.VLAN_SHIFT
            plan.command |= AdvancedTxData.VLE
            plan.context = true
        }
        let wanted = info.checksum.intersection([.transmitIPv4, .transmitTCP, .transmitUDP])
        if !wanted.isEmpty {
            let first = nbl.segment(firstIndex)
            guard let base = first.address else {
                plan.status = .invalidParameter
                return plan
            }
            if !seedChecksums(base + firstOffset, available: Int(first.length) - firstOffset, length: total,
                              wanted: wanted, plan: &plan) {
                plan.status = .notSupported
                return plan
            }
        }
        plan.descriptors = (plan.bounce ? 1 : segmentsUsed) + (plan.context ? 1 : 0)
        return plan
    }

    /// Parses Ethernet/IP/L4 headers in place (they must lie in the first segment) and prepares the
    /// checksum offload: context fields, POPTS, and the seeded checksum fields (§7.2.5).
    /// - Returns: false if the headers are not all in `available` bytes.
    @inline(__always)
    func seedChecksums(_ frame: UnsafeMutableRawPointer, available: Int, length: Int, wanted: ChecksumInfo,
                       plan: inout IGBTransmitPlan) -> Bool {
        func be16(_ at: Int) -> UInt16 { UInt16(frame.load(fromByteOffset: at, as: UInt8.self)) << 8 | UInt16(frame.load(fromByteOffset: at + 1, as: UInt8.self)) }
        func store16(_ at: Int, _ v: UInt16) {
            frame.storeBytes(of: UInt8(v >> 8), toByteOffset: at, as: UInt8.self)
            frame.storeBytes(of: UInt8(v & 0xFF), toByteOffset: at + 1, as: UInt8.self)
        }
        guard available >= 14 else { return false }
        var l2 = 14
        var etherType = be16(12)
        if etherType == 0x8100 {
            guard available >= 18 else { return false }
            l2 = 18
            etherType = be16(16)
        }
        var ipLength = 0
        var proto: UInt8 = 0
        var l4Length = 0
        var pseudo: UInt32 = 0
        var ipv4 = false
        switch etherType {
        case 0x0800:
            guard available >= l2 + 20 else { return false }
            let ihl = Int(frame.load(fromByteOffset: l2, as: UInt8.self) & 0x0F) * 4
            guard ihl >= 20, available >= l2 + ihl else { return false }
            ipv4 = true
            ipLength = ihl
            proto = frame.load(fromByteOffset: l2 + 9, as: UInt8.self)
            l4Length = Int(be16(l2 + 2)) - ihl
            if wanted.contains(.transmitIPv4) {
                store16(l2 + 10, 0)
                plan.popts |= AdvancedTxData.POPTS_IXSM
            }
            var i = 12
            while i < 20 { pseudo &+= UInt32(be16(l2 + i)); i += 2 }
        case 0x86DD:
            guard available >= l2 + 40 else { return false }
            ipLength = 40
            proto = frame.load(fromByteOffset: l2 + 6, as: UInt8.self)
            l4Length = Int(be16(l2 + 4))
            var i = 8
            while i < 40 { pseudo &+= UInt32(be16(l2 + i)); i += 2 }
        default:
            // Not IP: nothing to offload; send as is.
            return true
        }
        let tcp = proto == 6 && wanted.contains(.transmitTCP)
        let udp = proto == 17 && wanted.contains(.transmitUDP)
        if (tcp || udp) && l4Length > 0 && l2 + ipLength + l4Length <= length {
            let l4 = l2 + ipLength
            let field = l4 + (tcp ? 16 : 6)
            guard available >= field + 2 else { return false }
            pseudo &+= UInt32(proto) &+ UInt32(l4Length)
            while pseudo > 0xFFFF { pseudo = (pseudo & 0xFFFF) &+ (pseudo >> 16) }
            // Intel parts sum from the L4 header on and expect the pseudo-header sum in the field.
            store16(field, UInt16(pseudo))
            plan.popts |= AdvancedTxData.POPTS_TXSM
        }
        if plan.popts != 0 {
            plan.context = true
            plan.vlanMacIP |= UInt32(l2) << AdvancedTxContext.MACLEN_SHIFT | UInt32(ipLength)
            plan.tucmd = (ipv4 ? AdvancedTxContext.TUCMD_IPV4 : 0) | (tcp ? AdvancedTxContext.TUCMD_L4T_TCP : AdvancedTxContext.TUCMD_L4T_UDP)
        }
        return true
    }

    /// Writes the context (if changed) and data descriptors of one NBL.
    @inline(__always)
    func postTransmit(_ nbl: NetBufferList, _ plan: IGBTransmitPlan) {
        let d = tx.descriptors!
        let mask = tx.mask
        var slot = tx.nextToUse
        var used = 0
        if plan.context && !(tx.contextValid && tx.contextVlanMacIP == plan.vlanMacIP && tx.contextTucmd == plan.tucmd) {
            let c = d + slot &* AdvancedTxData.size
            // Safety: `slot` < count: inside the ring.
            c.storeBytes(of: plan.vlanMacIP.littleEndian, toByteOffset: AdvancedTxContext.vlanMacIPLensOffset, as: UInt32.self)
            c.storeBytes(of: UInt32(0), toByteOffset: AdvancedTxContext.seqnumSeedOffset, as: UInt32.self)
            let type = plan.tucmd | AdvancedTxData.DTYP_CONTEXT | AdvancedTxData.DEXT
            c.storeBytes(of: type.littleEndian, toByteOffset: AdvancedTxContext.typeTucmdOffset, as: UInt32.self)
            c.storeBytes(of: UInt32(0), toByteOffset: AdvancedTxContext.mssL4LenIdxOffset, as: UInt32.self)
            tx.contextValid = true
            tx.contextVlanMacIP = plan.vlanMacIP
            tx.contextTucmd = plan.tucmd
            tx.counters.contextDescriptors &+= 1
            slot = (slot &+ 1) & mask
            used &+= 1
        }
        let total = nbl.dataLength
        let olinfo = (UInt32(total) << AdvancedTxData.PAYLEN_SHIFT | plan.popts).littleEndian
        var eop = slot
        if plan.bounce {
            let buffer = tx.bounce! + slot &* igbBounceBufferSize
            nbl.copyData(into: UnsafeMutableRawBufferPointer(start: buffer, count: igbBounceBufferSize))
            writeData(d, slot, address: tx.bounceIOVA![slot], command: plan.command | UInt32(total) | AdvancedTxData.EOP, olinfo: olinfo)
            eop = slot
            slot = (slot &+ 1) & mask
            used &+= 1
            tx.counters.bounced &+= 1
        } else {
            var (index, offset) = nbl.currentSegment
            var remaining = total
            while remaining > 0 {
                let segment = nbl.segment(index)
                let bytes = min(Int(segment.length) - offset, remaining)
                if bytes > 0 {
                    remaining &-= bytes
                    var command = plan.command | UInt32(bytes)
                    if remaining == 0 { command |= AdvancedTxData.EOP }
                    writeData(d, slot, address: segment.iova &+ UInt64(offset), command: command, olinfo: olinfo)
                    eop = slot
                    slot = (slot &+ 1) & mask
                    used &+= 1
                }
                index &+= 1
                offset = 0
            }
        }
        tx.sinceReport &+= used
        tx.unreported &+= 1
        tx.lastEOP = eop
        if tx.sinceReport >= configuration.transmitReportInterval {
            let e = d + eop &* AdvancedTxData.size
            // Safety: `eop` < count: inside the ring.
            let cmd = UInt32(littleEndian: e.load(fromByteOffset: AdvancedTxData.cmdTypeLenOffset, as: UInt32.self))
            e.storeBytes(of: (cmd | AdvancedTxData.RS).littleEndian, toByteOffset: AdvancedTxData.cmdTypeLenOffset, as: UInt32.self)
            tx.pushRecord(eop: eop, packets: tx.unreported)
            tx.unreported = 0
            tx.sinceReport = 0
        }
        tx.nextToUse = slot
        tx.free &-= used
        tx.counters.frames &+= 1
        tx.counters.bytes &+= UInt64(total)
    }

    @inline(__always)
    func writeData(_ d: UnsafeMutableRawPointer, _ slot: Int, address: UInt64, command: UInt32, olinfo: UInt32) {
        let p = d + slot &* AdvancedTxData.size
        // Safety: `slot` < count: inside the ring. olinfo's STA bits are 0, which clears an old DD.
        p.storeBytes(of: address.littleEndian, toByteOffset: AdvancedTxData.addressOffset, as: UInt64.self)
        p.storeBytes(of: command.littleEndian, toByteOffset: AdvancedTxData.cmdTypeLenOffset, as: UInt32.self)
        p.storeBytes(of: olinfo, toByteOffset: AdvancedTxData.olinfoStatusOffset, as: UInt32.self)
    }

    /// Completes every packet up to the newest RS descriptor the device marked done (DD).
    /// - Returns: packets completed.
    @discardableResult
    func reapTransmit() -> Int {
        let t = hot.tx
        guard let d = t.pointee.descriptors, let records = t.pointee.records else { return 0 }
        var done = NetBufferListChain()
        var n = 0
        let mask = t.pointee.mask
        while t.pointee.recordCount > 0 {
            // The oldest RS descriptor: its DD says its packets and everything before are done.
            let idx = t.pointee.recordHead
            let record = records[idx]
            let eop = Int(record & 0xFFFF)
            // Safety: `eop` < count: inside the ring.
            let status = UInt32(littleEndian: d.load(fromByteOffset: eop &* AdvancedTxData.size &+ AdvancedTxData.olinfoStatusOffset, as: UInt32.self))
            if status & AdvancedTxData.DD == 0 { break }
            atomicMemoryFence(ordering: .acquiring)
            // The record's packets are done; the descriptors still in flight are those after eop.
            let completed = Int(record >> 16)
            t.pointee.recordHead = (idx &+ 1) & mask
            t.pointee.recordCount &-= 1
            t.pointee.free = t.pointee.count &- 1 &- ((t.pointee.nextToUse &- (eop &+ 1)) & mask)
            txInFlight.moveFirst(completed, to: &done)
            n &+= completed
        }
        if n > 0 {
            t.pointee.counters.completed &+= UInt64(n)
            handle.sendComplete(done)
        }
        return n
    }

    /// Waits (bounded) for in-flight sends to complete.
    func drainTransmit(timeout: Duration) {
        guard tx.recordCount > 0 else { return }
        _ = try? waitUntil(timeout: timeout, interval: .microseconds(100)) { () throws(IGBError) -> Bool in
            reapTransmit()
            return tx.recordCount == 0
        }
    }

    /// Pause with sends still posted after the drain (a stuck ring): NDIS completes every send
    /// before pause completes, so the queue is disabled first (TXDCTL.ENABLE cleared and read back
    /// 0: the device fetches no more descriptors or buffers), the posted sends complete with
    /// NDIS_STATUS_REQUEST_ABORTED, and the empty ring is programmed again for the next restart.
    func abortStuckTransmit() {
        guard !txInFlight.isEmpty || tx.recordCount > 0, tx.descriptors != nil else { return }
        regs.write32(IGBReg.TXDCTL(0), 0)
        _ = try? waitUntil(timeout: .milliseconds(10)) { () throws(IGBError) -> Bool in
            try readChecked(IGBReg.TXDCTL(0), "TXDCTL0") & XDCTL.ENABLE == 0
        }
        tx.counters.abortedAtPause &+= UInt64(txInFlight.count)
        abortInFlight(status: .requestAborted)
        // Safety: the ring block is `count * 16` bytes; the device no longer reads it.
        tx.descriptors!.initializeMemory(as: UInt8.self, repeating: 0, count: tx.count * AdvancedTxData.size)
        try? programTransmitQueue()
    }

    /// Completes every NBL still waiting for descriptors with `status`.
    func abortBacklog(status: NDISStatus) {
        guard !txBacklog.isEmpty else { return }
        var chain = NetBufferListChain()
        swap(&chain, &txBacklog)
        chain.forEach { $0.status = status }
        handle.sendComplete(chain)
    }

    /// Completes every posted NBL with `status` and forgets the ring's contents (halt, removal:
    /// the device no longer reads the ring).
    func abortInFlight(status: NDISStatus) {
        tx.recordCount = 0
        tx.recordHead = 0
        tx.unreported = 0
        tx.nextToUse = 0
        tx.free = max(0, tx.count - 1)
        tx.sinceReport = 0
        tx.contextValid = false
        guard !txInFlight.isEmpty else { return }
        var chain = NetBufferListChain()
        swap(&chain, &txInFlight)
        chain.forEach { $0.status = status }
        handle.sendComplete(chain)
    }
}
