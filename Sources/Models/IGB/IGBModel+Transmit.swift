import ModelKit
import Glibc

extension IGBModel {
    /// Transmits every complete packet between TDH and TDT of queue `q` (§7.2).
    ///
    ///     ring:  [ done … | TDH → hardware owns → TDT | software owns … ]
    ///
    /// A packet is sent only once its EOP descriptor is below TDT; a partial packet waits.
    func transmit(queue q: Int) {
        let bit = UInt32(1) << UInt32(q)
        if _slowPath(isSurpriseRemoved || txStuck & bit != 0) { return }
        let vmdq = reg(Reg.MRQC) & 1 != 0
        guard reg(Reg.TCTL) & Bit.TCTL_EN != 0,
              reg(Reg.txq(q, Reg.TXDCTL)) & Bit.QUEUE_ENABLE != 0,
              !vmdq || reg(Reg.VFTE) & (1 << UInt32(q & 7)) != 0 else { return }
        let ringSize = Int(reg(Reg.txq(q, Reg.TDLEN)) & 0xFFF80) / 16
        let base = UInt64(reg(Reg.txq(q, Reg.TDBAH))) << 32 | UInt64(reg(Reg.txq(q, Reg.TDBAL)))
        var head = Int(reg(Reg.txq(q, Reg.TDH)) & 0xFFFF)
        let tail = Int(reg(Reg.txq(q, Reg.TDT)) & 0xFFFF)
        txPending &= ~bit
        guard ringSize > 0, head < ringSize, tail < ringSize, head != tail else { return }
        guard busMaster else {
            // The doorbell cannot be served: fetching descriptors would be DMA. Recorded, then lost.
            iommu.record(DMAFault(kind: .busMasterDisabled, iova: base &+ UInt64(head * 16), length: 16,
                                  isWrite: false, activity: .transmitDescriptorFetch(queue: q)))
            return
        }
        var wroteBack = false
        while head != tail {
            // Find the EOP of the next packet before consuming anything.
            var scan = head
            var eop = -1
            while scan != tail {
                guard let d = dma(base &+ UInt64(scan * 16), 16, write: false, .transmitDescriptorFetch(queue: q)) else { return }
                let cmd = UInt32(littleEndian: d.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
                let isContext = cmd & TxDesc.DCMD_DEXT != 0 && cmd & TxDesc.DTYP_MASK == TxDesc.DTYP_CONTEXT
                if !isContext && cmd & TxDesc.DCMD_EOP != 0 { eop = scan; break }
                scan = scan + 1 == ringSize ? 0 : scan + 1
            }
            if eop < 0 {
                // Only context descriptors (or a packet without EOP yet): consume leading contexts.
                break
            }
            var length = 0
            var overflow = false
            var first = true
            var firstCmd: UInt32 = 0
            var firstStatus: UInt32 = 0
            var legacy = false
            var bad = false
            var i = head
            while true {
                guard let d = dma(base &+ UInt64(i * 16), 16, write: false, .transmitDescriptorFetch(queue: q)) else { return }
                let address = UInt64(littleEndian: d.loadUnaligned(as: UInt64.self))
                let dword0 = UInt32(littleEndian: d.loadUnaligned(as: UInt32.self))
                let cmd = UInt32(littleEndian: d.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
                let dword3 = UInt32(littleEndian: d.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
                let isExtended = cmd & TxDesc.DCMD_DEXT != 0
                let dtyp = cmd & TxDesc.DTYP_MASK
                if isExtended && dtyp == TxDesc.DTYP_CONTEXT {
                    // Advanced context descriptor (§7.2.2.2): kept in slot IDX for later data descriptors.
                    let slot = (q * 8 + Int((dword3 >> 4) & 7)) * 3
                    txContext[slot] = dword0
                    txContext[slot + 1] = cmd
                    txContext[slot + 2] = dword3
                } else {
                    if isExtended && dtyp != TxDesc.DTYP_DATA { bad = true }
                    if first {
                        first = false
                        firstCmd = cmd
                        firstStatus = dword3
                        legacy = !isExtended
                    }
                    let bufferLength = Int(cmd & 0xFFFF)
                    if length + bufferLength > txScratchCapacity - 8 {
                        overflow = true
                    } else if bufferLength > 0,
                              let b = dma(address, bufferLength, write: false, .transmitBuffer(queue: q)) {
                        (txScratch + length).copyMemory(from: b, byteCount: bufferLength)
                        length += bufferLength
                    }
                }
                if cmd & TxDesc.DCMD_RS != 0 {
                    writeBackTransmit(queue: q, descriptor: base &+ UInt64(i * 16), headAfter: i + 1 == ringSize ? 0 : i + 1)
                    wroteBack = true
                }
                if i == eop { break }
                i = i + 1 == ringSize ? 0 : i + 1
            }
            head = eop + 1 == ringSize ? 0 : eop + 1
            setReg(Reg.txq(q, Reg.TDH), UInt32(head))
            if bad || overflow || length == 0 || (!legacy && firstCmd & TxDesc.DCMD_TSE != 0) {
                // Unknown DTYP, packets beyond the wire's maximum and TSO are not modelled: dropped, counted.
                wireCounters.transmitErrors += 1
                continue
            }
            finishPacket(queue: q, length: length, cmd: firstCmd, status: firstStatus, legacy: legacy)
        }
        if wroteBack { queueInterrupt(rx: false, queue: q) }
    }

    /// RS completion (§7.2.3): DD in the descriptor, or the head index to TDWBAH:TDWBAL when enabled.
    private func writeBackTransmit(queue q: Int, descriptor: UInt64, headAfter: Int) {
        let wbLow = reg(Reg.txq(q, Reg.TDWBAL))
        if wbLow & Bit.TDWBAL_HEAD_WB_EN != 0 {
            let address = UInt64(reg(Reg.txq(q, Reg.TDWBAH))) << 32 | UInt64(wbLow & ~3)
            if let p = dma(address, 4, write: true, .transmitHeadWriteBack(queue: q)) {
                atomicFenceRelease()
                p.storeBytes(of: UInt32(headAfter).littleEndian, as: UInt32.self)
            }
        } else if let d = dma(descriptor, 16, write: true, .transmitDescriptorWriteBack(queue: q)) {
            let status = UInt32(littleEndian: d.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
            atomicFenceRelease()
            d.storeBytes(of: (status | TxDesc.STA_DD).littleEndian, toByteOffset: 12, as: UInt32.self)
        }
    }

    /// Offloads, VLAN insertion and padding, then the wire (or VMDq loopback).
    private func finishPacket(queue q: Int, length start: Int, cmd: UInt32, status: UInt32, legacy: Bool) {
        var length = start
        let p = txScratch
        var insertVLAN: UInt16? = nil
        if legacy {
            if !deviations.contains(.noLegacyDescriptors) {
                // Legacy descriptor (§7.2.2.1): IC inserts a checksum from CSS at CSO; VLE inserts a tag.
                let cso = Int((cmd >> 16) & 0xFF)
                let css = Int((status >> 8) & 0xFF)
                if cmd & (1 << 26) != 0, css < length, cso + 2 <= length {
                    p.storeBytes(of: UInt16(0), toByteOffset: cso, as: UInt16.self)
                    store16BE(p, cso, foldChecksum(onesComplementSum(p + css, length - css)))
                }
                if cmd & TxDesc.DCMD_VLE != 0 { insertVLAN = UInt16(status >> 16) }
            }
        } else {
            let slot = (q * 8 + Int((status >> 4) & 7)) * 3
            let macipLens = txContext[slot]
            let tucmd = txContext[slot + 1]
            let popts = status & (TxDesc.POPTS_IXSM | TxDesc.POPTS_TXSM)
            if popts != 0 { checksumOffload(length: length, popts: popts, macipLens: macipLens, tucmd: tucmd) }
            if cmd & TxDesc.DCMD_VLE != 0 { insertVLAN = UInt16(macipLens >> 16) }
        }
        if let tci = insertVLAN, length >= 12 {
            memmove(p + 16, p + 12, length - 12)
            store16BE(p, 12, UInt16(truncatingIfNeeded: reg(Reg.VET)))
            store16BE(p, 14, tci)
            length += 4
        }
        if length < 60 && reg(Reg.TCTL) & Bit.TCTL_PSP != 0 && !deviations.contains(.noShortFramePadding) {
            memset(p + length, 0, 60 - length)
            length = 60
        }
        let withFCS = length + 4
        count(Reg.GPTC)
        count(Reg.TPT)
        count64(Reg.GOTCL, withFCS)
        count64(Reg.TOTL, withFCS)
        count(Self.sizeBucket(Reg.PTC64, withFCS))
        if p.load(as: UInt8.self) & 1 != 0 {
            if isBroadcast(p) { count(Reg.BPTC) } else { count(Reg.MPTC) }
        }
        // VMDq loopback (DTXSWC.LOOPBACK_EN, §7.10.3.6): local unicast stays inside, others go both ways.
        if reg(Reg.MRQC) & 1 != 0 && reg(Reg.DTXSWC) & Bit.DTXSWC_LOOPBACK_EN != 0 {
            let multi = p.load(as: UInt8.self) & 1 != 0
            if multi || exactMatch(p).matched {
                _ = fifo.push(UnsafeRawBufferPointer(start: p, count: length))
                wireCounters.loopedBack += 1
                if !multi { return }
            }
        }
        emit(p, length)
    }

    /// IXSM (IPv4 header checksum) and TXSM (TCP/UDP checksum) from the context descriptor (§7.2.4).
    private func checksumOffload(length: Int, popts: UInt32, macipLens: UInt32, tucmd: UInt32) {
        let p = txScratch
        var info = FrameInfo()
        if deviations.contains(.txParsesHeaders) {
            info = parseFrame(p, length: length, vet: UInt16(truncatingIfNeeded: reg(Reg.VET)))
            guard info.isIPv4 || info.isIPv6 else { return }
        } else {
            info.l3Offset = Int((macipLens >> 9) & 0x7F)
            info.l3HeaderLength = Int(macipLens & 0x1FF)
            info.isIPv4 = tucmd & TxDesc.TUCMD_IPV4 != 0
            info.isIPv6 = !info.isIPv4
            info.l4Offset = info.l3Offset + info.l3HeaderLength
            switch tucmd & (3 << 11) {
            case TxDesc.TUCMD_L4T_TCP: info.l4Protocol = 6
            case 0: info.l4Protocol = 17
            default: info.l4Protocol = 132
            }
        }
        if popts & TxDesc.POPTS_IXSM != 0, info.isIPv4, info.l3Offset + info.l3HeaderLength <= length, info.l3HeaderLength >= 20 {
            p.storeBytes(of: UInt16(0), toByteOffset: info.l3Offset + 10, as: UInt16.self)
            store16BE(p, info.l3Offset + 10, foldChecksum(onesComplementSum(p + info.l3Offset, info.l3HeaderLength)))
        }
        if popts & TxDesc.POPTS_TXSM != 0, info.l4Protocol == 6 || info.l4Protocol == 17 {
            let field = info.l4Offset + (info.l4Protocol == 6 ? 16 : 6)
            guard field + 2 <= length else { return }
            // L4 length: to the end of the IP datagram for IPv4, else to the end of the packet.
            var end = length
            if info.isIPv4 { end = min(length, info.l3Offset + Int(load16BE(p, info.l3Offset + 2))) }
            let l4Length = end - info.l4Offset
            p.storeBytes(of: UInt16(0), toByteOffset: field, as: UInt16.self)
            var sum = foldChecksum(onesComplementSum(p + info.l4Offset, l4Length, initial: pseudoHeaderSum(p, info, l4Length: l4Length)))
            if info.l4Protocol == 17 && sum == 0 { sum = 0xFFFF }
            store16BE(p, field, sum)
        }
    }
}
