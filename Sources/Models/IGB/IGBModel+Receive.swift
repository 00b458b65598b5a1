import ModelKit
import Glibc
import Synchronization

/// Per-frame results of the receive filters that every queue copy shares.
struct RxMeta {
    /// Status bits for the EOP descriptor (checksum results).
    var status: UInt32 = 0
    /// Error bits (IPE, L4E).
    var errors: UInt32 = 0
    /// dword 0 low half: RSS type (3:0) and packet type.
    var pktInfo: UInt32 = 0
    /// dword 1: RSS hash, or the IPv4 identification when there is no hash.
    var hiDword: UInt32 = 0
}

extension IGBModel {
    enum RxOutcome { case done, held }

    /// Receives frames waiting in the FIFO until it is empty or the head frame has to wait.
    func receivePending() {
        let overflowed = fifo.takeOverflows()
        if overflowed > 0 {
            wireCounters.notReceived += overflowed
            if !deviations.contains(.noDropCounters) { count(Reg.MPC, UInt32(truncatingIfNeeded: overflowed)) }
        }
        while let (p, length) = fifo.peek() {
            if receive(p, length) == .held { return }
            fifo.pop()
            headCountedAsBlocked = false
        }
    }

    // MARK: receive pipeline (§7.1)

    func receive(_ frame: UnsafeMutableRawPointer, _ wireLength: Int) -> RxOutcome {
        // Without bus mastering the device cannot DMA; frames stay in the packet buffer.
        guard busMaster else { return .held }
        let rctl = reg(Reg.RCTL)
        if !linkUp || rctl & Bit.RCTL_EN == 0 {
            if deviations.contains(.holdFramesWhenBlocked) { return .held }
            wireCounters.notReceived += 1
            return .done
        }
        if deviations.contains(.holdFramesWhenBlocked) && !anyEnabledQueueHasRoom() { return .held }

        var length = wireLength
        if length < 60 {
            // Short frames arrive padded to the Ethernet minimum (the sender's MAC pads).
            memset(frame + length, 0, 60 - length)
            length = 60
            if deviations.contains(.statisticsPerCopy) { count(Reg.RUC) }
        }
        let info = parseFrame(frame, length: length, vet: UInt16(truncatingIfNeeded: reg(Reg.VET)))

        // Global VLAN filter (§7.1.1.2): a tagged frame needs its VID in VFTA when RCTL.VFE is set.
        if rctl & Bit.RCTL_VFE != 0 && info.tagged {
            let vid = Int(info.tci & 0xFFF)
            if reg(Reg.VFTA + 4 * (vid >> 5)) & (1 << UInt32(vid & 31)) == 0 { return filtered() }
        }

        let mrqc = reg(Reg.MRQC)
        let mode = mrqc & 7
        let pcsdOK = !deviations.contains(.rssRequiresPCSD) || reg(Reg.RXCSUM) & Bit.RXCSUM_PCSD != 0
        var meta = RxMeta()
        var queues: UInt32
        var rssHash: UInt32 = 0
        var rssType: UInt32 = 0
        if mode & 1 != 0 {
            // VMDq (MRQC.MRQE 011, or 101 with RSS inside each pool) (§7.10.3).
            let pools = vmdqPools(frame, info, length, rctl)
            if pools == 0 { return filtered() }
            queues = pools
            if mode == 5 && pcsdOK && !deviations.contains(.noRSSInVMDq) {
                (rssHash, rssType) = rss(frame, info, mrqc)
                if rssType != 0 {
                    // Two queues per pool: RETA bit 3 picks queue pool + 8 for pools with VMOLR.RSSE.
                    let entry = retaEntry(rssHash)
                    var p = pools
                    while p != 0 {
                        let pool = p.trailingZeroBitCount
                        p &= p - 1
                        if entry & 0x8 != 0 && reg(Reg.VMOLR(pool)) & Bit.VMOLR_RSSE != 0 {
                            queues = (queues & ~(1 << UInt32(pool))) | 1 << UInt32(pool + 8)
                        }
                    }
                }
            }
        } else {
            guard l2Accept(frame, rctl) else { return filtered() }
            let limit = rctl & Bit.RCTL_LPE != 0 ? Int(reg(Reg.RLPML) & 0x3FFF) : 1518 + (info.tagged ? 4 : 0)
            if length + 4 > limit && rctl & Bit.RCTL_SBP == 0 {
                count(Reg.ROC)
                return filtered()
            }
            queues = 1
            if mode == 2 && pcsdOK {
                (rssHash, rssType) = rss(frame, info, mrqc)
                queues = 1 << UInt32(retaEntry(rssHash) & 0xF)
            }
        }

        // Which of the chosen queues can take the frame now.
        let secrc = rctl & Bit.RCTL_SECRC != 0
        let outLength = length + (secrc ? 0 : 4)
        var deliver: UInt32 = 0
        var blocked = false
        var q = queues
        while q != 0 {
            let queue = q.trailingZeroBitCount
            q &= q - 1
            let bit = UInt32(1) << UInt32(queue)
            guard reg(Reg.rxq(queue, Reg.RXDCTL)) & Bit.QUEUE_ENABLE != 0 else { continue }
            if rxStuck & bit != 0 { continue }
            if freeDescriptors(queue) >= descriptorsNeeded(queue, outLength) {
                deliver |= bit
            } else if deviations.contains(.noDropCounters) {
                raiseCause(Bit.ICR_RXO)   // QEMU: dropped for this queue, RXO only
            } else if reg(Reg.rxq(queue, Reg.SRRCTL)) & Bit.SRRCTL_DROP_EN != 0 {
                count(Reg.rxq(queue, Reg.RQDPC))
                count(Reg.RNBC)
            } else {
                blocked = true
            }
        }
        if blocked {
            // No descriptors and DROP_EN clear: the frame waits in the packet buffer (§7.1.4.?).
            if !headCountedAsBlocked {
                headCountedAsBlocked = true
                count(Reg.RNBC)
                raiseCause(Bit.ICR_RXO)
            }
            return .held
        }
        if deliver == 0 {
            wireCounters.notReceived += 1
            return .done
        }

        // Offload results shared by every copy (§7.1.5 / §7.1.11).
        let rxcsum = reg(Reg.RXCSUM)
        if info.isIPv4 {
            meta.pktInfo |= RxStatus.PKT_IPV4
            if rxcsum & Bit.RXCSUM_IPOFLD != 0 {
                meta.status |= RxStatus.IPCS
                if onesComplementSum(frame + info.l3Offset, info.l3HeaderLength) != 0xFFFF { meta.errors |= RxStatus.IPE }
            }
        } else if info.isIPv6 {
            meta.pktInfo |= RxStatus.PKT_IPV6
        }
        if info.isTCP { meta.pktInfo |= RxStatus.PKT_TCP }
        if info.isUDP { meta.pktInfo |= RxStatus.PKT_UDP }
        if info.l4Protocol == 132 && (info.isIPv4 || info.isIPv6) { meta.pktInfo |= RxStatus.PKT_SCTP }
        if (info.isTCP || info.isUDP) && rxcsum & Bit.RXCSUM_TUOFLD != 0 {
            let l4Length = info.ipEnd - info.l4Offset
            let checksumField = load16BE(frame, info.l4Offset + (info.isTCP ? 16 : 6))
            if !(info.isUDP && checksumField == 0) {
                meta.status |= RxStatus.L4CS | (info.isUDP ? RxStatus.UDPCS : 0)
                let sum = onesComplementSum(frame + info.l4Offset, l4Length, initial: pseudoHeaderSum(frame, info, l4Length: l4Length))
                if foldChecksum(sum) != 0 { meta.errors |= RxStatus.L4E }
            }
        }
        meta.pktInfo |= rssType
        if rssType != 0 {
            meta.hiDword = rssHash
        } else if info.isIPv4 {
            meta.hiDword = UInt32(load16BE(frame, info.l3Offset + 4))
        }

        // FCS kept in host memory when SECRC is clear (§8.10.1): the CRC of the frame as received.
        if !secrc {
            let fcs: UInt32 = deviations.contains(.zeroFCS) ? 0 : ethernetCRC(frame, length)
            frame.storeBytes(of: fcs.littleEndian, toByteOffset: length, as: UInt32.self)
        }

        // Queues that keep the tag first, then strip it in place once for the queues that strip it.
        var stripMask: UInt32 = 0
        if info.tagged {
            var d = deliver
            while d != 0 {
                let queue = d.trailingZeroBitCount
                d &= d - 1
                let strip = mode & 1 != 0
                    ? reg(Reg.VMOLR(queue & 7)) & Bit.VMOLR_STRVLAN != 0
                    : reg(Reg.CTRL) & Bit.CTRL_VME != 0
                if strip { stripMask |= 1 << UInt32(queue) }
            }
        }
        var copies: UInt32 = 0
        var d = deliver & ~stripMask
        while d != 0 {
            let queue = d.trailingZeroBitCount
            d &= d - 1
            if writeFrame(queue: queue, data: frame, length: outLength, info: info, shift: 0, meta: meta, vlan: nil) { copies += 1 }
        }
        if stripMask != 0 {
            // Safety: the slot holds at least `outLength` bytes; memmove handles the overlap.
            memmove(frame + 4, frame, 12)
            var stripped = meta
            stripped.status |= RxStatus.VP
            d = stripMask
            while d != 0 {
                let queue = d.trailingZeroBitCount
                d &= d - 1
                if writeFrame(queue: queue, data: frame + 4, length: outLength - 4, info: info, shift: 4, meta: stripped, vlan: info.tci) {
                    copies += 1
                }
            }
        }
        if copies > 0 { countReceived(frame, length: length, copies: deviations.contains(.statisticsPerCopy) ? copies : 1) }
        return .done
    }

    private func filtered() -> RxOutcome {
        wireCounters.filtered += 1
        return .done
    }

    private func countReceived(_ frame: UnsafeRawPointer, length: Int, copies: UInt32) {
        let withFCS = length + 4
        count(Reg.GPRC, copies)
        count(Reg.TPR, copies)
        count64(Reg.GORCL, withFCS * Int(copies))
        count64(Reg.TORL, withFCS * Int(copies))
        count(Self.sizeBucket(Reg.PRC64, withFCS), copies)
        let first = frame.load(as: UInt8.self)
        if first & 1 != 0 {
            if isBroadcast(frame) { count(Reg.BPRC, copies) } else { count(Reg.MPRC, copies) }
        }
    }

    // MARK: address filters (§7.1.1)

    @inline(__always) func isBroadcast(_ frame: UnsafeRawPointer) -> Bool {
        frame.loadUnaligned(as: UInt32.self) == 0xFFFF_FFFF && frame.loadUnaligned(fromByteOffset: 4, as: UInt16.self) == 0xFFFF
    }

    /// Exact-match filters RAR[0..23] with AV: whether one matched, and the union of their POOLSEL bits.
    func exactMatch(_ frame: UnsafeRawPointer) -> (matched: Bool, pools: UInt32) {
        let low = UInt32(littleEndian: frame.loadUnaligned(as: UInt32.self))
        let high = UInt32(UInt16(littleEndian: frame.loadUnaligned(fromByteOffset: 4, as: UInt16.self)))
        var matched = false
        var pools: UInt32 = 0
        for n in 0..<24 {
            let rah = reg(Reg.RAH(n))
            if rah & Bit.RAH_AV != 0 && rah & 0xFFFF == high && reg(Reg.RAL(n)) == low {
                matched = true
                pools |= (rah >> Bit.RAH_POOLSEL_SHIFT) & 0xFF
            }
        }
        return (matched, pools)
    }

    /// The 12-bit hash of MTA/UTA selected by RCTL.MO (§7.1.1.1).
    func hashHit(_ frame: UnsafeRawPointer, table: Int, rctl: UInt32) -> Bool {
        let b4 = UInt32(frame.load(fromByteOffset: 4, as: UInt8.self))
        let b5 = UInt32(frame.load(fromByteOffset: 5, as: UInt8.self))
        let hash: UInt32
        switch (rctl >> Bit.RCTL_MO_SHIFT) & 3 {
        case 0: hash = (b4 >> 4) | (b5 << 4)
        case 1: hash = (b4 >> 3) | (b5 << 5)
        case 2: hash = (b4 >> 2) | (b5 << 6)
        default: hash = b4 | (b5 << 8)
        }
        let h = hash & 0xFFF
        return reg(table + 4 * Int(h >> 5)) & (1 << (h & 31)) != 0
    }

    /// Non-VMDq acceptance: broadcast (BAM), multicast (MPE, exact, MTA), unicast (UPE, exact).
    func l2Accept(_ frame: UnsafeRawPointer, _ rctl: UInt32) -> Bool {
        if isBroadcast(frame) { return rctl & Bit.RCTL_BAM != 0 }
        if frame.load(as: UInt8.self) & 1 != 0 {
            return rctl & Bit.RCTL_MPE != 0 || exactMatch(frame).matched || hashHit(frame, table: Reg.MTA, rctl: rctl)
        }
        return rctl & Bit.RCTL_UPE != 0 || exactMatch(frame).matched
    }

    /// Pools (bit n = pool n) of a frame in VMDq mode (§7.10.3.3–7.10.3.5).
    func vmdqPools(_ frame: UnsafeRawPointer, _ info: FrameInfo, _ length: Int, _ rctl: UInt32) -> UInt32 {
        let simplified = deviations.contains(.vmdqSimplifiedFilters)
        let vtctl = reg(Reg.VT_CTL)
        let broadcast = isBroadcast(frame)
        let multicast = !broadcast && frame.load(as: UInt8.self) & 1 != 0
        var pools: UInt32 = 0
        var vlanPools: UInt32 = 0
        if info.tagged {
            let vid = UInt32(info.tci & 0xFFF)
            for n in 0..<32 {
                let vlvf = reg(Reg.VLVF(n))
                if vlvf & Bit.VLVF_VI_EN != 0 && vlvf & Bit.VLVF_VLANID_MASK == vid {
                    vlanPools |= (vlvf >> Bit.VLVF_POOLSEL_SHIFT) & 0xFF
                }
            }
        }
        if broadcast {
            pools = poolsWith(Bit.VMOLR_BAM)
        } else if !simplified && vtctl & Bit.VT_CTL_IGNORE_MAC != 0 && info.tagged {
            pools = vlanPools   // IGNORE_MAC: pools by VLAN only
        } else {
            let exact = exactMatch(frame)
            if exact.matched {
                pools = exact.pools
            } else if multicast {
                if hashHit(frame, table: Reg.MTA, rctl: rctl) { pools |= poolsWith(Bit.VMOLR_ROMPE) }
                if !simplified {
                    pools |= poolsWith(Bit.VMOLR_MPME)
                    if rctl & Bit.RCTL_MPE != 0 { pools = 0xFF }
                }
            } else {
                if hashHit(frame, table: Reg.UTA, rctl: rctl) {
                    pools |= poolsWith(simplified ? Bit.VMOLR_ROMPE : Bit.VMOLR_ROPE)
                }
                if !simplified && rctl & Bit.RCTL_UPE != 0 { pools = 0xFF }
            }
        }
        // VLAN membership: tagged frames only reach pools of their VLAN, untagged only AUPE pools.
        if info.tagged {
            if rctl & Bit.RCTL_VFE != 0 { pools &= vlanPools }
        } else if !deviations.contains(.aupeOnlyWithVFE) || rctl & Bit.RCTL_VFE != 0 {
            pools &= poolsWith(Bit.VMOLR_AUPE)
        }
        if pools == 0 && !broadcast && !multicast && vtctl & Bit.VT_CTL_DIS_DEF_POOL == 0 {
            pools = 1 << ((vtctl >> Bit.VT_CTL_DEF_PL_SHIFT) & 7)
        }
        pools &= reg(Reg.VFRE) & 0xFF
        // Per-pool long packet limit (VMOLR.LPE / RLPML).
        var p = pools
        var fits: UInt32 = 0
        while p != 0 {
            let pool = p.trailingZeroBitCount
            p &= p - 1
            let vmolr = reg(Reg.VMOLR(pool))
            let limit = vmolr & Bit.VMOLR_LPE != 0 ? Int(vmolr & Bit.VMOLR_RLPML_MASK) : 1518 + (info.tagged ? 4 : 0)
            if length + 4 <= limit { fits |= 1 << UInt32(pool) }
        }
        if fits == 0 && pools != 0 { count(Reg.ROC) }
        return fits
    }

    @inline(__always) func poolsWith(_ bit: UInt32) -> UInt32 {
        var pools: UInt32 = 0
        for n in 0..<8 where reg(Reg.VMOLR(n)) & bit != 0 { pools |= 1 << UInt32(n) }
        return pools
    }

    // MARK: RSS (§7.1.1.7)

    @inline(__always) func retaEntry(_ hash: UInt32) -> UInt8 {
        // RETA holds 128 one-byte entries, entry i in byte i mod 4 of RETA[i / 4] (little-endian host).
        UnsafeRawPointer(regs + (Reg.RETA >> 2)).load(fromByteOffset: Int(hash & 0x7F), as: UInt8.self)
    }

    /// The RSS hash and type (0 = no hash) of a frame for the MRQC field enables.
    func rss(_ frame: UnsafeRawPointer, _ info: FrameInfo, _ mrqc: UInt32) -> (UInt32, UInt32) {
        var type: UInt32 = 0
        var withPorts = false
        if info.isIPv4 {
            if info.isTCP && mrqc & Bit.MRQC_RSS_FIELD_IPV4_TCP != 0 { type = 1; withPorts = true }
            else if info.isUDP && mrqc & Bit.MRQC_RSS_FIELD_IPV4_UDP != 0 { type = 7; withPorts = true }
            else if mrqc & Bit.MRQC_RSS_FIELD_IPV4 != 0 { type = 2 }
        } else if info.isIPv6 && !info.ipv6Extension {
            if info.isTCP && mrqc & Bit.MRQC_RSS_FIELD_IPV6_TCP != 0 { type = 3; withPorts = true }
            else if info.isTCP && mrqc & Bit.MRQC_RSS_FIELD_IPV6_TCP_EX != 0 { type = 6; withPorts = true }
            else if info.isUDP && mrqc & Bit.MRQC_RSS_FIELD_IPV6_UDP != 0 { type = 8; withPorts = true }
            else if mrqc & Bit.MRQC_RSS_FIELD_IPV6 != 0 { type = 5 }
            else if mrqc & Bit.MRQC_RSS_FIELD_IPV6_EX != 0 { type = 4 }
        }
        guard type != 0 else { return (0, 0) }
        // Input: source address, destination address, then source and destination port.
        let addressBytes = info.isIPv4 ? 8 : 32
        let addressOffset = info.l3Offset + (info.isIPv4 ? 12 : 8)
        let key = UnsafeRawPointer(regs + (Reg.RSSRK >> 2))   // RSSRK[0] bits 7:0 are key byte 0
        let hash = withUnsafeTemporaryAllocation(byteCount: 36, alignment: 4) { buffer -> UInt32 in
            let input = buffer.baseAddress!
            input.copyMemory(from: frame + addressOffset, byteCount: addressBytes)
            var n = addressBytes
            if withPorts {
                (input + n).copyMemory(from: frame + info.l4Offset, byteCount: 4)
                n += 4
            }
            return toeplitzHash(key: key, input: input, length: n)
        }
        return (hash, type)
    }

    // MARK: descriptor rings (§7.1.3–7.1.6)

    @inline(__always) func freeDescriptors(_ q: Int) -> Int {
        let count = Int(reg(Reg.rxq(q, Reg.RDLEN)) & 0xFFF80) / 16
        guard count > 0 else { return 0 }
        let head = Int(reg(Reg.rxq(q, Reg.RDH)) & 0xFFFF)
        let tail = Int(reg(Reg.rxq(q, Reg.RDT)) & 0xFFFF)
        guard head < count, tail < count else { return 0 }
        // Hardware owns [RDH, RDT): head == tail means no descriptor is available.
        return (tail - head + count) % count
    }

    private func anyEnabledQueueHasRoom() -> Bool {
        for q in 0..<16 where reg(Reg.rxq(q, Reg.RXDCTL)) & Bit.QUEUE_ENABLE != 0 {
            if freeDescriptors(q) > 0 { return true }
        }
        return false
    }

    /// Packet buffer size: SRRCTL.BSIZEPACKET in KiB, or RCTL.BSIZE/BSEX when it is 0.
    @inline(__always) func packetBufferSize(_ q: Int) -> Int {
        let kib = Int(reg(Reg.rxq(q, Reg.SRRCTL)) & Bit.SRRCTL_BSIZEPACKET_MASK)
        if kib != 0 { return kib * 1024 }
        let rctl = reg(Reg.RCTL)
        let size = 2048 >> Int((rctl >> Bit.RCTL_BSIZE_SHIFT) & 3)
        return rctl & Bit.RCTL_BSEX != 0 ? size * 16 : size
    }

    @inline(__always) func descriptorsNeeded(_ q: Int, _ length: Int) -> Int {
        let size = packetBufferSize(q)
        return max(1, (length + size - 1) / size)
    }

    /// Writes one copy of a frame into queue `q`'s ring. `shift` is how many bytes were removed in
    /// front of the L3 header (a stripped tag). Returns false if the frame was lost to a DMA fault.
    func writeFrame(queue q: Int, data: UnsafeRawPointer, length: Int, info: FrameInfo, shift: Int,
                    meta: RxMeta, vlan: UInt16?) -> Bool {
        let count = Int(reg(Reg.rxq(q, Reg.RDLEN)) & 0xFFF80) / 16
        let base = UInt64(reg(Reg.rxq(q, Reg.RDBAH))) << 32 | UInt64(reg(Reg.rxq(q, Reg.RDBAL)))
        let srrctl = reg(Reg.rxq(q, Reg.SRRCTL))
        let bufferSize = packetBufferSize(q)
        let headerSize = Int((srrctl >> Bit.SRRCTL_BSIZEHEADER_SHIFT) & Bit.SRRCTL_BSIZEHEADER_MASK) * 64
        let descType = (srrctl >> Bit.SRRCTL_DESCTYPE_SHIFT) & 7
        let legacy = descType == 0 && !deviations.contains(.noLegacyDescriptors)
        let split = descType == 2 || descType == 5

        // Header split (§7.1.6): headers up to L4 payload (or L3 for other IP) in the header buffer.
        var headerBytes = 0
        var sph = false
        var hbo = false
        if split {
            let point = info.splitOffset > 0 ? info.splitOffset - shift : 0
            if point > 0 && point <= length {
                if point <= headerSize {
                    headerBytes = point
                    sph = true
                } else {
                    hbo = true
                    if descType == 5 { headerBytes = headerSize }
                }
            } else if descType == 5 {
                headerBytes = min(length, headerSize)
            }
            if descType == 5 && length <= headerSize { headerBytes = length }
        }

        var offset = 0
        var first = true
        // A refused buffer write leaves the frame incomplete in memory: its EOP write-back reports
        // RXE, so the driver drops and counts it. A refused descriptor access loses the frame; the
        // queue's drop counter (RQDPC) counts it.
        var dataFaulted = false
        while true {
            let head = Int(reg(Reg.rxq(q, Reg.RDH)) & 0xFFFF)
            let descriptor = base &+ UInt64(head * 16)
            guard let d = dma(descriptor, 16, write: false, .receiveDescriptorFetch(queue: q)) else { return lostToDMAFault(q) }
            let packetAddress = UInt64(littleEndian: d.loadUnaligned(as: UInt64.self))
            let headerAddress = UInt64(littleEndian: d.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            var headerWritten = 0
            if first && headerBytes > 0 && !legacy {
                if let h = dma(headerAddress, headerBytes, write: true, .receiveHeaderBuffer(queue: q)) {
                    h.copyMemory(from: data, byteCount: headerBytes)
                } else {
                    dataFaulted = true
                }
                offset = headerBytes
                headerWritten = headerBytes
            }
            let chunk = min(length - offset, bufferSize)
            if chunk > 0 {
                if let b = dma(packetAddress, chunk, write: true, .receivePacketBuffer(queue: q)) {
                    b.copyMemory(from: data + offset, byteCount: chunk)
                } else {
                    dataFaulted = true
                }
            }
            offset += chunk
            let eop = offset >= length
            var lengthField = UInt32(chunk)
            if _slowPath(corruptLengthPending & (1 << UInt32(q)) != 0) {
                corruptLengthPending &= ~(1 << UInt32(q))
                lengthField = UInt32(corruptLength[q] ?? 0xFFFF)
            }
            guard let w = dma(descriptor, 16, write: true, .receiveDescriptorWriteBack(queue: q)) else { return lostToDMAFault(q) }
            var status = RxStatus.DD
            if eop { status |= RxStatus.EOP | meta.status | meta.errors | (dataFaulted ? RxStatus.RXE : 0) }
            if legacy {
                // Legacy write-back (§7.1.4.1): length, checksum, status, errors, VLAN.
                w.storeBytes(of: UInt16(truncatingIfNeeded: lengthField).littleEndian, toByteOffset: 8, as: UInt16.self)
                w.storeBytes(of: UInt16(0), toByteOffset: 10, as: UInt16.self)
                w.storeBytes(of: UInt16(eop ? vlan ?? 0 : 0).littleEndian, toByteOffset: 14, as: UInt16.self)
                w.storeBytes(of: UInt8(truncatingIfNeeded: status >> 24), toByteOffset: 13, as: UInt8.self)
                atomicFenceRelease()
                w.storeBytes(of: UInt8(truncatingIfNeeded: status), toByteOffset: 12, as: UInt8.self)
            } else {
                var dword0: UInt32 = eop ? meta.pktInfo : 0
                if first && split {
                    let hdrInfo = (sph ? RxStatus.SPH : 0) | (UInt32(headerWritten) << RxStatus.HDR_LEN_SHIFT) & 0x7FE0
                    dword0 |= hdrInfo << 16
                }
                if first && hbo { status |= RxStatus.HBO }
                var fields = RxWriteBackFields(queue: q, first: first, endOfPacket: eop, dword0: dword0,
                                               hiDword: eop ? meta.hiDword : 0, statusError: status,
                                               lengthVLAN: (lengthField & 0xFFFF) | UInt32(eop ? vlan ?? 0 : 0) << 16)
                if _slowPath(writeBackTamper != nil) { writeBackTamper!(&fields) }
                w.storeBytes(of: fields.dword0.littleEndian, toByteOffset: 0, as: UInt32.self)
                w.storeBytes(of: fields.hiDword.littleEndian, toByteOffset: 4, as: UInt32.self)
                w.storeBytes(of: fields.lengthVLAN.littleEndian, toByteOffset: 12, as: UInt32.self)
                atomicFenceRelease()   // DD last: the driver may poll concurrently in free-running mode
                w.storeBytes(of: fields.statusError.littleEndian, toByteOffset: 8, as: UInt32.self)
                if _slowPath(fields.headAdvance != 1) {
                    setReg(Reg.rxq(q, Reg.RDH), UInt32((head + max(0, fields.headAdvance)) % count))
                    first = false
                    if eop { break }
                    continue
                }
            }
            setReg(Reg.rxq(q, Reg.RDH), UInt32((head + 1) % count))
            first = false
            if eop { break }
        }
        queueInterrupt(rx: true, queue: q)
        return true
    }

    /// A frame lost to a refused descriptor access, counted in the queue's RQDPC (QEMU counts nothing).
    func lostToDMAFault(_ q: Int) -> Bool {
        wireCounters.lostToDMAFaults += 1
        if !deviations.contains(.noDropCounters) { count(Reg.rxq(q, Reg.RQDPC)) }
        return false
    }

    /// Benchmark hook: completes every free descriptor of the benchmark queue with the prepared frame.
    func benchmarkReceive() {
        guard let frame = benchmarkFrame, busMaster else { return }
        let q = benchmarkQueue
        var free = freeDescriptors(q)
        guard free > 0 else { return }
        let ringSize = Int(reg(Reg.rxq(q, Reg.RDLEN)) & 0xFFF80) / 16
        let base = UInt64(reg(Reg.rxq(q, Reg.RDBAH))) << 32 | UInt64(reg(Reg.rxq(q, Reg.RDBAL)))
        var head = Int(reg(Reg.rxq(q, Reg.RDH)) & 0xFFFF)
        let length = min(benchmarkLength, packetBufferSize(q))
        var delivered: UInt32 = 0
        while free > 0 {
            guard let d = dma(base &+ UInt64(head * 16), 16, write: true, .benchmark(queue: q)) else { break }
            let packetAddress = UInt64(littleEndian: d.loadUnaligned(as: UInt64.self))
            if let b = dma(packetAddress, length, write: true, .benchmark(queue: q)) {
                b.copyMemory(from: frame, byteCount: length)
            }
            d.storeBytes(of: UInt64(0), toByteOffset: 0, as: UInt64.self)
            d.storeBytes(of: UInt32(length).littleEndian, toByteOffset: 12, as: UInt32.self)
            atomicFenceRelease()
            d.storeBytes(of: (RxStatus.DD | RxStatus.EOP).littleEndian, toByteOffset: 8, as: UInt32.self)
            head = head + 1 == ringSize ? 0 : head + 1
            free -= 1
            delivered += 1
        }
        setReg(Reg.rxq(q, Reg.RDH), UInt32(head))
        count(Reg.GPRC, delivered)
        count64(Reg.GORCL, Int(delivered) * (length + 4))
        if delivered > 0 { queueInterrupt(rx: true, queue: q) }
    }
}

/// One advanced receive write-back (§7.1.5.2) as the model is about to store it; a tamper hook
/// (`IGBModel.tamperWithReceiveWriteBacks`) may change any field.
public struct RxWriteBackFields: Sendable {
    /// The hardware queue.
    public let queue: Int
    /// The frame's first descriptor (the one that carries the header-split fields).
    public let first: Bool
    /// The frame's last descriptor, as the model sees it.
    public let endOfPacket: Bool
    /// RSS type, packet type, header length (bits 21-30) and SPH (bit 31).
    public var dword0: UInt32
    /// RSS hash or IP identification / checksum.
    public var hiDword: UInt32
    /// Extended status (DD bit 0, EOP bit 1, ...) and errors (bits 20-31).
    public var statusError: UInt32
    /// Packet buffer length (bits 0-15) and VLAN tag (bits 16-31).
    public var lengthVLAN: UInt32
    /// How far the head moves past this descriptor: 1 as the hardware does; 0 writes the next
    /// descriptor over this one, 2 or more leave descriptors behind without a write-back.
    public var headAdvance: Int = 1
}

/// Orders descriptor field stores before the DD store (a driver may poll from another thread).
@inline(__always) func atomicFenceRelease() {
    atomicMemoryFence(ordering: .releasing)
}
