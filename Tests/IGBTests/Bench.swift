import DeviceAccess
import IGB
import IGBModel
import NDIS
import Testing

/// A protocol module that records what it receives; it returns NBLs at once unless told to hold them.
final class Recorder: ProtocolDriver {
    struct Frame {
        var queue: UInt16
        var bytes: [UInt8]
        var info: NetBufferListInfo
        var segments: [BufferSegment]
        var resources: Bool
    }
    var frames: [Frame] = []
    var hold = false
    var held = NetBufferListChain()
    var statuses: [StatusIndication] = []
    var sendCompletions: [NDISStatus] = []
    var binding: Binding?

    func bindingOpened(_ binding: Binding) { self.binding = binding }

    func record(_ chain: borrowing NetBufferListChain, queue: ReceiveQueueID, resources: Bool) {
        chain.forEach { nbl in
            var segments: [BufferSegment] = []
            for i in 0..<nbl.segmentCount { segments.append(nbl.segment(i)) }
            frames.append(Frame(queue: queue.rawValue, bytes: nbl.dataBytes(), info: nbl.info, segments: segments, resources: resources))
        }
    }

    func receiveNetBufferLists(_ chain: consuming NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
        record(chain, queue: queue, resources: false)
        if hold { held.append(chain) } else { binding.returnNetBufferLists(chain) }
    }

    var handlesResourcesIndications: Bool { true }

    func receiveNetBufferListsWithResources(_ chain: borrowing NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
        record(chain, queue: queue, resources: true)
    }

    func sendNetBufferListsComplete(_ chain: consuming NetBufferListChain, binding: Binding) {
        chain.forEach { sendCompletions.append($0.status) }
        binding.freeSendNetBufferLists(chain)
    }

    func status(_ indication: StatusIndication, binding: Binding) { statuses.append(indication) }

    /// Gives back every held NBL.
    func returnHeld() {
        var chain = NetBufferListChain()
        swap(&chain, &held)
        binding?.returnNetBufferLists(chain)
    }

    func frames(on queue: UInt16) -> [Frame] { frames.filter { $0.queue == queue } }
}

/// The IGB miniport on the hardware model behind an NDIS adapter, with one recording binding.
final class Bench {
    let function: IGBModelFunction
    let adapter: Adapter
    let miniport: IGBMiniport<IGBModelFunction>
    let recorder = Recorder()
    let binding: Binding
    var model: IGBModel { function.model }
    var address: MACAddress { miniport.permanentAddress }

    static let modelAddress = MACAddress(0x52, 0x54, 0x00, 0x12, 0x34, 0x56)

    /// Brings the adapter up on a fresh model. The model runs free during initialization (so its
    /// link timer fires in real time) and is stepped by hand afterwards.
    /// NDIS's order: initialize (Paused, receive off), open the binding, then restart, unless
    /// `start` is false (the adapter stays Paused with its binding open).
    init(fidelity: IGBModel.Fidelity = .qemu, linkUpDelayNanoseconds: UInt64 = 2_000_000, keepModelRunning: Bool = false,
         start: Bool = true, configure: (inout IGBConfiguration) -> Void = { _ in }) throws {
        function = try IGBModel.makeFunction(configuration: .init(fidelity: fidelity, linkUpDelayNanoseconds: linkUpDelayNanoseconds))
        var config = IGBConfiguration()
        config.linkTimeout = .seconds(5)
        config.defaultQueueDescriptors = 64
        config.defaultQueueBuffers = 96
        configure(&config)
        function.model.start()
        let made: (adapter: Adapter, miniport: IGBMiniport<IGBModelFunction>)
        do {
            made = try IGBMiniport.makeAdapterWithMiniport(function: function, name: "igb-model", configuration: config, start: false)
        } catch {
            function.model.stop()
            throw error
        }
        // Receive workers touch the model from their own threads: it must stay free-running (locked).
        if !keepModelRunning { function.model.stop() }
        adapter = made.adapter
        miniport = made.miniport
        binding = try adapter.openBinding(recorder)
        if start { try adapter.restart() }
    }

    /// Steps the model and polls the adapter a few times; returns frames handled.
    @discardableResult
    func pump(rounds: Int = 4) -> Int {
        var n = 0
        for _ in 0..<rounds {
            model.step()
            n += adapter.poll(budget: 64)
        }
        return n
    }

    /// Allocates a VMQ queue and completes its allocation.
    func allocateQueue(_ parameters: ReceiveQueueParameters = ReceiveQueueParameters(numberOfBuffers: 64)) throws -> ReceiveQueueID {
        guard case let .queueAllocated(id) = try binding.request(.allocateQueue(parameters)) else {
            Issue.record("allocateQueue did not answer with a queue id")
            return .default
        }
        guard case let .allocationComplete(results) = try binding.request(.queueAllocationComplete([id])),
              results.first?.1 == .success else {
            Issue.record("allocation complete failed for \(id)")
            return id
        }
        return id
    }

    @discardableResult
    func setFilter(_ queue: ReceiveQueueID, _ tests: [FieldTest], flags: ReceiveFilterFlags = []) throws -> ReceiveFilterID {
        guard case let .filterSet(id) = try binding.request(.setFilter(ReceiveFilterParameters(queue: queue, tests: tests, flags: flags))) else {
            Issue.record("setFilter did not answer with a filter id")
            return ReceiveFilterID(0)
        }
        return id
    }

    func filter(_ id: ReceiveFilterID, on queue: ReceiveQueueID) throws -> ReceiveFilter? {
        guard case let .filters(list) = try binding.request(.enumerateFilters(queue)) else { return nil }
        return list.first { $0.id == id }
    }

    /// Halts and checks the leak accounting: a clean report, no DMA region left, no IOMMU fault.
    func haltAndCheck(sourceLocation: SourceLocation = #_sourceLocation) {
        let report = adapter.halt()
        #expect(report.isClean, "\(report)", sourceLocation: sourceLocation)
        #expect(function.dma.liveRegionCount == 0, "DMA regions left after halt: \(function.dma.liveRegionCount)", sourceLocation: sourceLocation)
        #expect(model.faults.isEmpty, "IOMMU faults: \(model.faults)", sourceLocation: sourceLocation)
    }
}

/// Frames for the tests.
enum Frames {
    static func ethernet(to destination: MACAddress, from source: MACAddress = MACAddress(0x02, 0, 0, 0, 0, 0x99),
                         vlan: UInt16? = nil, type: UInt16, payload: [UInt8]) -> [UInt8] {
        var f = destination.array + source.array
        if let vlan { f += [0x81, 0x00, UInt8(vlan >> 8), UInt8(vlan & 0xFF)] }
        f += [UInt8(type >> 8), UInt8(type & 0xFF)]
        return f + payload
    }

    /// An IPv4/UDP frame with valid IP and UDP checksums (or zeroed, when `checksums` is false).
    static func udp(to destination: MACAddress, vlan: UInt16? = nil, sourcePort: UInt16 = 1234, destinationPort: UInt16 = 5678,
                    payload: [UInt8], checksums: Bool = true, sourceIP: [UInt8] = [10, 0, 0, 1], destinationIP: [UInt8] = [10, 0, 0, 2]) -> [UInt8] {
        let udpLength = 8 + payload.count
        var udp: [UInt8] = [UInt8(sourcePort >> 8), UInt8(sourcePort & 0xFF), UInt8(destinationPort >> 8), UInt8(destinationPort & 0xFF),
                            UInt8(udpLength >> 8), UInt8(udpLength & 0xFF), 0, 0] + payload
        let total = 20 + udpLength
        var ip: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), 0x12, 0x34, 0, 0, 64, 17, 0, 0] + sourceIP + destinationIP
        if checksums {
            let ipSum = checksum(ip)
            ip[10] = UInt8(ipSum >> 8); ip[11] = UInt8(ipSum & 0xFF)
            let pseudo = sourceIP + destinationIP + [0, 17, UInt8(udpLength >> 8), UInt8(udpLength & 0xFF)]
            let udpSum = checksum(pseudo + udp)
            udp[6] = UInt8(udpSum >> 8); udp[7] = UInt8(udpSum & 0xFF)
        }
        return ethernet(to: destination, vlan: vlan, type: 0x0800, payload: ip + udp)
    }

    /// The Internet checksum of `bytes`.
    static func checksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var i = 0
        while i + 1 < bytes.count { sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1]); i += 2 }
        if i < bytes.count { sum += UInt32(bytes[i]) << 8 }
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        return ~UInt16(sum)
    }

    static func payload(_ n: Int, seed: UInt8 = 0) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 &+ Int(seed)) } }
}
