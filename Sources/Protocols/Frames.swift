#if canImport(Glibc)
import Glibc
#endif
import NDIS

/// EtherTypes (host order) the modules look at.
public enum EtherType {
    public static let ipv4: UInt16 = 0x0800
    public static let arp: UInt16 = 0x0806
    /// IEEE 802.1Q tag protocol identifier.
    public static let vlan: UInt16 = 0x8100
}

/// Sizes of an Ethernet frame as the modules see it: no preamble, no FCS (the hardware strips it).
public enum EthernetFrame {
    public static let headerLength = 14
    public static let vlanTagLength = 4
    /// Shortest frame on the wire without FCS (64 with it).
    public static let minimumLength = 60
    /// Longest untagged frame without FCS (1518 with it).
    public static let maximumLength = 1514
    /// Longest 802.1Q-tagged frame without FCS (1522 with it).
    public static let maximumTaggedLength = 1518
}

/// An IPv4 address, kept in host order.
public struct IPv4Address: Hashable, Sendable, CustomStringConvertible {
    public var value: UInt32
    public init(_ value: UInt32) { self.value = value }
    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        value = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Parses dotted quad notation, strictly: four decimal parts 0...255, no leading zeros, nothing else.
    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var v: UInt32 = 0
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy({ $0.isASCII && $0.isNumber }),
                  p == "0" || !p.hasPrefix("0"), let n = UInt8(p) else { return nil }
            v = v << 8 | UInt32(n)
        }
        value = v
    }

    public var description: String { "\(value >> 24).\(value >> 16 & 0xff).\(value >> 8 & 0xff).\(value & 0xff)" }

    /// Why this address cannot be one host's own unicast address, or nil when it can
    /// (RFC 1122 3.2.1.3, RFC 5771, RFC 1112; IANA special-purpose registry).
    public var notAHostAddress: String? {
        let first = value >> 24
        if value == 0 { return "0.0.0.0 means no address (this host before it has one)" }
        if value == 0xffff_ffff { return "255.255.255.255 is the limited broadcast address" }
        if first == 0 { return "0.0.0.0/8 means this network, not a host" }
        if first == 127 { return "127.0.0.0/8 is loopback, never on a wire" }
        if first >= 224 && first <= 239 { return "224.0.0.0/4 is multicast, a group and not a host" }
        if first >= 240 { return "240.0.0.0/4 is reserved" }
        return nil
    }
}

/// The RFC 1071 Internet checksum: the ones' complement of the ones' complement sum of 16-bit words.
public enum InternetChecksum {
    /// Adds `bytes` to a running sum (big-endian words; an odd last byte is padded with zero).
    @inlinable
    public static func add(_ bytes: UnsafeRawBufferPointer, to initial: UInt32 = 0) -> UInt32 {
        var sum = UInt64(initial)
        let n = bytes.count
        var i = 0
        while i + 1 < n {
            sum &+= UInt64(bytes[i]) << 8 | UInt64(bytes[i + 1])
            i += 2
        }
        if i < n { sum &+= UInt64(bytes[i]) << 8 }
        while sum > 0xffff_ffff { sum = (sum & 0xffff_ffff) &+ (sum >> 32) }
        return UInt32(sum)
    }

    /// Adds one 16-bit word to a running sum.
    @inlinable
    public static func add(word: UInt16, to sum: UInt32) -> UInt32 {
        let s = UInt64(sum) &+ UInt64(word)
        return UInt32(truncatingIfNeeded: (s & 0xffff_ffff) &+ (s >> 32))
    }

    /// Folds a running sum to 16 bits and complements it: the value to store in a header.
    @inlinable
    public static func finish(_ sum: UInt32) -> UInt16 {
        var s = sum
        while s > 0xffff { s = (s & 0xffff) &+ (s >> 16) }
        return ~UInt16(s)
    }

    /// The checksum of `bytes`.
    @inlinable
    public static func compute(_ bytes: UnsafeRawBufferPointer) -> UInt16 { finish(add(bytes)) }

    /// True when `bytes` (which include their checksum field) are intact.
    @inlinable
    public static func verify(_ bytes: UnsafeRawBufferPointer) -> Bool { compute(bytes) == 0 }
}

/// Big-endian loads and stores on frame memory; callers check lengths first.
extension UnsafeRawBufferPointer {
    @inlinable func be16(_ offset: Int) -> UInt16 { UInt16(self[offset]) << 8 | UInt16(self[offset + 1]) }
    @inlinable func be32(_ offset: Int) -> UInt32 {
        UInt32(self[offset]) << 24 | UInt32(self[offset + 1]) << 16 | UInt32(self[offset + 2]) << 8 | UInt32(self[offset + 3])
    }
    @inlinable func mac(_ offset: Int) -> MACAddress {
        MACAddress(self[offset], self[offset + 1], self[offset + 2], self[offset + 3], self[offset + 4], self[offset + 5])
    }
}

extension UnsafeMutableRawBufferPointer {
    @inlinable func setBE16(_ offset: Int, _ v: UInt16) {
        self[offset] = UInt8(v >> 8)
        self[offset + 1] = UInt8(v & 0xff)
    }
    @inlinable func setBE32(_ offset: Int, _ v: UInt32) {
        self[offset] = UInt8(v >> 24)
        self[offset + 1] = UInt8(v >> 16 & 0xff)
        self[offset + 2] = UInt8(v >> 8 & 0xff)
        self[offset + 3] = UInt8(v & 0xff)
    }
    @inlinable func setBE64(_ offset: Int, _ v: UInt64) {
        setBE32(offset, UInt32(v >> 32))
        setBE32(offset + 4, UInt32(v & 0xffff_ffff))
    }
    @inlinable func setMAC(_ offset: Int, _ mac: MACAddress) {
        self[offset] = mac.bytes.0
        self[offset + 1] = mac.bytes.1
        self[offset + 2] = mac.bytes.2
        self[offset + 3] = mac.bytes.3
        self[offset + 4] = mac.bytes.4
        self[offset + 5] = mac.bytes.5
    }
}

extension NetBufferList {
    /// Copies the frame as it was on the wire into `destination`: if the hardware stripped an 802.1Q
    /// tag (`info.vlanPresent`), the tag is put back after the source address.
    /// - Returns: the frame's length on the wire and how many bytes were copied (at most `destination.count`).
    @inlinable
    public func copyWireFrame(into destination: UnsafeMutableRawBufferPointer) -> (wireLength: Int, copied: Int) {
        let info = self.info
        let length = dataLength
        guard info.vlanPresent, length >= 12 else {
            return (length, copyData(into: destination))
        }
        let wire = length + EthernetFrame.vlanTagLength
        guard let base = destination.baseAddress, destination.count >= 16 else {
            // Too short to hold the tag: keep the addresses only.
            return (wire, copyData(into: destination, count: min(12, destination.count)))
        }
        _ = copyData(into: UnsafeMutableRawBufferPointer(start: base, count: 12))
        // 802.1Q tag: TPID 0x8100, then TCI = PCP(3) | DEI(1) | VID(12).
        destination.setBE16(12, EtherType.vlan)
        destination.setBE16(14, UInt16(info.userPriority & 0x7) << 13 | (info.vlanID & 0x0fff))
        let rest = copyData(into: UnsafeMutableRawBufferPointer(start: base + 16, count: destination.count - 16), from: 12)
        return (wire, 16 + rest)
    }
}

/// Clocks the modules read (no allocation).
public enum Clock {
    /// Wall-clock time in nanoseconds since the Unix epoch (CLOCK_REALTIME), for capture timestamps.
    @inlinable
    public static func realtimeNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// Monotonic time in nanoseconds (CLOCK_MONOTONIC), for rates and timeouts.
    @inlinable
    public static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}
