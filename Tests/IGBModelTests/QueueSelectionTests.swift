import DeviceAccess
import IGBModel
import Testing

/// The Microsoft RSS verification key (public test vectors for the Toeplitz hash).
let rssKey: [UInt8] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
]

extension Harness {
    func programRSS(mrqc: UInt32, reta: (Int) -> UInt8) {
        for n in 0..<10 {
            let k = rssKey[(4 * n)..<(4 * n + 4)].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
            write(R.RSSRK + 4 * n, k)
        }
        for n in 0..<32 {
            write(R.RETA + 4 * n, (0..<4).reduce(UInt32(0)) { $0 | UInt32(reta(4 * n + $1)) << (8 * UInt32($1)) })
        }
        write(R.MRQC, mrqc)
    }

    /// VMDq mode with pools 0–3 on queues 0–3, every pool accepting untagged frames and broadcast.
    func vmdq(queues: Int = 4) throws -> [RxRing] {
        try linkUp()
        var rings: [RxRing] = []
        for q in 0..<queues {
            rings.append(try setupRX(queue: q))
            write(R.VMOLR(q), R.VMOLR_AUPE | R.VMOLR_BAM)
        }
        write(R.MRQC, 3)
        enableReceive()
        return rings
    }
}

let macPool1: [UInt8] = [0x02, 0, 0, 0, 0, 0x11]
let macPool2: [UInt8] = [0x02, 0, 0, 0, 0, 0x22]

@Suite("Queue selection: VMDq pools and RSS")
struct QueueSelectionTests {
    @Test func vmdqSteersUnicastByTheRAHPoolBits() throws {
        let h = try Harness()
        let rings = try h.vmdq()
        h.setAddress(0, Harness.mac, pools: 1 << 0)
        h.setAddress(1, macPool1, pools: 1 << 1)
        h.setAddress(2, macPool2, pools: 1 << 2)
        h.model.inject(Frames.ipv4(to: macPool2))
        h.model.inject(Frames.ipv4(to: macPool1))
        h.model.inject(Frames.ipv4(to: Harness.mac))
        h.model.step()
        #expect(rings.map { h.completed($0) } == [1, 1, 1, 0])
        #expect(rings[2].packet(0, length: 6) == macPool2)
        #expect(rings[1].packet(0, length: 6) == macPool1)
    }

    @Test func vmdqNarrowsASharedAddressByVLANMembership() throws {
        let h = try Harness()
        let rings = try h.vmdq()
        h.setAddress(1, macPool1, pools: 1 << 1 | 1 << 2)
        h.write(R.RCTL, h.read(R.RCTL) | R.RCTL_VFE)
        h.write(R.VFTA + 4 * (100 >> 5), 1 << (100 & 31))
        h.write(R.VLVF(0), 1 << 31 | (1 << 2) << 12 | 100)   // VI_EN, POOLSEL = pool 2, VLAN 100
        h.model.inject(Frames.ipv4(to: macPool1, vlan: 100))
        h.model.step()
        #expect(rings.map { h.completed($0) } == [0, 0, 1, 0])
    }

    @Test func unmatchedUnicastGoesToTheDefaultPoolUnlessDisabled() throws {
        let h = try Harness()
        let rings = try h.vmdq()
        h.write(R.VT_CTL, 3 << 7)
        h.model.inject(Frames.ipv4(to: [0x02, 1, 2, 3, 4, 5]))
        h.model.step()
        #expect(rings.map { h.completed($0) } == [0, 0, 0, 1])
        h.write(R.VT_CTL, 3 << 7 | 1 << 29)
        h.model.inject(Frames.ipv4(to: [0x02, 1, 2, 3, 4, 5]))
        h.model.step()
        #expect(rings.map { h.completed($0) } == [0, 0, 0, 1])
        #expect(h.model.wireCounters.filtered == 1)
    }

    @Test func broadcastIsReplicatedToEveryPoolWithBAM() throws {
        for fidelity in [IGBModel.Fidelity.datasheet, .qemu] {
            let h = try Harness(fidelity: fidelity)
            let rings = try h.vmdq()
            h.write(R.VMOLR(2), R.VMOLR_AUPE)   // pool 2 without BAM
            h.model.inject(Frames.ethernet(to: Frames.broadcast, payload: [9]))
            h.model.step()
            #expect(rings.map { h.completed($0) } == [1, 1, 0, 1])
            #expect(h.read(R.BPRC) == (fidelity == .qemu ? 3 : 1), "QEMU counts every queue copy")
        }
    }

    @Test func theToeplitzHashMatchesTheMicrosoftVerificationVectors() throws {
        let h = try Harness()
        try h.linkUp()
        let q0 = try h.setupRX(queue: 0)
        let q3 = try h.setupRX(queue: 3)
        // 66.9.149.187:2794 → 161.142.100.80:1766: IPv4 hash 0x323e8fc2, IPv4/TCP hash 0x51ccc178.
        h.programRSS(mrqc: 2 | 1 << 16 | 1 << 17) { $0 == 0x51ccc178 & 0x7F ? 3 : 0 }
        h.enableReceive()
        h.model.inject(Frames.ipv4(tcp: true))
        h.model.inject(Frames.ipv4(tcp: false))   // no UDP enable: hashed on addresses only
        // 199.92.111.2:14230 → 65.69.140.83:4739: IPv4/TCP hash 0xc626b0ea.
        h.model.inject(Frames.ipv4(src: [199, 92, 111, 2], dstIP: [65, 69, 140, 83], srcPort: 14230, dstPort: 4739, tcp: true))
        h.model.step()
        let tcp = q3.writeBack(0)
        #expect(tcp.hiDword == 0x51ccc178)
        #expect(tcp.rssType == 1)
        let ip = q0.writeBack(0)
        #expect(ip.hiDword == 0x323e8fc2)
        #expect(ip.rssType == 2)
        #expect(q0.writeBack(1).hiDword == 0xc626b0ea)
    }

    @Test func qemuModeNeedsPCSDForRSS() throws {
        let h = try Harness(fidelity: .qemu)
        try h.linkUp()
        let q0 = try h.setupRX(queue: 0)
        let q3 = try h.setupRX(queue: 3)
        h.programRSS(mrqc: 2 | 1 << 16) { _ in 3 }
        h.enableReceive()
        h.model.inject(Frames.ipv4(tcp: true))
        h.model.step()
        #expect(h.completed(q0) == 1)
        #expect(q0.writeBack(0).rssType == 0)
        h.write(R.RXCSUM, h.read(R.RXCSUM) | R.RXCSUM_PCSD)
        h.model.inject(Frames.ipv4(tcp: true))
        h.model.step()
        #expect(h.completed(q3) == 1)
        #expect(q3.writeBack(0).hiDword == 0x51ccc178)
    }

    @Test func vmdqWithRSSUsesTheSecondQueueOfAPoolOnlyInDatasheetMode() throws {
        for fidelity in [IGBModel.Fidelity.datasheet, .qemu] {
            let h = try Harness(fidelity: fidelity)
            let rings = try h.vmdq(queues: 2)
            let q9 = try h.setupRX(queue: 9)
            h.setAddress(1, macPool1, pools: 1 << 1)
            h.write(R.VMOLR(1), R.VMOLR_AUPE | R.VMOLR_RSSE)
            h.write(R.RXCSUM, h.read(R.RXCSUM) | R.RXCSUM_PCSD)
            h.programRSS(mrqc: 5 | 1 << 16) { _ in 8 }
            h.model.inject(Frames.ipv4(to: macPool1, tcp: true))
            h.model.step()
            if fidelity == .qemu {
                #expect(h.completed(rings[1]) == 1)
                #expect(h.completed(q9) == 0)
            } else {
                #expect(h.completed(q9) == 1)
                #expect(q9.writeBack(0).hiDword == 0x51ccc178)
            }
        }
    }
}
