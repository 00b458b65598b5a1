import DeviceAccess
import Glibc
import ModelKit

/// struct virtio_net_hdr with VERSION_1 (§5.1.6): 12 bytes, num_buffers always present.
enum ModelNetHeader {
    static let size = 12
    static let needsCsum: UInt8 = 1
}

extension VirtioNetModel {
    // MARK: wire

    /// Puts a frame (destination MAC first, no FCS) on this NIC's wire; ``step()`` receives it.
    public func inject(_ frame: some Collection<UInt8>) {
        let copy = Array(frame)
        copy.withUnsafeBytes { if !port.fifo.push($0) { wireCounters.notReceived += 1 } }
    }

    /// Frames transmitted since the last call (oldest first), when no peer is connected.
    public func takeTransmitted() -> [[UInt8]] {
        defer { transmitted.removeAll(keepingCapacity: true) }
        return transmitted
    }

    /// Frames waiting on the wire for receive buffers.
    public var framesWaiting: Int { port.fifo.count }

    // MARK: receive filter (§5.1.6.5.1, QEMU's receive_filter)

    /// True if the device accepts a frame with these first bytes.
    func accepts(_ p: UnsafeRawPointer, _ length: Int) -> Bool {
        guard length >= 14 else { return false }
        if promiscuous { return true }
        if load16BE(p, 12) == 0x8100, length >= 18 {
            let vid = Int(load16BE(p, 14) & 0x0FFF)
            if vlans[vid >> 5] & (1 << UInt32(vid & 31)) == 0 { return false }
        }
        let d0 = p.load(as: UInt8.self)
        func equal(_ mac: [UInt8]) -> Bool { (0..<6).allSatisfy { p.load(fromByteOffset: $0, as: UInt8.self) == mac[$0] } }
        if d0 & 1 != 0 {
            if (0..<6).allSatisfy({ p.load(fromByteOffset: $0, as: UInt8.self) == 0xFF }) { return !noBroadcast }
            if noMulticast { return false }
            if allMulticast || multicastOverflow { return true }
            return multicastTable.contains(where: equal)
        }
        if noUnicast { return false }
        if allUnicast || unicastOverflow { return true }
        if p.loadUnaligned(as: UInt32.self) == macLow && p.loadUnaligned(fromByteOffset: 4, as: UInt16.self) == macHigh { return true }
        return unicastTable.contains(where: equal)
    }

    // MARK: receive

    /// Receives waiting frames into receive queue `q` while it has room.
    func receive(queue q: Int) -> Int {
        guard queues[q].enabled else { return 0 }
        let overflows = port.fifo.takeOverflows()
        wireCounters.notReceived += overflows
        var done = 0
        let mergeable = negotiated(VirtioModelFeature.mrgRxbuf)
        while let (p, length) = port.fifo.peek() {
            guard accepts(p, length) else {
                wireCounters.filtered += 1
                port.fifo.pop()
                continue
            }
            // Gather buffers: each avail entry is a chain of device-writable descriptors. The
            // tables are the model's own (no allocation per frame).
            let total = ModelNetHeader.size + length
            var chains = 0
            var segmentCount = 0
            var room = 0
            var ahead: UInt16 = 0
            while room < total, chains < Self.gatherChains {
                guard let head = peekAvail(q, ahead: ahead) else { break }
                var i = head
                var hops = 0
                gatherHeads[chains] = (head, segmentCount, 0)
                while let d = descriptor(q, i), hops < Int(queues[q].size), segmentCount < Self.gatherSegments {
                    if d.flags & 2 != 0 {
                        gatherSegments[segmentCount] = (d.addr, Int(d.len))
                        segmentCount += 1
                        gatherHeads[chains].count += 1
                        room += Int(d.len)
                    }
                    hops += 1
                    guard d.flags & 1 != 0 else { break }
                    i = d.next
                }
                chains += 1
                ahead &+= 1
                // Without MRG_RXBUF a frame goes into one chain (§5.1.6.3.1).
                if !mergeable { break }
            }
            if room < total {
                if !mergeable, chains > 0 {
                    // The one chain is too small: the frame is dropped, the buffer stays posted.
                    wireCounters.tooLong += 1
                    port.fifo.pop()
                    continue
                }
                break   // wait for buffers: the frame stays on the wire
            }
            // Header (no offload flags; num_buffers = chains used), then the frame.
            let header = scratch
            memset(header, 0, ModelNetHeader.size)
            header.storeBytes(of: UInt16(chains).littleEndian, toByteOffset: 10, as: UInt16.self)
            var offset = 0   // within header + frame
            for c in 0..<chains {
                let (head, first, count) = gatherHeads[c]
                var written = 0
                for k in first..<(first + count) where offset < total {
                    let (addr, len) = gatherSegments[k]
                    let n = min(len, total - offset)
                    guard let dst = dma(addr, n, write: true, .receivePacketBuffer(queue: q)) else { break }
                    var copied = 0
                    while copied < n {
                        let at = offset + copied
                        if at < ModelNetHeader.size {
                            let m = min(ModelNetHeader.size - at, n - copied)
                            (dst + copied).copyMemory(from: header + at, byteCount: m)
                            copied += m
                        } else {
                            let m = n - copied
                            (dst + copied).copyMemory(from: p + (at - ModelNetHeader.size), byteCount: m)
                            copied += m
                        }
                    }
                    offset += n
                    written += n
                }
                queues[q].lastAvail &+= 1
                pushUsed(q, id: head, length: UInt32(written))
            }
            port.fifo.pop()
            wireCounters.received += 1
            done += 1
        }
        if done > 0 { interrupt(q) }
        return done
    }

    // MARK: transmit

    /// Transmits every available chain of transmit queue `q` (§5.1.6.2).
    func transmit(queue q: Int) -> Int {
        guard q < queues.count, queues[q].enabled else { return 0 }
        queues[q].notified = false
        var done = 0
        while let head = peekAvail(q) {
            var length = 0
            var i = head
            var hops = 0
            var ok = true
            while let d = descriptor(q, i), hops < Int(queues[q].size) {
                hops += 1
                if d.flags & 2 != 0 { ok = false }   // a transmit chain is device-readable only
                let n = Int(d.len)
                if length + n > 65_536 { ok = false; break }
                if n > 0 {
                    guard let src = dma(d.addr, n, write: false, .transmitBuffer(queue: q)) else { ok = false; break }
                    (scratch + length).copyMemory(from: src, byteCount: n)
                    length += n
                }
                guard d.flags & 1 != 0 else { break }
                i = d.next
            }
            queues[q].lastAvail &+= 1
            pushUsed(q, id: head, length: 0)
            if ok, length >= ModelNetHeader.size + 14 {
                let frame = scratch + ModelNetHeader.size
                let frameLength = length - ModelNetHeader.size
                if scratch.load(as: UInt8.self) & ModelNetHeader.needsCsum != 0, negotiated(VirtioModelFeature.csum) {
                    // Checksum offload: the ones' complement sum from csum_start, stored at csum_offset (§5.1.6.2).
                    let start = Int(UInt16(littleEndian: scratch.loadUnaligned(fromByteOffset: 6, as: UInt16.self)))
                    let off = Int(UInt16(littleEndian: scratch.loadUnaligned(fromByteOffset: 8, as: UInt16.self)))
                    if start + off + 2 <= frameLength {
                        var sum = onesComplementSum(frame + start, frameLength - start)
                        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
                        store16BE(frame, start + off, ~UInt16(truncatingIfNeeded: sum))
                    }
                }
                emit(frame, frameLength)
            }
            done += 1
        }
        if done > 0 { interrupt(q) }
        return done
    }

    func emit(_ p: UnsafeRawPointer, _ length: Int) {
        wireCounters.transmitted += 1
        let bytes = UnsafeRawBufferPointer(start: p, count: length)
        if port.isConnected {
            _ = port.send(bytes)
        } else if configuration.keepTransmittedFrames {
            transmitted.append(Array(bytes))
        }
    }

    // MARK: control queue (§5.1.6.5)

    func processControl(_ q: Int) {
        guard queues[q].enabled, driverOK else { return }
        while let head = peekAvail(q) {
            // The command: device-readable descriptors (class, command, data), then the ack byte.
            var command: [UInt8] = []
            var ackAddress: UInt64?
            var i = head
            var hops = 0
            while let d = descriptor(q, i), hops < Int(queues[q].size) {
                hops += 1
                if d.flags & 2 != 0 {
                    ackAddress = d.addr
                } else if d.len > 0, d.len < 4096, let src = dma(d.addr, Int(d.len), write: false, .controlCommand(queue: q)) {
                    command += Array(UnsafeRawBufferPointer(start: src, count: Int(d.len)))
                }
                guard d.flags & 1 != 0 else { break }
                i = d.next
            }
            let ok = command.count >= 2 && execute(command[0], command[1], Array(command.dropFirst(2)))
            wireCounters.controlCommands += 1
            if !ok { wireCounters.controlErrors += 1 }
            if let a = ackAddress, let p = dma(a, 1, write: true, .controlCommand(queue: q)) {
                p.storeBytes(of: ok ? 0 : 1, as: UInt8.self)
            }
            queues[q].lastAvail &+= 1
            pushUsed(q, id: head, length: 1)
        }
        interrupt(q)
    }

    /// Runs one control command; false is VIRTIO_NET_ERR.
    func execute(_ cls: UInt8, _ cmd: UInt8, _ data: [UInt8]) -> Bool {
        switch cls {
        case 0:   // VIRTIO_NET_CTRL_RX
            guard negotiated(VirtioModelFeature.ctrlRx), data.count == 1 else { return false }
            let on = data[0] != 0
            switch cmd {
            case 0: promiscuous = on
            case 1: allMulticast = on
            case 2: allUnicast = on
            case 3: noMulticast = on
            case 4: noUnicast = on
            case 5: noBroadcast = on
            default: return false
            }
            return true
        case 1:   // VIRTIO_NET_CTRL_MAC
            guard cmd == 0 else { return false }   // MAC_TABLE_SET; ADDR_SET needs CTRL_MAC_ADDR (not offered)
            // Two tables: le32 entries, then entries × 6 bytes; unicast first.
            func table(at o: Int) -> (macs: [[UInt8]], end: Int)? {
                guard data.count >= o + 4 else { return nil }
                let n = Int(data[o]) | Int(data[o + 1]) << 8 | Int(data[o + 2]) << 16 | Int(data[o + 3]) << 24
                guard n >= 0, data.count >= o + 4 + n * 6 else { return nil }
                return ((0..<n).map { Array(data[(o + 4 + $0 * 6)..<(o + 10 + $0 * 6)]) }, o + 4 + n * 6)
            }
            guard let uni = table(at: 0), let multi = table(at: uni.end), multi.end == data.count else { return false }
            // QEMU: entries beyond the 64-entry table turn on the overflow (accept all of that kind).
            unicastOverflow = uni.macs.count > Self.macTableEntries
            unicastTable = unicastOverflow ? [] : uni.macs
            multicastOverflow = unicastTable.count + multi.macs.count > Self.macTableEntries
            multicastTable = multicastOverflow ? [] : multi.macs
            return true
        case 2:   // VIRTIO_NET_CTRL_VLAN
            guard negotiated(VirtioModelFeature.ctrlVLAN), data.count == 2 else { return false }
            let vid = Int(data[0]) | Int(data[1]) << 8
            guard vid < 4096 else { return false }
            switch cmd {
            case 0: vlans[vid >> 5] |= 1 << UInt32(vid & 31)
            case 1: vlans[vid >> 5] &= ~(1 << UInt32(vid & 31))
            default: return false
            }
            return true
        default:
            return false
        }
    }

    /// True if VLAN `vid` is in the device's VLAN table.
    public func vlanAccepted(_ vid: Int) -> Bool { vlans[vid >> 5] & (1 << UInt32(vid & 31)) != 0 }

    /// VLAN ids in the table.
    public var vlanTable: [Int] { (0..<4096).filter(vlanAccepted) }
}
