import NDIS

/// What the packet generator sends: UDP/IPv4 frames of one size with a sequence number.
public struct GeneratorConfiguration: Sendable, Equatable {
    public var destinationMAC: MACAddress
    /// nil: the adapter's current address.
    public var sourceMAC: MACAddress?
    public var sourceIP: IPv4Address
    public var destinationIP: IPv4Address
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    /// Frame length without FCS, 60...1514 (64...1518 on the wire with FCS).
    public var frameSize: Int
    /// Frames per second; 0 sends as fast as the send pool allows.
    public var rate: UInt64
    /// Frames to send; nil for no end.
    public var count: UInt64?
    /// Most frames per send call.
    public var batchSize: Int

    public init(destinationMAC: MACAddress = .broadcast, sourceMAC: MACAddress? = nil,
                sourceIP: IPv4Address = IPv4Address(10, 0, 0, 1), destinationIP: IPv4Address = IPv4Address(10, 0, 0, 2),
                sourcePort: UInt16 = 9000, destinationPort: UInt16 = 9001, frameSize: Int = 60, rate: UInt64 = 0,
                count: UInt64? = nil, batchSize: Int = 32) {
        self.destinationMAC = destinationMAC
        self.sourceMAC = sourceMAC
        self.sourceIP = sourceIP
        self.destinationIP = destinationIP
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.frameSize = frameSize
        self.rate = rate
        self.count = count
        self.batchSize = batchSize
    }

    /// Smallest frame: the Ethernet minimum (it holds the 42 header bytes and the 8-byte sequence number).
    public static let minimumFrameSize = EthernetFrame.minimumLength
    public static let maximumFrameSize = EthernetFrame.maximumLength

    /// Checks the frame size, rate and batch size.
    public func validate() throws(InputError) {
        guard (Self.minimumFrameSize...Self.maximumFrameSize).contains(frameSize) else {
            throw .badNumber(option: "--size", value: String(frameSize), range: "a frame size from \(Self.minimumFrameSize) to \(Self.maximumFrameSize) bytes (without FCS)")
        }
        guard rate <= 100_000_000 else {
            throw .badNumber(option: "--rate", value: String(rate), range: "frames per second from 0 (as fast as possible) to 100000000")
        }
        guard (1...256).contains(batchSize) else {
            throw .badNumber(option: "batch size", value: String(batchSize), range: "1...256")
        }
    }
}

/// Where things are in a generated frame (offsets from the frame start).
public enum GeneratedFrameLayout {
    public static let ipv4 = 14
    public static let udp = 34
    public static let payload = 42
    /// The big-endian 64-bit sequence number is the payload's first 8 bytes.
    public static let sequence = 42

    /// The sequence number of a generated frame, or nil if `frame` is not a UDP/IPv4 frame long enough.
    public static func sequenceNumber(in frame: [UInt8]) -> UInt64? {
        guard frame.count >= sequence + 8, frame[12] == 0x08, frame[13] == 0x00, frame[23] == 17 else { return nil }
        return frame[sequence..<(sequence + 8)].reduce(0) { $0 << 8 | UInt64($1) }
    }
}

/// A protocol module that sends UDP frames of a given size at a given rate, each with a sequence
/// number (0, 1, 2, …) in its payload.
///
/// The send pool's buffers are filled with the frame template once; per frame only the sequence
/// number, the IPv4 identification and the two checksums change, and the checksums are updated
/// from precomputed partial sums (RFC 1624 style), so a frame costs a few stores.
public final class PacketGenerator: ProtocolDriver {
    public let configuration: GeneratorConfiguration
    public let poolSize: Int
    public private(set) var binding: Binding?
    public private(set) var setupError: NDISError?
    /// Frames handed to the adapter.
    public private(set) var sent: UInt64 = 0
    public private(set) var sentBytes: UInt64 = 0
    /// Frames completed successfully / with an error.
    public private(set) var completed: UInt64 = 0
    public private(set) var sendErrors: UInt64 = 0
    /// Times a batch was cut short because every pool NBL was in flight.
    public private(set) var poolDry: UInt64 = 0
    /// Frames received on the binding (given back at once), per queue.
    public let received = QueueCounters()

    var pool: SendPool?
    var startTime: UInt64?
    /// Partial sums of the constant words of the IPv4 header and of UDP pseudo-header + header + payload.
    var ipBaseSum: UInt32 = 0
    var udpBaseSum: UInt32 = 0

    public init(configuration: GeneratorConfiguration, poolSize: Int = 512) {
        self.configuration = configuration
        self.poolSize = poolSize
    }

    public var isComplete: Bool {
        guard let count = configuration.count else { return false }
        return sent >= count
    }

    /// True when every frame sent has completed.
    public var isDrained: Bool { completed + sendErrors == sent }

    public func bindingOpened(_ binding: Binding) {
        self.binding = binding
        do {
            let pool = try binding.makeSendPool(count: poolSize, bufferSize: max(configuration.frameSize, 64))
            self.pool = pool
            prefill(pool, source: configuration.sourceMAC ?? binding.attributes?.currentAddress ?? MACAddress(2, 0, 0, 0, 0, 1))
        } catch {
            setupError = error
        }
    }

    /// Writes the template into every buffer of the pool and precomputes the checksum partial sums.
    func prefill(_ pool: SendPool, source: MACAddress) {
        let c = configuration
        let size = c.frameSize
        let template = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 8)
        defer { template.deallocate() }
        template.initializeMemory(as: UInt8.self, repeating: 0)
        template.setMAC(0, c.destinationMAC)
        template.setMAC(6, source)
        template.setBE16(12, EtherType.ipv4)
        let ip = GeneratedFrameLayout.ipv4, udp = GeneratedFrameLayout.udp
        template[ip] = 0x45
        template.setBE16(ip + 2, UInt16(size - 14))
        template.setBE16(ip + 6, 0x4000)   // DF
        template[ip + 8] = 64
        template[ip + 9] = 17
        template.setBE32(ip + 12, c.sourceIP.value)
        template.setBE32(ip + 16, c.destinationIP.value)
        let udpLength = size - udp
        template.setBE16(udp, c.sourcePort)
        template.setBE16(udp + 2, c.destinationPort)
        template.setBE16(udp + 4, UInt16(udpLength))
        // Payload after the sequence number: a counting pattern, easy to check in a dump.
        for i in (GeneratedFrameLayout.sequence + 8)..<size { template[i] = UInt8(truncatingIfNeeded: i) }
        // Identification (ip+4) and both checksums are zero in the template; the sequence is zero too.
        ipBaseSum = InternetChecksum.add(UnsafeRawBufferPointer(rebasing: template[ip..<(ip + 20)]))
        var pseudo = InternetChecksum.add(word: UInt16(c.sourceIP.value >> 16), to: 0)
        pseudo = InternetChecksum.add(word: UInt16(c.sourceIP.value & 0xffff), to: pseudo)
        pseudo = InternetChecksum.add(word: UInt16(c.destinationIP.value >> 16), to: pseudo)
        pseudo = InternetChecksum.add(word: UInt16(c.destinationIP.value & 0xffff), to: pseudo)
        pseudo = InternetChecksum.add(word: 17, to: pseudo)
        pseudo = InternetChecksum.add(word: UInt16(udpLength), to: pseudo)
        udpBaseSum = InternetChecksum.add(UnsafeRawBufferPointer(rebasing: template[udp..<size]), to: pseudo)
        let all = pool.allocate(count: poolSize)
        all.forEach { nbl in
            var seg = nbl.segment(0)
            // Safety: the buffer holds at least `size` bytes (the pool was made with that size).
            seg.address!.copyMemory(from: template.baseAddress!, byteCount: size)
            seg.length = UInt32(size)
            nbl.setSegment(0, seg)
            nbl.setData(offset: 0, length: size)
        }
        pool.pool.free(all)
    }

    /// Nanoseconds from `now` until the next frame is due (0: now; nil: nothing more to send).
    public func nanosecondsUntilDue(now: UInt64) -> UInt64? {
        if isComplete { return nil }
        let rate = configuration.rate
        guard rate > 0, let start = startTime else { return 0 }
        let dueAt = start &+ sent &* 1_000_000_000 / rate
        return dueAt > now ? dueAt - now : 0
    }

    /// Sends the frames that are due at `now` (monotonic nanoseconds), at most one batch per call
    /// and never more than the pool holds.
    /// - Returns: frames sent.
    @discardableResult
    public func generate(now: UInt64) -> Int {
        guard let binding, let pool else { return 0 }
        if startTime == nil { startTime = now }
        let c = configuration
        var want = UInt64(c.batchSize)
        if let count = c.count { want = min(want, count &- sent) }
        if c.rate > 0, let start = startTime {
            // Frames due so far: elapsed × rate, plus the first one at time 0.
            let due = (now &- start) / 1_000_000_000 &* c.rate + ((now &- start) % 1_000_000_000) &* c.rate / 1_000_000_000 &+ 1
            want = min(want, due > sent ? due &- sent : 0)
        }
        guard want > 0 else { return 0 }
        let chain = pool.allocate(count: Int(want))
        if UInt64(chain.count) < want { poolDry &+= 1 }
        guard !chain.isEmpty else { return 0 }
        let size = c.frameSize
        var seq = sent
        let ipBase = ipBaseSum, udpBase = udpBaseSum
        chain.forEach { nbl in
            let seg = nbl.segment(0)
            let f = UnsafeMutableRawBufferPointer(start: seg.address, count: size)
            // Sequence number and IPv4 identification change; the checksums follow from the base sums.
            f.setBE64(GeneratedFrameLayout.sequence, seq)
            let id = UInt16(truncatingIfNeeded: seq)
            f.setBE16(GeneratedFrameLayout.ipv4 + 4, id)
            f.setBE16(GeneratedFrameLayout.ipv4 + 10, InternetChecksum.finish(InternetChecksum.add(word: id, to: ipBase)))
            var u = InternetChecksum.add(word: UInt16(truncatingIfNeeded: seq >> 48), to: udpBase)
            u = InternetChecksum.add(word: UInt16(truncatingIfNeeded: seq >> 32), to: u)
            u = InternetChecksum.add(word: UInt16(truncatingIfNeeded: seq >> 16), to: u)
            u = InternetChecksum.add(word: UInt16(truncatingIfNeeded: seq), to: u)
            let udpSum = InternetChecksum.finish(u)
            // RFC 768: a computed zero is sent as all ones (zero means "no checksum").
            f.setBE16(GeneratedFrameLayout.udp + 6, udpSum == 0 ? 0xffff : udpSum)
            nbl.setData(offset: 0, length: size)
            nbl.info = NetBufferListInfo()
            seq &+= 1
        }
        let n = chain.count
        sent = seq
        sentBytes &+= UInt64(n * size)
        binding.send(chain)
        return n
    }

    // MARK: ProtocolDriver

    public func receiveNetBufferLists(_ chain: consuming NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
        let counters = received
        chain.forEach { counters.add(queue: $0.info.receiveQueueID, length: $0.dataLength) }
        binding.returnNetBufferLists(chain)
    }

    public func sendNetBufferListsComplete(_ chain: consuming NetBufferListChain, binding: Binding) {
        var ok: UInt64 = 0, failed: UInt64 = 0
        chain.forEach { if $0.status == .success { ok &+= 1 } else { failed &+= 1 } }
        completed &+= ok
        sendErrors &+= failed
        binding.freeSendNetBufferLists(chain)
    }
}
