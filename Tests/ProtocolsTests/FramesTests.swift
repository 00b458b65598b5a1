import NDIS
import Testing
@testable import Protocols

@Suite struct FramesTests {
    @Test func ipv4AddressesParseOnlyInDottedQuadForm() {
        #expect(IPv4Address("192.168.1.10")?.value == 0xC0A8_010A)
        #expect(IPv4Address("0.0.0.0")?.value == 0)
        #expect(IPv4Address("255.255.255.255")?.value == 0xFFFF_FFFF)
        for bad in ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "a.b.c.d", "1..2.3", " 1.2.3.4", "1.2.3.-4"] {
            #expect(IPv4Address(bad) == nil, "\(bad) should not parse")
        }
        #expect(IPv4Address(10, 0, 0, 7).description == "10.0.0.7")
    }

    @Test func internetChecksumMatchesTheRFC1071Example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2, checksum 220d.
        let bytes: [UInt8] = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]
        #expect(bytes.withUnsafeBytes { InternetChecksum.compute($0) } == 0x220d)
        let withSum = bytes + [0x22, 0x0d]
        #expect(withSum.withUnsafeBytes { InternetChecksum.verify($0) })
        #expect(!(bytes + [0x22, 0x0e]).withUnsafeBytes { InternetChecksum.verify($0) })
    }

    @Test func aStrippedVLANTagIsPutBackAfterTheSourceAddress() {
        let untagged = FrameBuilder.filler(destination: Addr.mac1, source: Addr.peer, length: 80)
        let tagged = FrameBuilder.filler(destination: Addr.mac1, source: Addr.peer, vlan: 100, length: 84)
        // The hardware stripped the tag: the NBL holds the untagged bytes plus VLAN info.
        let stripped = Array(tagged[0..<12] + tagged[16...])
        let h = HandMadeNBL(stripped, vlan: 100, priority: 5)
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: 2048, alignment: 8)
        defer { out.deallocate() }
        let (wire, copied) = h.nbl.copyWireFrame(into: out)
        #expect(wire == stripped.count + 4)
        #expect(copied == wire)
        var expected = tagged
        expected[14] = 0xA0 | expected[14] // priority 5 in the top three bits of the TCI
        #expect(Array(out[0..<copied]) == expected)
        // No VLAN info: copied as is.
        let plain = HandMadeNBL(untagged)
        let (w2, c2) = plain.nbl.copyWireFrame(into: out)
        #expect(w2 == untagged.count && c2 == untagged.count)
        #expect(Array(out[0..<c2]) == untagged)
    }

    @Test func copyFromAnOffsetWalksAcrossSegments() {
        let frame = (0..<200).map { UInt8($0) }
        let h = HandMadeNBL(frame, split: 54)
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 8)
        defer { out.deallocate() }
        #expect(h.nbl.copyData(into: out, from: 50, count: 10) == 10)
        #expect(Array(out.prefix(10)) == Array(50..<60))
        #expect(h.nbl.copyData(into: out, from: 190, count: 50) == 10)
        #expect(h.nbl.copyData(into: out, from: 200, count: 5) == 0)
    }
}
