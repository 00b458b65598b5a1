import NDIS

/// A tiny IPv4 host: answers ARP requests (RFC 826) and ICMP echo requests (RFC 792) for one
/// address, through the binding's send pool. It proves the API end to end: receive, parse, build
/// a reply in shared memory, send, complete, recycle.
///
/// It checks what it parses (IPv4 version, header length, total length, header checksum, fragments,
/// ICMP checksum) and drops what fails, counted. Replies keep the request's VLAN: an inline 802.1Q
/// tag is copied; a tag the hardware stripped is asked back through the send NBL's VLAN info.
/// Per batch: one send of all replies; nothing allocated per frame.
public final class Responder: ProtocolDriver {
    public let address: IPv4Address
    /// The MAC the responder answers for (the adapter's current address unless given).
    public private(set) var mac: MACAddress?
    /// Replies to send in total; nil: answer until stopped.
    public let limit: Int?
    public private(set) var arpReplies: UInt64 = 0
    public private(set) var echoReplies: UInt64 = 0
    /// Frames that were not for us or not ARP/echo requests.
    public private(set) var ignored: UInt64 = 0
    /// Frames with a bad IPv4 header or ICMP checksum (or malformed).
    public private(set) var malformed: UInt64 = 0
    /// Requests not answered because the send pool was dry or the reply did not fit.
    public private(set) var drops: UInt64 = 0
    /// Replies the adapter completed with an error.
    public private(set) var sendErrors: UInt64 = 0
    /// Why the send pool could not be made when the binding opened.
    public private(set) var setupError: NDISError?

    public let poolSize: Int
    public let bufferSize = 2048
    var pool: SendPool?
    let scratch: UnsafeMutableRawBufferPointer

    /// - Parameters:
    ///   - address: the IPv4 address to answer for.
    ///   - mac: the MAC to answer with; nil takes the adapter's current address when the binding opens.
    ///   - limit: stop answering after this many replies.
    public init(address: IPv4Address, mac: MACAddress? = nil, limit: Int? = nil, poolSize: Int = 64) {
        self.address = address
        self.mac = mac
        self.limit = limit
        self.poolSize = poolSize
        scratch = .allocate(byteCount: 2048 + 64, alignment: 16)
    }

    deinit { scratch.deallocate() }

    /// EtherTypes to open the binding with.
    public static let frameTypes: Set<UInt16> = [EtherType.arp, EtherType.ipv4]

    public var replies: UInt64 { arpReplies + echoReplies }
    public var isComplete: Bool {
        guard let limit else { return false }
        return replies >= UInt64(limit)
    }

    public func bindingOpened(_ binding: Binding) {
        if mac == nil { mac = binding.attributes?.currentAddress }
        do { pool = try binding.makeSendPool(count: poolSize, bufferSize: bufferSize) } catch { setupError = error }
    }

    // MARK: ProtocolDriver

    public func receiveNetBufferLists(_ chain: consuming NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
        let replies = answer(chain)
        binding.returnNetBufferLists(chain)
        if !replies.isEmpty { binding.send(replies) } else { _ = consume replies }
    }

    public func coReceiveNetBufferLists(_ chain: consuming NetBufferListChain, vc: VirtualConnection, count: Int, flags: ReceiveFlags) {
        let replies = answer(chain)
        vc.binding.returnNetBufferLists(chain)
        if !replies.isEmpty { vc.binding.send(replies) } else { _ = consume replies }
    }

    public func sendNetBufferListsComplete(_ chain: consuming NetBufferListChain, binding: Binding) {
        var failed: UInt64 = 0
        chain.forEach { if $0.status != .success { failed &+= 1 } }
        sendErrors &+= failed
        binding.freeSendNetBufferLists(chain)
    }

    /// Builds the replies to the requests in `chain` (which stays the caller's).
    func answer(_ chain: borrowing NetBufferListChain) -> NetBufferListChain {
        var replies = NetBufferListChain()
        guard let pool, let mac else {
            drops &+= UInt64(chain.count)
            return replies
        }
        chain.forEach { nbl in
            if let limit, arpReplies + echoReplies >= UInt64(limit) { ignored &+= 1; return }
            let n = nbl.copyData(into: scratch)
            let frame = UnsafeRawBufferPointer(rebasing: scratch[0..<n])
            let kind = classify(frame, mac: mac)
            guard kind != .none else { return }
            let one = pool.allocate(count: 1)
            guard let out = one.first, let base = out.segment(0).address else {
                drops &+= 1
                if !one.isEmpty { pool.pool.free(one) }
                return
            }
            let dst = UnsafeMutableRawBufferPointer(start: base, count: bufferSize)
            let length = kind == .arp ? buildARPReply(frame, into: dst, mac: mac) : buildEchoReply(frame, into: dst, mac: mac)
            guard length > 0 else {
                drops &+= 1
                pool.pool.free(one)
                return
            }
            var seg = out.segment(0)
            seg.length = UInt32(length)
            out.truncateSegments(to: 1)
            out.setSegment(0, seg)
            out.setData(offset: 0, length: length)
            // A tag the hardware stripped from the request goes back on the reply.
            let info = nbl.info
            var outInfo = NetBufferListInfo()
            outInfo.vlanPresent = info.vlanPresent
            outInfo.vlanID = info.vlanID
            outInfo.userPriority = info.userPriority
            out.info = outInfo
            if kind == .arp { arpReplies &+= 1 } else { echoReplies &+= 1 }
            replies.append(one)
        }
        return replies
    }

    enum Kind { case none, arp, echo }

    /// Offset of the L3 header and its EtherType, past an inline 802.1Q tag.
    @inline(__always)
    func l3(_ f: UnsafeRawBufferPointer) -> (offset: Int, type: UInt16)? {
        guard f.count >= EthernetFrame.headerLength else { return nil }
        let t = f.be16(12)
        if t == EtherType.vlan {
            guard f.count >= 18 else { return nil }
            return (18, f.be16(16))
        }
        return (14, t)
    }

    func classify(_ f: UnsafeRawBufferPointer, mac: MACAddress) -> Kind {
        guard let (o, type) = l3(f) else { malformed &+= 1; return .none }
        let toUs = f.mac(0) == mac
        let broadcast = f.mac(0) == .broadcast
        switch type {
        case EtherType.arp:
            // RFC 826: Ethernet/IPv4 request whose target protocol address is ours.
            guard toUs || broadcast else { ignored &+= 1; return .none }
            guard f.count >= o + 28 else { malformed &+= 1; return .none }
            guard f.be16(o) == 1, f.be16(o + 2) == EtherType.ipv4, f[o + 4] == 6, f[o + 5] == 4 else { ignored &+= 1; return .none }
            guard f.be16(o + 6) == 1, f.be32(o + 24) == address.value else { ignored &+= 1; return .none }
            return .arp
        case EtherType.ipv4:
            guard toUs else { ignored &+= 1; return .none }
            guard f.count >= o + 20, f[o] >> 4 == 4 else { malformed &+= 1; return .none }
            let ihl = Int(f[o] & 0x0f) * 4
            let total = Int(f.be16(o + 2))
            guard ihl >= 20, total >= ihl + 8, f.count >= o + total else { malformed &+= 1; return .none }
            guard InternetChecksum.verify(UnsafeRawBufferPointer(rebasing: f[o..<(o + ihl)])) else { malformed &+= 1; return .none }
            guard f.be32(o + 16) == address.value, f[o + 9] == 1 else { ignored &+= 1; return .none }
            // Fragments (MF set or an offset) are not reassembled here: ignored.
            guard f.be16(o + 6) & 0x3fff == 0 else { ignored &+= 1; return .none }
            let icmp = o + ihl
            guard InternetChecksum.verify(UnsafeRawBufferPointer(rebasing: f[icmp..<(o + total)])) else { malformed &+= 1; return .none }
            guard f[icmp] == 8, f[icmp + 1] == 0 else { ignored &+= 1; return .none }
            return .echo
        default:
            ignored &+= 1
            return .none
        }
    }

    /// Writes the Ethernet header of a reply to the request's sender; returns the L3 offset.
    func writeEthernet(_ f: UnsafeRawBufferPointer, into d: UnsafeMutableRawBufferPointer, mac: MACAddress, type: UInt16) -> Int {
        for i in 0..<6 { d[i] = f[6 + i] }
        d.setMAC(6, mac)
        if f.be16(12) == EtherType.vlan {
            d.setBE16(12, EtherType.vlan)
            d.setBE16(14, f.be16(14))
            d.setBE16(16, type)
            return 18
        }
        d.setBE16(12, type)
        return 14
    }

    /// Pads a frame to the Ethernet minimum with zeros.
    func pad(_ d: UnsafeMutableRawBufferPointer, _ length: Int) -> Int {
        guard length < EthernetFrame.minimumLength else { return length }
        for i in length..<EthernetFrame.minimumLength { d[i] = 0 }
        return EthernetFrame.minimumLength
    }

    func buildARPReply(_ f: UnsafeRawBufferPointer, into d: UnsafeMutableRawBufferPointer, mac: MACAddress) -> Int {
        let (i, _) = l3(f)!
        let o = writeEthernet(f, into: d, mac: mac, type: EtherType.arp)
        d.setBE16(o, 1)                 // HTYPE Ethernet
        d.setBE16(o + 2, EtherType.ipv4) // PTYPE
        d[o + 4] = 6
        d[o + 5] = 4
        d.setBE16(o + 6, 2)             // reply
        d.setMAC(o + 8, mac)            // SHA: us
        d.setBE32(o + 14, address.value) // SPA: us
        for k in 0..<6 { d[o + 18 + k] = f[i + 8 + k] } // THA: the requester's SHA
        d.setBE32(o + 24, f.be32(i + 14))               // TPA: the requester's SPA
        return pad(d, o + 28)
    }

    func buildEchoReply(_ f: UnsafeRawBufferPointer, into d: UnsafeMutableRawBufferPointer, mac: MACAddress) -> Int {
        let (i, _) = l3(f)!
        let ihl = Int(f[i] & 0x0f) * 4
        let total = Int(f.be16(i + 2))
        let icmpLength = total - ihl
        let o = writeEthernet(f, into: d, mac: mac, type: EtherType.ipv4)
        guard o + 20 + icmpLength <= d.count else { return 0 }
        // IPv4 header without options: version 4, IHL 5.
        d[o] = 0x45
        d[o + 1] = f[i + 1]               // DSCP/ECN as asked
        d.setBE16(o + 2, UInt16(20 + icmpLength))
        d.setBE16(o + 4, f.be16(i + 4))   // identification
        d.setBE16(o + 6, 0)               // no fragmentation
        d[o + 8] = 64                     // TTL
        d[o + 9] = 1                      // ICMP
        d.setBE16(o + 10, 0)
        d.setBE32(o + 12, address.value)
        d.setBE32(o + 16, f.be32(i + 12))
        d.setBE16(o + 10, InternetChecksum.compute(UnsafeRawBufferPointer(rebasing: d[o..<(o + 20)])))
        // ICMP echo reply: type 0, code 0; identifier, sequence and data as in the request.
        let src = i + ihl, dst = o + 20
        d[dst] = 0
        d[dst + 1] = 0
        d.setBE16(dst + 2, 0)
        for k in 4..<icmpLength { d[dst + k] = f[src + k] }
        d.setBE16(dst + 2, InternetChecksum.compute(UnsafeRawBufferPointer(rebasing: d[dst..<(dst + icmpLength)])))
        return pad(d, dst + icmpLength)
    }
}
