/// A 48-bit MAC address.
public struct MACAddress: Hashable, Sendable, CustomStringConvertible, Comparable {
    public var bytes: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)
    public init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8, _ b4: UInt8, _ b5: UInt8) {
        bytes = (b0, b1, b2, b3, b4, b5)
    }
    public init?(bytes array: some Collection<UInt8>) {
        guard array.count == 6 else { return nil }
        let a = Array(array)
        self.init(a[0], a[1], a[2], a[3], a[4], a[5])
    }
    /// Parses `52:54:00:aa:00:01` (or with `-`): exactly six pairs of hex digits. Empty parts
    /// (`52::54:…`, a leading or trailing separator) and signs (`+f`) are refused (found by the
    /// `parsers` fuzz target).
    public init?(_ text: String) {
        let parts = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == ":" || $0 == "-" })
        guard parts.count == 6 else { return nil }
        var out: [UInt8] = []
        for p in parts {
            guard p.count == 2, p.allSatisfy(\.isHexDigit), let v = UInt8(p, radix: 16) else { return nil }
            out.append(v)
        }
        self.init(bytes: out)
    }
    public static let broadcast = MACAddress(0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
    public var array: [UInt8] { [bytes.0, bytes.1, bytes.2, bytes.3, bytes.4, bytes.5] }
    public var isBroadcast: Bool { self == .broadcast }
    public var isMulticast: Bool { bytes.0 & 1 == 1 }
    public var description: String { array.map { h2($0) }.joined(separator: ":") }
    public static func == (a: Self, b: Self) -> Bool { a.array == b.array }
    public func hash(into h: inout Hasher) { h.combine(array) }
    public static func < (a: Self, b: Self) -> Bool { a.array.lexicographicallyPrecedes(b.array) }
}

@inline(__always) func h2(_ v: UInt8) -> String {
    let s = String(v, radix: 16)
    return s.count == 1 ? "0" + s : s
}

/// A header field a receive filter can test. NDIS: NDIS_RECEIVE_FILTER_FIELD_* for the MAC header
/// (plus the ARP, IPv4 and UDP fields of NDIS_RECEIVE_FILTER_FIELD_PARAMETERS).
public enum FilterField: String, Sendable, CaseIterable, Codable {
    case macDestination      // NDIS_FRAME_HEADER_MAC / DEST_ADDR
    case macSource           // SOURCE_ADDR
    case etherType           // PROTOCOL (EtherType after any VLAN tag)
    case vlanID              // VLAN_ID
    case priority            // PRIORITY (802.1p)
    case packetType          // PACKET_TYPE (directed / multicast / broadcast)
    case ipv4Protocol        // IPV4_HEADER PROTOCOL
    case udpDestinationPort  // UDP_HEADER DEST_PORT

    /// Width of the field's value in bytes (values are big-endian, as in NDIS).
    public var width: Int {
        switch self {
        case .macDestination, .macSource: 6
        case .etherType, .vlanID, .udpDestinationPort: 2
        case .priority, .packetType, .ipv4Protocol: 1
        }
    }
}

/// How a field is compared. NDIS: NDIS_RECEIVE_FILTER_TEST.
public enum FilterTest: String, Sendable, CaseIterable, Codable {
    case equal, maskEqual, notEqual
}

/// Values of the packet-type field (NDIS_PACKET_TYPE_*).
public enum PacketTypeValue: UInt8, Sendable {
    case directed = 0x1, multicast = 0x2, broadcast = 0x8
}

/// One field test of a filter. NDIS: NDIS_RECEIVE_FILTER_FIELD_PARAMETERS.
public struct FieldTest: Sendable, Equatable {
    public var field: FilterField
    public var test: FilterTest
    /// Big-endian value, `field.width` bytes.
    public var value: [UInt8]
    /// Big-endian mask for `.maskEqual`, `field.width` bytes.
    public var mask: [UInt8]

    public init(field: FilterField, test: FilterTest = .equal, value: [UInt8], mask: [UInt8]? = nil) {
        self.field = field
        self.test = test
        self.value = value
        self.mask = mask ?? [UInt8](repeating: 0xff, count: value.count)
    }

    public static func macDestination(_ mac: MACAddress) -> FieldTest { FieldTest(field: .macDestination, value: mac.array) }
    public static func vlanID(_ id: UInt16) -> FieldTest { FieldTest(field: .vlanID, value: [UInt8(id >> 8), UInt8(id & 0xff)]) }
    public static func etherType(_ t: UInt16) -> FieldTest { FieldTest(field: .etherType, value: [UInt8(t >> 8), UInt8(t & 0xff)]) }

    func validate() throws(NDISError) {
        guard value.count == field.width else {
            throw .invalidParameter("\(field.rawValue) takes a \(field.width)-byte big-endian value, got \(value.count) bytes")
        }
        guard mask.count == field.width else {
            throw .invalidParameter("\(field.rawValue) mask must be \(field.width) bytes, got \(mask.count)")
        }
        if field == .vlanID {
            let v = UInt16(value[0]) << 8 | UInt16(value[1])
            guard v < 4095 else { throw .invalidParameter("VLAN id \(v) is out of range 0...4094") }
        }
    }
}

/// Flags of a receive filter.
public struct ReceiveFilterFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// NDIS_RECEIVE_FILTER_FIELD_MAC_HEADER_VLAN_UNTAGGED_OR_ZERO: a VLAN id test of 0 also matches
    /// untagged frames. Without it a filter with a VLAN test never matches an untagged frame.
    public static let vlanUntaggedOrZero = ReceiveFilterFlags(rawValue: 0x1)
}

/// Parameters of OID_RECEIVE_FILTER_SET_FILTER. Tests are ANDed within a filter; a queue's filters are ORed.
public struct ReceiveFilterParameters: Sendable, Equatable {
    public var queue: ReceiveQueueID
    public var tests: [FieldTest]
    public var flags: ReceiveFilterFlags
    public init(queue: ReceiveQueueID, tests: [FieldTest], flags: ReceiveFilterFlags = []) {
        self.queue = queue
        self.tests = tests
        self.flags = flags
    }
    public static func == (a: Self, b: Self) -> Bool {
        a.queue == b.queue && a.tests == b.tests && a.flags.rawValue == b.flags.rawValue
    }
}

/// A filter set on a queue: its id, parameters and whether the hardware or the framework runs it.
public struct ReceiveFilter: Sendable, Equatable {
    public let id: ReceiveFilterID
    public let parameters: ReceiveFilterParameters
    /// True when the miniport's hardware evaluates the filter; false when the framework does, in
    /// software, on the frames of the default queue.
    public let inHardware: Bool
    public var queue: ReceiveQueueID { parameters.queue }

    /// A short text: `mac 52:54:00:aa:00:01`, `vlan 100`, `mac … vlan 100`.
    public var summary: String {
        parameters.tests.map { t -> String in
            switch t.field {
            case .macDestination: return (t.test == .notEqual ? "not " : "") + "mac " + (MACAddress(bytes: t.value)?.description ?? "?")
            case .macSource: return "src " + (MACAddress(bytes: t.value)?.description ?? "?")
            case .vlanID: return "vlan \(UInt16(t.value[0]) << 8 | UInt16(t.value[1]))"
            case .etherType: return "ethertype 0x" + t.value.map { h2($0) }.joined()
            case .priority: return "priority \(t.value[0])"
            case .packetType: return "packet-type \(t.value[0])"
            case .ipv4Protocol: return "ip-proto \(t.value[0])"
            case .udpDestinationPort: return "udp-dport \(UInt16(t.value[0]) << 8 | UInt16(t.value[1]))"
            }
        }.joined(separator: " ")
    }
}

/// The parts of a frame a software filter looks at, parsed once per frame without allocating.
public struct ParsedFrameHeader {
    public var destination: (UInt64)   // 48 bits, big-endian order in the low bytes
    public var source: UInt64
    public var etherType: UInt16
    public var vlanPresent: Bool
    public var vlanID: UInt16
    public var priority: UInt8
    public var ipv4Protocol: UInt8?
    public var udpDestinationPort: UInt16?

    /// Parses from an NBL; VLAN from the stripped tag when the hardware removed it.
    public init?(_ nbl: NetBufferList) {
        func b(_ i: Int) -> UInt64? { nbl.byte(at: i).map(UInt64.init) }
        guard nbl.dataLength >= 14 else { return nil }
        var d: UInt64 = 0, s: UInt64 = 0
        for i in 0..<6 {
            d = d << 8 | (b(i) ?? 0)
            s = s << 8 | (b(6 + i) ?? 0)
        }
        destination = d
        source = s
        var offset = 12
        var type = UInt16(b(12)! << 8 | b(13)!)
        let info = nbl.info
        vlanPresent = info.vlanPresent
        vlanID = info.vlanID
        priority = info.userPriority
        if type == 0x8100, nbl.dataLength >= 18 {
            let tci = UInt16(b(14)! << 8 | b(15)!)
            vlanPresent = true
            vlanID = tci & 0x0fff
            priority = UInt8(tci >> 13)
            offset = 16
            type = UInt16(b(16)! << 8 | b(17)!)
        }
        etherType = type
        ipv4Protocol = nil
        udpDestinationPort = nil
        let ip = offset + 2
        if type == 0x0800, let vihl = nbl.byte(at: ip), let proto = nbl.byte(at: ip + 9) {
            ipv4Protocol = proto
            let ihl = Int(vihl & 0x0f) * 4
            if proto == 17, let hi = nbl.byte(at: ip + ihl + 2), let lo = nbl.byte(at: ip + ihl + 3) {
                udpDestinationPort = UInt16(hi) << 8 | UInt16(lo)
            }
        }
    }

    var packetType: UInt8 {
        if destination == 0xffff_ffff_ffff { return PacketTypeValue.broadcast.rawValue }
        if destination >> 40 & 1 == 1 { return PacketTypeValue.multicast.rawValue }
        return PacketTypeValue.directed.rawValue
    }
}

extension ReceiveFilterParameters {
    /// Evaluates the filter against a parsed frame (AND of its tests, with the VLAN rules).
    public func matches(_ h: ParsedFrameHeader) -> Bool {
        for t in tests {
            let actual: UInt64
            switch t.field {
            case .macDestination: actual = h.destination
            case .macSource: actual = h.source
            case .etherType: actual = UInt64(h.etherType)
            case .vlanID:
                if !h.vlanPresent {
                    // Untagged: matches only "VLAN 0" with the untagged-or-zero flag.
                    let want = UInt16(t.value[0]) << 8 | UInt16(t.value[1])
                    if t.test == .equal && want == 0 && flags.contains(.vlanUntaggedOrZero) { continue }
                    if t.test == .notEqual { continue }
                    return false
                }
                actual = UInt64(h.vlanID)
            case .priority: actual = UInt64(h.priority)
            case .packetType: actual = UInt64(h.packetType)
            case .ipv4Protocol:
                guard let p = h.ipv4Protocol else { return false }
                actual = UInt64(p)
            case .udpDestinationPort:
                guard let p = h.udpDestinationPort else { return false }
                actual = UInt64(p)
            }
            var value: UInt64 = 0, mask: UInt64 = 0
            for i in 0..<t.value.count {
                value = value << 8 | UInt64(t.value[i])
                mask = mask << 8 | UInt64(t.mask[i])
            }
            switch t.test {
            case .equal: if actual != value { return false }
            case .notEqual: if actual == value { return false }
            case .maskEqual:
                if t.field == .packetType {
                    if actual & value == 0 { return false }
                } else if actual & mask != value & mask { return false }
            }
        }
        return true
    }
}
