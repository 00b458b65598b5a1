import DeviceAccess
import IGBModel
import Testing

@Suite("Transmit: descriptors, offloads, completion, loopback")
struct TransmitTests {
    func ready(_ fidelity: IGBModel.Fidelity = .datasheet) throws -> (Harness, TxRing) {
        let h = try Harness(fidelity: fidelity)
        try h.linkUp()
        return (h, try h.setupTX())
    }

    @Test func aDataDescriptorPutsTheFrameOnTheWireAndSetsDD() throws {
        let (h, tx) = try ready()
        let frame = Frames.ipv4(to: Frames.peer)
        tx.data(0, frame)
        h.write(R.TDT(0), 1)
        #expect(h.model.takeTransmitted().isEmpty, "nothing happens before step in stepped mode")
        h.model.step()
        #expect(h.model.takeTransmitted() == [frame])
        #expect(tx.status(0) & 1 == 1)
        #expect(h.read(R.TDH(0)) == 1)
        #expect(h.read(R.GPTC) == 1)
        #expect(h.read(R.GOTCL) == UInt32(frame.count + 4))
    }

    @Test func transmitRunsInsideTheTailWriteInQEMUMode() throws {
        let (h, tx) = try ready(.qemu)
        tx.data(0, Frames.ipv4(to: Frames.peer))
        h.write(R.TDT(0), 1)
        #expect(h.read(R.TDH(0)) == 1)
        #expect(h.model.takeTransmitted().count == 1)
    }

    @Test func aPacketSpanningDescriptorsIsSentOnceItsEOPIsBelowTheTail() throws {
        let (h, tx) = try ready()
        let frame = Frames.ipv4(to: Frames.peer, payload: Array(repeating: 3, count: 200))
        tx.data(0, Array(frame[0..<50]), cmd: R.TX_IFCS)
        tx.data(1, Array(frame[50...]))
        h.write(R.TDT(0), 1)
        h.model.step()
        #expect(h.model.takeTransmitted().isEmpty)
        #expect(h.read(R.TDH(0)) == 0)
        h.write(R.TDT(0), 2)
        h.model.step()
        #expect(h.model.takeTransmitted() == [frame])
    }

    @Test func checksumOffloadFillsIPv4AndL4Checksums() throws {
        for tcp in [false, true] {
            let (h, tx) = try ready()
            let frame = Frames.ipv4(to: Frames.peer, tcp: tcp, checksums: false)
            #expect(!Frames.checksumsValid(frame))
            tx.context(0, macLength: 14, ipLength: 20, tucmd: R.TUCMD_IPV4 | (tcp ? R.TUCMD_TCP : 0))
            tx.data(1, frame, olinfo: R.TX_IXSM | R.TX_TXSM)
            h.write(R.TDT(0), 2)
            h.model.step()
            let sent = h.model.takeTransmitted()
            #expect(sent.count == 1)
            #expect(Frames.checksumsValid(sent[0]))
            #expect(sent[0] == Frames.ipv4(to: Frames.peer, tcp: tcp, checksums: true))
        }
    }

    @Test func vleInsertsTheContextVLANTag() throws {
        let (h, tx) = try ready()
        let frame = Frames.ipv4(to: Frames.peer)
        tx.context(0, vlan: 0x0123)
        tx.data(1, frame, cmd: R.TX_EOP | R.TX_RS | R.TX_VLE)
        h.write(R.TDT(0), 2)
        h.model.step()
        #expect(h.model.takeTransmitted() == [Array(frame[0..<12]) + [0x81, 0x00, 0x01, 0x23] + Array(frame[12...])])
    }

    @Test func headWriteBackReportsTDHInMemoryInsteadOfDD() throws {
        let (h, tx) = try ready()
        let wb = try h.iommu.allocateDMA(length: 64, contiguous: true)
        h.write(R.TDWBAL(0), UInt32(truncatingIfNeeded: wb.segments[0].iova) | 1)
        h.write(R.TDWBAH(0), UInt32(truncatingIfNeeded: wb.segments[0].iova >> 32))
        tx.data(0, Frames.ipv4(to: Frames.peer))
        tx.data(1, Frames.ipv4(to: Frames.peer))
        h.write(R.TDT(0), 2)
        h.model.step()
        #expect(wb.unsafeBaseAddress.load(as: UInt32.self) == 2)
        #expect(tx.status(0) & 1 == 0)
        #expect(tx.status(1) & 1 == 0)
    }

    @Test func vmdqLoopbackDeliversLocalUnicastToItsPool() throws {
        let h = try Harness()
        let rings = try h.vmdq(queues: 2)
        let tx = try h.setupTX()
        h.setAddress(1, macPool1, pools: 1 << 1)
        h.write(R.DTXSWC, 1 << 31)
        tx.data(0, Frames.ipv4(to: macPool1))
        h.write(R.TDT(0), 1)
        h.model.step()
        #expect(h.completed(rings[1]) == 1)
        #expect(h.model.takeTransmitted().isEmpty)
        #expect(h.model.wireCounters.loopedBack == 1)
    }

    @Test func twoModelsBackToBackExchangeFrames() throws {
        let a = try Harness(mac: [0x02, 0, 0, 0, 0, 0xA])
        let b = try Harness(mac: [0x02, 0, 0, 0, 0, 0xB])
        IGBModel.connect(a.model, b.model)
        try a.linkUp()
        try b.linkUp()
        let tx = try a.setupTX()
        let rx = try b.setupRX()
        b.enableReceive()
        let frame = Frames.ipv4(to: [0x02, 0, 0, 0, 0, 0xB])
        tx.data(0, frame)
        a.write(R.TDT(0), 1)
        a.model.step()
        b.model.step()
        #expect(rx.packet(0, length: rx.writeBack(0).length) == frame)
        #expect(a.model.takeTransmitted().isEmpty, "a connected model sends to its peer, not to the list")
    }
}
