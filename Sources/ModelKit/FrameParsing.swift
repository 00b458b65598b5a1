// Header parsing, checksums, the Toeplitz hash and the Ethernet CRC, as a model NIC's receive and
// transmit engines need them (ModelKit: every model shares them). Everything works on raw bytes the model owns (FIFO slots, scratch
// buffers) and allocates nothing.

/// What the receive/transmit engines learn from a frame's headers.
public struct FrameInfo {
    @inlinable public init() {}
    public var tagged = false
    public var tci: UInt16 = 0
    /// Offset of the L3 header (14, or 18 when tagged).
    public var l3Offset = 14
    public var etherType: UInt16 = 0
    public var isIPv4 = false
    public var isIPv6 = false
    /// IPv6 with an extension header we do not walk.
    public var ipv6Extension = false
    public var isFragment = false
    public var l3HeaderLength = 0
    /// IP protocol / next header (6 TCP, 17 UDP, 132 SCTP).
    public var l4Protocol: UInt8 = 0
    public var l4Offset = 0
    public var l4HeaderLength = 0
    /// End of the IP datagram (excludes Ethernet padding and FCS).
    public var ipEnd = 0

    public var isTCP: Bool { l4HeaderLength > 0 && l4Protocol == 6 }
    public var isUDP: Bool { l4HeaderLength > 0 && l4Protocol == 17 }
    /// Offset of the first byte after the L4 header, or after L3 for other IP, or 0 if unknown.
    public var splitOffset: Int {
        if l4HeaderLength > 0 { return l4Offset + l4HeaderLength }
        if isIPv4 || isIPv6 { return l3Offset + l3HeaderLength }
        return 0
    }
}

@inlinable @inline(__always) public func load16BE(_ p: UnsafeRawPointer, _ o: Int) -> UInt16 {
    UInt16(p.load(fromByteOffset: o, as: UInt8.self)) << 8 | UInt16(p.load(fromByteOffset: o + 1, as: UInt8.self))
}

@inlinable @inline(__always) public func store16BE(_ p: UnsafeMutableRawPointer, _ o: Int, _ v: UInt16) {
    p.storeBytes(of: UInt8(v >> 8), toByteOffset: o, as: UInt8.self)
    p.storeBytes(of: UInt8(v & 0xFF), toByteOffset: o + 1, as: UInt8.self)
}

/// Parses L2 (one 802.1Q tag matching `vet`), IPv4/IPv6 and TCP/UDP headers.
@inlinable public func parseFrame(_ p: UnsafeRawPointer, length: Int, vet: UInt16) -> FrameInfo {
    var info = FrameInfo()
    guard length >= 14 else { return info }
    var type = load16BE(p, 12)
    if type == vet, length >= 18 {
        info.tagged = true
        info.tci = load16BE(p, 14)
        type = load16BE(p, 16)
        info.l3Offset = 18
    }
    info.etherType = type
    let l3 = info.l3Offset
    if type == 0x0800, length >= l3 + 20 {
        let vihl = p.load(fromByteOffset: l3, as: UInt8.self)
        let ihl = Int(vihl & 0x0F) * 4
        guard vihl >> 4 == 4, ihl >= 20, length >= l3 + ihl else { return info }
        info.isIPv4 = true
        info.l3HeaderLength = ihl
        let total = Int(load16BE(p, l3 + 2))
        info.ipEnd = min(length, l3 + max(total, ihl))
        let frag = load16BE(p, l3 + 6)
        info.isFragment = (frag & 0x3FFF) != 0
        info.l4Protocol = p.load(fromByteOffset: l3 + 9, as: UInt8.self)
        info.l4Offset = l3 + ihl
    } else if type == 0x86DD, length >= l3 + 40 {
        guard p.load(fromByteOffset: l3, as: UInt8.self) >> 4 == 6 else { return info }
        info.isIPv6 = true
        info.l3HeaderLength = 40
        info.ipEnd = min(length, l3 + 40 + Int(load16BE(p, l3 + 4)))
        info.l4Protocol = p.load(fromByteOffset: l3 + 6, as: UInt8.self)
        info.l4Offset = l3 + 40
        if info.l4Protocol != 6 && info.l4Protocol != 17 && info.l4Protocol != 132 && info.l4Protocol != 58 {
            info.ipv6Extension = true
            return info
        }
    } else {
        return info
    }
    guard !info.isFragment else { return info }
    let l4 = info.l4Offset
    if info.l4Protocol == 6, info.ipEnd >= l4 + 20 {
        let off = Int(p.load(fromByteOffset: l4 + 12, as: UInt8.self) >> 4) * 4
        if off >= 20, info.ipEnd >= l4 + off { info.l4HeaderLength = off }
    } else if info.l4Protocol == 17, info.ipEnd >= l4 + 8 {
        info.l4HeaderLength = 8
    }
    return info
}

/// 16-bit one's-complement sum of `length` bytes (big-endian words), added to `initial`.
@inlinable public func onesComplementSum(_ p: UnsafeRawPointer, _ length: Int, initial: UInt32 = 0) -> UInt32 {
    var sum = UInt64(initial)
    var i = 0
    while i + 1 < length {
        sum &+= UInt64(load16BE(p, i))
        i += 2
    }
    if i < length { sum &+= UInt64(p.load(fromByteOffset: i, as: UInt8.self)) << 8 }
    while sum >> 16 != 0 { sum = (sum & 0xFFFF) &+ (sum >> 16) }
    return UInt32(sum)
}

@inlinable @inline(__always) public func foldChecksum(_ sum: UInt32) -> UInt16 {
    var s = sum
    while s >> 16 != 0 { s = (s & 0xFFFF) &+ (s >> 16) }
    return ~UInt16(s)
}

/// The TCP/UDP pseudo-header sum for the datagram described by `info` with `l4Length` bytes of L4.
@inlinable public func pseudoHeaderSum(_ p: UnsafeRawPointer, _ info: FrameInfo, l4Length: Int) -> UInt32 {
    var sum: UInt32 = 0
    if info.isIPv4 {
        sum = onesComplementSum(p + info.l3Offset + 12, 8)
    } else {
        sum = onesComplementSum(p + info.l3Offset + 8, 32)
    }
    sum &+= UInt32(info.l4Protocol) &+ UInt32(l4Length & 0xFFFF) &+ UInt32(l4Length >> 16)
    return sum
}

/// Toeplitz hash (Microsoft RSS, 82576 datasheet §7.1.1.7.1) of `input` with the 40-byte `key`.
@inlinable public func toeplitzHash(key: UnsafeRawPointer, input: UnsafeRawPointer, length: Int) -> UInt32 {
    var result: UInt32 = 0
    // `window` holds key bits [i, i+64) for input bit i; refilled one key byte at a time.
    var window: UInt64 = 0
    for k in 0..<8 { window = window << 8 | UInt64(key.load(fromByteOffset: k, as: UInt8.self)) }
    var nextKeyByte = 8
    for i in 0..<length {
        let byte = input.load(fromByteOffset: i, as: UInt8.self)
        for bit in 0..<8 where byte & (0x80 >> UInt8(bit)) != 0 {
            result ^= UInt32(truncatingIfNeeded: window >> (32 - UInt64(bit)))
        }
        window <<= 8
        if nextKeyByte < 40 { window |= UInt64(key.load(fromByteOffset: nextKeyByte, as: UInt8.self)) }
        nextKeyByte += 1
    }
    return result
}

/// IEEE 802.3 CRC-32 as it appears in the FCS field (little-endian bytes on the wire).
public let crc32Table: [UInt32] = (0..<256).map { n -> UInt32 in
    var c = UInt32(n)
    for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    return c
}

@inlinable public func ethernetCRC(_ p: UnsafeRawPointer, _ length: Int) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    crc32Table.withUnsafeBufferPointer { table in
        for i in 0..<length {
            let b = p.load(fromByteOffset: i, as: UInt8.self)
            crc = table[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8)
        }
    }
    return ~crc
}
