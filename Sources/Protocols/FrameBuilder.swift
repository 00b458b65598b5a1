import NDIS

/// Builds frames as arrays, for traffic scripts, the model's wire and tests (not for hot paths).
public enum FrameBuilder {
    /// An Ethernet frame: header, an optional 802.1Q tag, the payload, padded to 60 bytes.
    public static func ethernet(destination: MACAddress, source: MACAddress, type: UInt16, vlan: UInt16? = nil,
                                priority: UInt8 = 0, payload: [UInt8]) -> [UInt8] {
        var f = destination.array + source.array
        if let vlan {
            let tci = UInt16(priority & 7) << 13 | (vlan & 0x0fff)
            f += [0x81, 0x00, UInt8(tci >> 8), UInt8(tci & 0xff)]
        }
        f += [UInt8(type >> 8), UInt8(type & 0xff)]
        f += payload
        if f.count < EthernetFrame.minimumLength { f += [UInt8](repeating: 0, count: EthernetFrame.minimumLength - f.count) }
        return f
    }

    /// A frame of exactly `length` bytes (at least 60) to `destination`, with a counting payload.
    public static func filler(destination: MACAddress, source: MACAddress, vlan: UInt16? = nil, length: Int, type: UInt16 = 0x88b5) -> [UInt8] {
        let header = 14 + (vlan == nil ? 0 : 4)
        let payload = (0..<max(0, length - header)).map { UInt8(truncatingIfNeeded: $0) }
        return ethernet(destination: destination, source: source, type: type, vlan: vlan, payload: payload)
    }

    /// An ARP request (RFC 826) from `senderMAC`/`senderIP` asking for `targetIP`, broadcast.
    public static func arpRequest(senderMAC: MACAddress, senderIP: IPv4Address, targetIP: IPv4Address, vlan: UInt16? = nil) -> [UInt8] {
        var p: [UInt8] = [0, 1, 0x08, 0x00, 6, 4, 0, 1]
        p += senderMAC.array + be32(senderIP.value) + [0, 0, 0, 0, 0, 0] + be32(targetIP.value)
        return ethernet(destination: .broadcast, source: senderMAC, type: EtherType.arp, vlan: vlan, payload: p)
    }

    /// An IPv4 header (20 bytes, checksum filled in).
    public static func ipv4Header(source: IPv4Address, destination: IPv4Address, protocol proto: UInt8, payloadLength: Int,
                                  identification: UInt16 = 1, ttl: UInt8 = 64) -> [UInt8] {
        var h: [UInt8] = [0x45, 0] + be16(UInt16(20 + payloadLength)) + be16(identification) + [0x40, 0, ttl, proto, 0, 0]
        h += be32(source.value) + be32(destination.value)
        let sum = h.withUnsafeBytes { InternetChecksum.compute($0) }
        h[10] = UInt8(sum >> 8)
        h[11] = UInt8(sum & 0xff)
        return h
    }

    /// An ICMP echo request (RFC 792) with `data` after identifier and sequence.
    public static func echoRequest(sourceMAC: MACAddress, destinationMAC: MACAddress, source: IPv4Address, destination: IPv4Address,
                                   identifier: UInt16 = 0x1234, sequence: UInt16 = 1, data: [UInt8] = Array(0..<32), vlan: UInt16? = nil) -> [UInt8] {
        var icmp: [UInt8] = [8, 0, 0, 0] + be16(identifier) + be16(sequence) + data
        let sum = icmp.withUnsafeBytes { InternetChecksum.compute($0) }
        icmp[2] = UInt8(sum >> 8)
        icmp[3] = UInt8(sum & 0xff)
        let ip = ipv4Header(source: source, destination: destination, protocol: 1, payloadLength: icmp.count, identification: sequence)
        return ethernet(destination: destinationMAC, source: sourceMAC, type: EtherType.ipv4, vlan: vlan, payload: ip + icmp)
    }

    /// A UDP/IPv4 frame with a correct UDP checksum.
    public static func udp(sourceMAC: MACAddress, destinationMAC: MACAddress, source: IPv4Address, destination: IPv4Address,
                           sourcePort: UInt16, destinationPort: UInt16, payload: [UInt8], vlan: UInt16? = nil) -> [UInt8] {
        var u = be16(sourcePort) + be16(destinationPort) + be16(UInt16(8 + payload.count)) + [0, 0] + payload
        let pseudo = be32(source.value) + be32(destination.value) + [0, 17] + be16(UInt16(u.count))
        let sum = (pseudo + u).withUnsafeBytes { InternetChecksum.compute($0) }
        let s = sum == 0 ? 0xffff : sum
        u[6] = UInt8(s >> 8)
        u[7] = UInt8(s & 0xff)
        let ip = ipv4Header(source: source, destination: destination, protocol: 17, payloadLength: u.count)
        return ethernet(destination: destinationMAC, source: sourceMAC, type: EtherType.ipv4, vlan: vlan, payload: ip + u)
    }

    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }
}
