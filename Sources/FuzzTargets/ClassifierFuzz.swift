import NDIS

/// Target `classifier`: the frame header parser the software filters use (`ParsedFrameHeader`,
/// checked against a reference parse of the raw bytes, on NBLs split into 1-3 segments at fuzzed
/// points) and the filters themselves on a running adapter (LoopbackMiniport: MAC and VLAN tests in
/// "hardware", every other field in the framework's software filters).
///
/// Input: a filter count, per filter its tests (field, test, value, mask) and flags, a packet
/// filter byte, then frames as (2-byte length, bytes).
/// Judged: every frame the adapter indicates is one of the injected frames, none twice over the
/// injected count; a frame on a filtered queue matches one of that queue's filters; every NBL comes
/// back; halt is clean.
enum ClassifierFuzz {
    static let fields = FilterField.allCases
    static let tests = FilterTest.allCases

    static func run(_ bytes: [UInt8]) -> FuzzFindings {
        var input = FuzzInput(bytes)
        var findings: FuzzFindings = []

        // Filters.
        var filters: [ReceiveFilterParameters] = []
        for _ in 0..<input.below(5) {
            var tests: [FieldTest] = []
            for _ in 0..<(1 + input.below(3)) {
                let field = fields[input.below(fields.count)]
                let test = tests_(input.below(Self.tests.count))
                let value = input.take(field.width) + [UInt8](repeating: 0, count: field.width)
                let mask = input.take(field.width)
                tests.append(FieldTest(field: field, test: test, value: Array(value.prefix(field.width)),
                                       mask: mask.count == field.width ? mask : nil))
            }
            let flags: ReceiveFilterFlags = input.bool() ? .vlanUntaggedOrZero : []
            filters.append(ReceiveFilterParameters(queue: .default, tests: tests, flags: flags))
        }
        let packetFilterByte = input.byte()

        // Frames.
        var frames: [[UInt8]] = []
        while !input.isAtEnd && frames.count < 64 {
            let length = Int(input.u16() % 1600)
            frames.append(input.take(length))
        }

        // 1. The header parser against the reference, on 1-3 segments.
        for (i, frame) in frames.enumerated() {
            let cuts = [Int(bytes.count % 7), i % 3]
            findings += checkHeader(frame, cuts: cuts)
        }

        // 2. The filters on an adapter.
        findings += runAdapter(filters: filters, packetFilter: packetFilterByte, frames: frames)
        return findings
    }

    static func tests_(_ i: Int) -> FilterTest { tests[i] }

    /// What a header is, parsed the simple way from contiguous bytes.
    struct Reference: Equatable {
        var destination: UInt64, source: UInt64, etherType: UInt16
        var vlanPresent: Bool, vlanID: UInt16, priority: UInt8
        init?(_ f: [UInt8]) {
            guard f.count >= 14 else { return nil }
            destination = f[0..<6].reduce(0) { $0 << 8 | UInt64($1) }
            source = f[6..<12].reduce(0) { $0 << 8 | UInt64($1) }
            etherType = UInt16(f[12]) << 8 | UInt16(f[13])
            vlanPresent = false
            vlanID = 0
            priority = 0
            if etherType == 0x8100 && f.count >= 18 {
                let tci = UInt16(f[14]) << 8 | UInt16(f[15])
                vlanPresent = true
                vlanID = tci & 0xfff
                priority = UInt8(tci >> 13)
                etherType = UInt16(f[16]) << 8 | UInt16(f[17])
            }
        }
    }

    static func checkHeader(_ frame: [UInt8], cuts: [Int]) -> FuzzFindings {
        let pool = NetBufferListPool(capacity: 1, name: "fuzz-classifier")
        var chain = pool.allocate(count: 1)
        var findings: FuzzFindings = []
        // The frame's bytes in up to three separate allocations, so that reads across a segment
        // boundary are checked by ASan too.
        var pieces: [[UInt8]] = []
        var start = 0
        for c in cuts where c > 0 && start + c < frame.count {
            pieces.append(Array(frame[start..<start + c]))
            start += c
        }
        pieces.append(Array(frame[start...]))
        let buffers = pieces.map { piece -> UnsafeMutableRawPointer in
            let p = UnsafeMutableRawPointer.allocate(byteCount: max(1, piece.count), alignment: 8)
            // Safety: p holds max(1, piece.count) bytes.
            piece.withUnsafeBytes { if let b = $0.baseAddress { p.copyMemory(from: b, byteCount: piece.count) } }
            return p
        }
        defer { buffers.forEach { $0.deallocate() } }
        if let nbl = chain.first {
            nbl.setLayout(segment0: BufferSegment(address: buffers[0], iova: 0, length: UInt32(pieces[0].count), capacity: UInt32(max(1, pieces[0].count))),
                          dataOffset: 0, dataLength: pieces[0].count, sharedMemoryInfoValid: false)
            for k in 1..<pieces.count {
                _ = nbl.appendSegment(BufferSegment(address: buffers[k], iova: 0, length: UInt32(pieces[k].count), capacity: UInt32(max(1, pieces[k].count))))
            }
            nbl.setData(offset: 0, length: frame.count)
            if nbl.dataBytes() != frame { findings.append("NBL over \(pieces.count) segments reads back different bytes than the frame") }
            let parsed = ParsedFrameHeader(nbl)
            let reference = Reference(frame)
            switch (parsed, reference) {
            case (nil, nil): break
            case (.some, nil): findings.append("ParsedFrameHeader accepted a \(frame.count)-byte frame (under 14 bytes)")
            case (nil, .some): findings.append("ParsedFrameHeader refused a \(frame.count)-byte frame")
            case let (p?, r?):
                if p.destination != r.destination || p.source != r.source || p.etherType != r.etherType
                    || p.vlanPresent != r.vlanPresent || (r.vlanPresent && (p.vlanID != r.vlanID || p.priority != r.priority)) {
                    findings.append("ParsedFrameHeader over \(pieces.count) segments differs from the reference: dst \(p.destination) / \(r.destination), type \(p.etherType) / \(r.etherType), vlan \(p.vlanPresent) \(p.vlanID) / \(r.vlanPresent) \(r.vlanID)")
                }
            }
        }
        _ = pool.free(chain.removeAll { _ in true })
        _ = consume chain
        return findings
    }

    /// Records indications; returns every NBL at once.
    final class Sink: ProtocolDriver {
        var received: [(queue: UInt16, bytes: [UInt8])] = []
        var resources: [(queue: UInt16, bytes: [UInt8])] = []
        var handlesResourcesIndications: Bool { true }
        func receiveNetBufferLists(_ chain: consuming NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
            chain.forEach { received.append((queue.rawValue, $0.dataBytes())) }
            binding.returnNetBufferLists(chain)
        }
        func receiveNetBufferListsWithResources(_ chain: borrowing NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
            chain.forEach { resources.append((queue.rawValue, $0.dataBytes())) }
        }
    }

    static func runAdapter(filters: [ReceiveFilterParameters], packetFilter: UInt8, frames: [[UInt8]]) -> FuzzFindings {
        var findings: FuzzFindings = []
        var configuration = LoopbackMiniport.Configuration()
        configuration.buffersPerQueue = 8
        let miniport = LoopbackMiniport(configuration)
        let adapter = Adapter(name: "fuzz-lo", miniport: miniport, sharedMemory: HostMemoryProvider())
        let sink = Sink()
        do {
            try adapter.initialize()
            let binding = try adapter.openBinding(sink)
            // Queues and filters while Paused where the adapter allows it, then restart; if it
            // refuses requests while Paused, restart first (either order must work cleanly).
            var queueFilters: [UInt16: [ReceiveFilterParameters]] = [:]
            func setUp() {
                _ = try? binding.request(.setPacketFilter(PacketFilter(rawValue: UInt32(packetFilter) | PacketFilter.promiscuous.rawValue)))
                for f in filters {
                    guard case let .queueAllocated(q)? = try? binding.request(.allocateQueue(ReceiveQueueParameters(numberOfBuffers: 8))) else { continue }
                    _ = try? binding.request(.queueAllocationComplete([q]))
                    var p = f
                    p.queue = q
                    if case .filterSet? = try? binding.request(.setFilter(p)) { queueFilters[q.rawValue, default: []].append(p) }
                }
            }
            setUp()
            try adapter.restart()
            for f in frames { miniport.inject(f) }
            var rounds = 0
            while adapter.poll(budget: 64) > 0 && rounds < 100 { rounds += 1 }

            // Judge.
            var left = [[UInt8]: Int]()
            for f in frames { left[f, default: 0] += 1 }
            for r in sink.received + sink.resources {
                guard let n = left[r.bytes], n > 0 else {
                    findings.append("queue \(r.queue) indicated a \(r.bytes.count)-byte frame that was not injected (or more often than injected)")
                    continue
                }
                left[r.bytes] = n - 1
                if r.queue != 0 {
                    let mine = queueFilters[r.queue] ?? []
                    if mine.isEmpty {
                        findings.append("queue \(r.queue) has no filter but indicated a frame")
                    } else if r.bytes.count >= 14 {
                        let matched = r.bytes.withUnsafeBytes { raw in matchesAny(mine, raw) }
                        if !matched { findings.append("queue \(r.queue) indicated a frame none of its filters match") }
                    }
                }
            }
        } catch {
            findings.append("the loopback adapter failed to come up: \(error)")
        }
        let report = adapter.halt()
        if !report.isClean { findings.append("halt not clean: \(report)") }
        return findings
    }

    /// Evaluates filters on contiguous bytes (one-segment NBL over them).
    static func matchesAny(_ filters: [ReceiveFilterParameters], _ raw: UnsafeRawBufferPointer) -> Bool {
        let pool = NetBufferListPool(capacity: 1, name: "fuzz-match")
        var chain = pool.allocate(count: 1)
        var result = false
        if let nbl = chain.first, let base = raw.baseAddress {
            nbl.setLayout(segment0: BufferSegment(address: UnsafeMutableRawPointer(mutating: base), iova: 0, length: UInt32(raw.count), capacity: UInt32(raw.count)),
                          dataOffset: 0, dataLength: raw.count, sharedMemoryInfoValid: false)
            if let header = ParsedFrameHeader(nbl) { result = filters.contains { $0.matches(header) } }
        }
        _ = pool.free(chain.removeAll { _ in true })
        _ = consume chain
        return result
    }
}
