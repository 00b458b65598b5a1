import DeviceAccess
import IGBModel
import Testing

/// The MTA/UTA hash of a multicast address for RCTL.MO = 0, computed as a driver does.
func mtaBit(_ mac: [UInt8]) -> (register: Int, bit: UInt32) {
    let hash = (UInt32(mac[4]) >> 4 | UInt32(mac[5]) << 4) & 0xFFF
    return (Int(hash >> 5), hash & 31)
}

@Suite("Receive filters: unicast, multicast, broadcast, promiscuous, VLAN")
struct ReceiveFilterTests {
    func ready(_ rctl: UInt32 = R.RCTL_SECRC) throws -> (Harness, RxRing) {
        let h = try Harness()
        try h.linkUp()
        let rx = try h.setupRX()
        h.enableReceive(rctl)
        return (h, rx)
    }

    @Test func unicastToThePermanentAddressIsAcceptedAndOthersAreNot() throws {
        let (h, rx) = try ready()
        h.model.inject(Frames.ethernet(to: Harness.mac, payload: [1, 2, 3]))
        h.model.inject(Frames.ethernet(to: [0x02, 9, 9, 9, 9, 9], payload: [4, 5, 6]))
        h.model.step()
        #expect(h.completed(rx) == 1)
        #expect(rx.packet(0, length: 17) == Frames.ethernet(to: Harness.mac, payload: [1, 2, 3]))
        #expect(rx.writeBack(0).length == 60, "short frames arrive padded to 60 bytes")
        #expect(h.model.wireCounters.filtered == 1)
    }

    @Test func promiscuousUnicastAcceptsEveryAddress() throws {
        let (h, rx) = try ready(R.RCTL_SECRC | R.RCTL_UPE)
        h.model.inject(Frames.ethernet(to: [0x02, 9, 9, 9, 9, 9], payload: [4]))
        h.model.step()
        #expect(h.completed(rx) == 1)
    }

    @Test func broadcastNeedsBAM() throws {
        let (h, rx) = try ready()
        h.model.inject(Frames.ethernet(to: Frames.broadcast, payload: [1]))
        h.model.step()
        #expect(h.completed(rx) == 0)
        h.enableReceive(R.RCTL_SECRC | R.RCTL_BAM)
        h.model.inject(Frames.ethernet(to: Frames.broadcast, payload: [1]))
        h.model.step()
        #expect(h.completed(rx) == 1)
        #expect(h.read(R.BPRC) == 1)
    }

    @Test func multicastPassesThroughTheMTAHashOrMPE() throws {
        let (h, rx) = try ready()
        let group: [UInt8] = [0x01, 0x00, 0x5E, 0x00, 0x00, 0xFB]
        h.model.inject(Frames.ethernet(to: group, payload: [1]))
        h.model.step()
        #expect(h.completed(rx) == 0)
        let (register, bit) = mtaBit(group)
        h.write(R.MTA + 4 * register, 1 << bit)
        h.model.inject(Frames.ethernet(to: group, payload: [1]))
        h.model.inject(Frames.ethernet(to: [0x01, 0, 0x5E, 0, 0, 0x01], payload: [2]))
        h.model.step()
        #expect(h.completed(rx) == 1)
        h.enableReceive(R.RCTL_SECRC | R.RCTL_MPE)
        h.model.inject(Frames.ethernet(to: [0x01, 0, 0x5E, 0, 0, 0x01], payload: [2]))
        h.model.step()
        #expect(h.completed(rx) == 2)
        #expect(h.read(R.MPRC) == 2)
    }

    @Test func additionalExactAddressesIncludingTheSecondBankAreMatched() throws {
        let (h, rx) = try ready()
        let other: [UInt8] = [0x02, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE]
        h.setAddress(20, other)
        h.model.inject(Frames.ethernet(to: other, payload: [1]))
        h.model.step()
        #expect(h.completed(rx) == 1)
    }

    @Test func theVLANFilterDropsTagsNotInVFTA() throws {
        let (h, rx) = try ready(R.RCTL_SECRC | R.RCTL_VFE)
        h.model.inject(Frames.ethernet(to: Harness.mac, vlan: 100, payload: [1]))
        h.model.step()
        #expect(h.completed(rx) == 0)
        h.write(R.VFTA + 4 * (100 >> 5), 1 << (100 & 31))
        h.model.inject(Frames.ethernet(to: Harness.mac, vlan: 100, payload: [1]))
        h.model.step()
        #expect(h.completed(rx) == 1)
        #expect(rx.writeBack(0).staterr & R.RX_VP == 0, "not stripped without CTRL.VME")
    }

    @Test func vlanTagsAreStrippedWithVME() throws {
        let (h, rx) = try ready()
        h.write(R.CTRL, h.read(R.CTRL) | R.CTRL_VME)
        let frame = Frames.ipv4(vlan: 0x2064)
        h.model.inject(frame)
        h.model.step()
        let wb = rx.writeBack(0)
        #expect(wb.staterr & R.RX_VP != 0)
        #expect(wb.vlan == 0x2064)
        #expect(wb.length == frame.count - 4)
        #expect(rx.packet(0, length: wb.length) == Array(frame[0..<12] + frame[16...]))
        #expect(wb.staterr & (R.RX_IPCS | R.RX_L4CS) == R.RX_IPCS | R.RX_L4CS)
    }

    @Test func oversizeFramesAreDroppedWithoutLPEAndAcceptedWithIt() throws {
        let (h, rx) = try ready()
        let big = Frames.ethernet(to: Harness.mac, payload: Array(repeating: 7, count: 1600))
        h.model.inject(big)
        h.model.step()
        #expect(h.completed(rx) == 0)
        #expect(h.read(R.ROC) == 1)
        h.enableReceive(R.RCTL_SECRC | R.RCTL_LPE)
        h.model.inject(big)
        h.model.step()
        #expect(h.completed(rx) == 1)
    }

    @Test func nothingIsReceivedWhileTheLinkIsDownOrTheReceiverOff() throws {
        let h = try Harness()
        try h.function.enableBusMaster()
        let rx = try h.setupRX()
        h.enableReceive()
        h.model.inject(Frames.ipv4())
        h.model.step()
        #expect(h.completed(rx) == 0)
        #expect(h.model.wireCounters.notReceived == 1)
    }
}

@Suite("Receive descriptors: write-back fields, FCS, header split, multi-descriptor frames")
struct ReceiveDescriptorTests {
    @Test func aOneBufferWriteBackCarriesLengthStatusChecksumsAndPacketType() throws {
        let h = try Harness()
        try h.linkUp()
        let rx = try h.setupRX()
        h.enableReceive()
        let udp = Frames.ipv4()
        let tcp = Frames.ipv4(tcp: true)
        var bad = Frames.ipv4()
        bad[bad.count - 1] ^= 0xFF   // breaks the UDP checksum
        for f in [udp, tcp, bad] { h.model.inject(f) }
        h.model.step()
        let u = rx.writeBack(0), t = rx.writeBack(1), b = rx.writeBack(2)
        #expect(u.length == udp.count)
        #expect(rx.packet(0, length: u.length) == udp)
        #expect(u.staterr & 0xFFFF == R.RX_DD | R.RX_EOP | R.RX_IPCS | R.RX_L4CS | R.RX_UDPCS)
        #expect(u.packetType == 0x10 | 0x200, "IPv4 | UDP")
        #expect(u.hiDword == 0x1234, "IP identification when there is no RSS hash")
        #expect(t.packetType == 0x10 | 0x100, "IPv4 | TCP")
        #expect(t.staterr & R.RX_UDPCS == 0)
        #expect(t.staterr & R.RX_L4E == 0)
        #expect(b.staterr & R.RX_L4E != 0)
        #expect(h.read(R.RDH(0)) == 3)
    }

    @Test func withoutSECRCTheFCSIsAppended() throws {
        let frame = Frames.ipv4()
        for fidelity in [IGBModel.Fidelity.datasheet, .qemu] {
            let h = try Harness(fidelity: fidelity)
            try h.linkUp()
            let rx = try h.setupRX()
            h.enableReceive(0)
            h.model.inject(frame)
            h.model.step()
            let wb = rx.writeBack(0)
            #expect(wb.length == frame.count + 4)
            let fcs = rx.packet(0, length: wb.length).suffix(4)
            if fidelity == .qemu {
                #expect(Array(fcs) == [0, 0, 0, 0])
            } else {
                // CRC-32 of the frame, little-endian on the wire: the residue check gives 0x2144DF1C.
                var crc: UInt32 = 0xFFFF_FFFF
                for byte in frame + Array(fcs) {
                    crc ^= UInt32(byte)
                    for _ in 0..<8 { crc = crc & 1 != 0 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
                }
                #expect(~crc == 0x2144_DF1C)
            }
        }
    }

    @Test func headerSplitPutsHeadersInTheHeaderBufferWithHDRLENAndSPH() throws {
        let h = try Harness()
        try h.linkUp()
        let rx = try h.setupRX(headerSize: 128, descType: R.DESCTYPE_SPLIT)
        h.enableReceive()
        let frame = Frames.ipv4(payload: Array(0..<100))
        h.model.inject(frame)
        h.model.inject(Frames.ethernet(to: Harness.mac, payload: Array(repeating: 1, count: 80)))
        h.model.step()
        let wb = rx.writeBack(0)
        #expect(wb.sph)
        #expect(wb.headerLength == 42)
        #expect(wb.length == 100)
        #expect(rx.header(0, length: 42) == Array(frame[0..<42]))
        #expect(rx.packet(0, length: 100) == Array(frame[42...]))
        let raw = rx.writeBack(1)
        #expect(!raw.sph, "non-IP frames are not split in mode 010")
        #expect(raw.headerLength == 0)
        #expect(raw.length == 94)
    }

    @Test func splitAlwaysPutsSmallFramesEntirelyInTheHeaderBuffer() throws {
        let h = try Harness()
        try h.linkUp()
        let rx = try h.setupRX(headerSize: 128, descType: R.DESCTYPE_SPLIT_ALWAYS)
        h.enableReceive()
        let raw = Frames.ethernet(to: Harness.mac, payload: Array(repeating: 1, count: 80))
        h.model.inject(raw)
        h.model.inject(Frames.ethernet(to: Harness.mac, payload: Array(repeating: 2, count: 300)))
        h.model.step()
        let a = rx.writeBack(0)
        #expect(a.headerLength == 94)
        #expect(a.length == 0)
        #expect(rx.header(0, length: 94) == raw)
        let b = rx.writeBack(1)
        #expect(b.headerLength == 128)
        #expect(b.length == 314 - 128)
    }

    @Test func aJumboFrameSpansDescriptorsWithEOPOnlyOnTheLast() throws {
        let h = try Harness()
        try h.linkUp()
        let rx = try h.setupRX(count: 16, bufferKiB: 2)
        h.enableReceive(R.RCTL_SECRC | R.RCTL_LPE)
        let payload = (0..<9000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let frame = Frames.ethernet(to: Harness.mac, payload: payload)
        h.model.inject(frame)
        h.model.step()
        var collected: [UInt8] = []
        for i in 0..<5 {
            let wb = rx.writeBack(i)
            #expect(wb.done)
            #expect(wb.eop == (i == 4))
            collected += rx.packet(i, length: wb.length)
        }
        #expect(collected == frame)
        #expect(!rx.writeBack(5).done)
    }

    @Test func legacyDescriptorsAreUsedForDESCTYPEZeroInDatasheetMode() throws {
        let h = try Harness()
        try h.linkUp()
        let rx = try h.setupRX(descType: 0)
        h.enableReceive()
        h.model.inject(Frames.ipv4())
        h.model.step()
        let d = rx.ring.unsafeBaseAddress
        #expect(d.load(fromByteOffset: 8, as: UInt16.self) == 60, "legacy length")
        #expect(d.load(fromByteOffset: 12, as: UInt8.self) & 0x3 == 0x3, "legacy DD|EOP")
        #expect(d.load(as: UInt64.self) == rx.buffers.iova(atOffset: 0), "the buffer address stays")
    }
}

@Suite("Ring full: drops, counters and held frames")
struct ReceiveDropTests {
    @Test func dropEnableDropsAndCountsRQDPCAndRNBC() throws {
        let h = try Harness()
        try h.linkUp()
        let rx = try h.setupRX(count: 8, dropEnable: true)   // 7 usable descriptors (RDLEN is a multiple of 128)
        h.enableReceive()
        for _ in 0..<9 { h.model.inject(Frames.ipv4()) }
        h.model.step()
        #expect(h.completed(rx) == 7)
        #expect(h.read(R.RQDPC(0)) == 2)
        #expect(h.read(R.RNBC) == 2)
        #expect(h.model.framesWaiting == 0)
    }

    @Test func withoutDropEnableFramesWaitUntilDescriptorsAreReturned() throws {
        let h = try Harness()
        try h.linkUp()
        let rx = try h.setupRX(count: 8)
        h.enableReceive()
        for _ in 0..<9 { h.model.inject(Frames.ipv4()) }
        h.model.step()
        #expect(h.completed(rx) == 7)
        #expect(h.model.framesWaiting == 2)
        #expect(h.read(R.RNBC) == 1)
        // The driver recycles descriptors 0 and 1 and moves the tail.
        rx.refill(0); rx.refill(1)
        h.write(R.RDT(0), 1)
        h.model.step()
        #expect(h.model.framesWaiting == 0)
        #expect(h.read(R.RDH(0)) == 1)
    }

    @Test func aFullFIFOCountsMissedPackets() throws {
        let h = try Harness(fifoFrames: 2)
        try h.linkUp()
        for _ in 0..<5 { h.model.inject(Frames.ipv4()) }
        h.model.step()
        #expect(h.read(R.MPC) == 3)
        #expect(h.model.wireCounters.notReceived >= 3)
    }

    @Test func qemuModeCountsNoDrops() throws {
        let h = try Harness(fidelity: .qemu)
        try h.linkUp()
        let rx = try h.setupRX(count: 8, dropEnable: true)
        h.enableReceive()
        for _ in 0..<9 { h.model.inject(Frames.ipv4()) }
        h.model.step()
        #expect(h.completed(rx) == 7)
        #expect(h.read(R.RQDPC(0)) == 0)
        #expect(h.read(R.RNBC) == 0)
        #expect(h.model.framesWaiting == 2, "QEMU holds frames while no queue has a free descriptor")
    }
}
