import NDIS
import Testing
@testable import Protocols

@Suite struct ResponderTests {
    let ip = IPv4Address(192, 168, 7, 1)
    let peerIP = IPv4Address(192, 168, 7, 2)

    func bed(limit: Int? = nil) throws -> (LoopbackBed, Responder) {
        let bed = try LoopbackBed(mac: Addr.mac1)
        let r = Responder(address: ip, limit: limit)
        _ = try bed.adapter.openBinding(r, frameTypes: Responder.frameTypes)
        #expect(r.setupError == nil)
        #expect(r.mac == Addr.mac1)
        return (bed, r)
    }

    @Test func anARPRequestForOurAddressGetsAReplyWithOurMAC() throws {
        let (bed, r) = try bed()
        bed.miniport.inject(FrameBuilder.arpRequest(senderMAC: Addr.peer, senderIP: peerIP, targetIP: ip))
        bed.pump()
        let out = bed.miniport.takeTransmitted()
        #expect(out.count == 1)
        guard let reply = out.first else { return }
        #expect(reply.count == 60)
        #expect(Array(reply[0..<6]) == Addr.peer.array)        // to the asker
        #expect(Array(reply[6..<12]) == Addr.mac1.array)       // from us
        #expect(reply[12] == 0x08 && reply[13] == 0x06)
        #expect(reply[20] == 0 && reply[21] == 2)              // ARP reply
        #expect(Array(reply[22..<28]) == Addr.mac1.array)      // sender hardware address
        #expect(Array(reply[28..<32]) == [192, 168, 7, 1])     // sender protocol address
        #expect(Array(reply[32..<38]) == Addr.peer.array)      // target hardware address
        #expect(Array(reply[38..<42]) == [192, 168, 7, 2])     // target protocol address
        #expect(r.arpReplies == 1)
        #expect(bed.adapter.outstandingNetBufferLists == 0)
        #expect(bed.halt().isClean)
    }

    @Test func anARPRequestForAnotherAddressIsIgnored() throws {
        let (bed, r) = try bed()
        bed.miniport.inject(FrameBuilder.arpRequest(senderMAC: Addr.peer, senderIP: peerIP, targetIP: IPv4Address(192, 168, 7, 99)))
        bed.pump()
        #expect(bed.miniport.takeTransmitted().isEmpty)
        #expect(r.ignored == 1)
        _ = bed.halt()
    }

    @Test func anEchoRequestGetsAnEchoReplyWithCorrectChecksumsAndTheSameData() throws {
        let (bed, r) = try bed()
        let data = (0..<100).map { UInt8($0 * 3 & 0xff) }
        bed.miniport.inject(FrameBuilder.echoRequest(sourceMAC: Addr.peer, destinationMAC: Addr.mac1, source: peerIP, destination: ip,
                                                     identifier: 0xbeef, sequence: 9, data: data))
        bed.pump()
        let out = bed.miniport.takeTransmitted()
        #expect(out.count == 1)
        guard let reply = out.first else { return }
        #expect(Array(reply[0..<6]) == Addr.peer.array)
        #expect(Array(reply[6..<12]) == Addr.mac1.array)
        let ipHeader = Array(reply[14..<34])
        #expect(ipHeader.withUnsafeBytes { InternetChecksum.verify($0) })
        #expect(Array(ipHeader[12..<16]) == [192, 168, 7, 1])
        #expect(Array(ipHeader[16..<20]) == [192, 168, 7, 2])
        let total = Int(ipHeader[2]) << 8 | Int(ipHeader[3])
        #expect(total == 20 + 8 + data.count)
        let icmp = Array(reply[34..<(14 + total)])
        #expect(icmp[0] == 0 && icmp[1] == 0)
        #expect(icmp.withUnsafeBytes { InternetChecksum.verify($0) })
        #expect(Array(icmp[4..<8]) == [0xbe, 0xef, 0, 9])
        #expect(Array(icmp[8...]) == data)
        #expect(r.echoReplies == 1)
        #expect(bed.halt().isClean)
    }

    @Test func anEchoRequestWithABadChecksumIsDroppedAsMalformed() throws {
        let (bed, r) = try bed()
        var f = FrameBuilder.echoRequest(sourceMAC: Addr.peer, destinationMAC: Addr.mac1, source: peerIP, destination: ip)
        f[40] ^= 0xff // a data byte: the ICMP checksum no longer holds
        bed.miniport.inject(f)
        var g = FrameBuilder.echoRequest(sourceMAC: Addr.peer, destinationMAC: Addr.mac1, source: peerIP, destination: ip)
        g[22] ^= 0x01 // the TTL: the IPv4 header checksum no longer holds
        bed.miniport.inject(g)
        bed.pump()
        #expect(bed.miniport.takeTransmitted().isEmpty)
        #expect(r.malformed == 2)
        _ = bed.halt()
    }

    @Test func aTaggedRequestIsAnsweredInTheSameVLAN() throws {
        let (bed, _) = try bed()
        bed.miniport.inject(FrameBuilder.echoRequest(sourceMAC: Addr.peer, destinationMAC: Addr.mac1, source: peerIP, destination: ip, vlan: 42))
        bed.miniport.inject(FrameBuilder.arpRequest(senderMAC: Addr.peer, senderIP: peerIP, targetIP: ip, vlan: 42))
        bed.pump()
        let out = bed.miniport.takeTransmitted()
        #expect(out.count == 2)
        for reply in out {
            #expect(reply[12] == 0x81 && reply[13] == 0x00)
            #expect(Int(reply[14] & 0x0f) << 8 | Int(reply[15]) == 42)
        }
        _ = bed.halt()
    }

    @Test func aLimitStopsAnsweringAfterThatManyReplies() throws {
        let (bed, r) = try bed(limit: 2)
        for _ in 0..<5 { bed.miniport.inject(FrameBuilder.arpRequest(senderMAC: Addr.peer, senderIP: peerIP, targetIP: ip)) }
        bed.pump()
        #expect(bed.miniport.takeTransmitted().count == 2)
        #expect(r.isComplete)
        _ = bed.halt()
    }

    @Test func otherEtherTypesNeverReachTheResponder() throws {
        let (bed, r) = try bed()
        bed.miniport.inject(FrameBuilder.filler(destination: Addr.mac1, source: Addr.peer, length: 80))
        bed.pump()
        #expect(r.ignored == 0 && r.replies == 0)
        #expect(bed.adapter.outstandingNetBufferLists == 0)
        _ = bed.halt()
    }
}

@Suite struct PacketGeneratorTests {
    func bed(_ c: GeneratorConfiguration) throws -> (LoopbackBed, PacketGenerator) {
        let bed = try LoopbackBed(mac: Addr.mac1)
        let g = PacketGenerator(configuration: c, poolSize: 64)
        _ = try bed.adapter.openBinding(g)
        #expect(g.setupError == nil)
        return (bed, g)
    }

    @Test func framesHaveTheSizeValidChecksumsAndSequenceNumbersInOrder() throws {
        let c = GeneratorConfiguration(destinationMAC: Addr.peer, frameSize: 128, count: 100)
        let (bed, g) = try bed(c)
        var now: UInt64 = 1
        while !g.isComplete { g.generate(now: now); now += 1 }
        let out = bed.miniport.takeTransmitted()
        #expect(out.count == 100)
        #expect(out.allSatisfy { $0.count == 128 })
        #expect(out.map { GeneratedFrameLayout.sequenceNumber(in: $0) } == (0..<100).map { UInt64($0) })
        for f in out {
            #expect(Array(f[0..<6]) == Addr.peer.array)
            #expect(Array(f[6..<12]) == Addr.mac1.array)
            #expect(Array(f[14..<34]).withUnsafeBytes { InternetChecksum.verify($0) })
            let udp = Array(f[34...])
            let pseudo: [UInt8] = [10, 0, 0, 1, 10, 0, 0, 2, 0, 17, UInt8(udp.count >> 8), UInt8(udp.count & 0xff)]
            #expect((pseudo + udp).withUnsafeBytes { InternetChecksum.verify($0) })
        }
        #expect(g.completed == 100)
        #expect(g.isDrained)
        #expect(bed.halt().isClean)
    }

    @Test func theRateLimitsHowManyFramesAreDue() throws {
        let c = GeneratorConfiguration(destinationMAC: Addr.peer, frameSize: 60, rate: 1000, count: 1000, batchSize: 256)
        let (bed, g) = try bed(c)
        let t0: UInt64 = 5_000_000_000
        #expect(g.generate(now: t0) == 1)                  // the first frame at time 0
        #expect(g.generate(now: t0) == 0)
        #expect(g.generate(now: t0 + 10_000_000) == 10)    // 10 ms at 1000/s
        #expect(g.nanosecondsUntilDue(now: t0 + 10_000_000) == 1_000_000)
        #expect(g.generate(now: t0 + 50_000_000) == 40)
        #expect(g.sent == 51)
        _ = bed.halt()
    }

    @Test(arguments: [59, 1515, 0])
    func aFrameSizeOutsideTheEthernetLimitsIsRefused(_ size: Int) {
        let c = GeneratorConfiguration(frameSize: size)
        #expect(throws: InputError.self) { try c.validate() }
    }
}
