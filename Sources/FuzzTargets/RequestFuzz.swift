import DeviceAccess
import IGB
import IGBModel
import NDIS

/// Target `requests`: OID requests in any order, with any parameters, against an adapter (the IGB
/// miniport on the model, or the loopback miniport), mixed with pause/restart, traffic and a
/// protocol that holds NBLs.
///
/// Judged: each refusal is an NDISError with a message (typed throws make it one; the message
/// must not be empty); a queue id the adapter hands out is not already live; after every held NBL
/// is returned and every live queue freed, halt is clean and (on the model) nothing stays mapped.
enum RequestFuzz {
    final class Sink: ProtocolDriver {
        var hold = false
        var held = NetBufferListChain()
        func receiveNetBufferLists(_ chain: consuming NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
            chain.forEach { _ = $0.dataBytes() }
            if hold { held.append(chain) } else { binding.returnNetBufferLists(chain) }
        }
        func returnHeld(_ binding: Binding) {
            var chain = NetBufferListChain()
            swap(&chain, &held)
            binding.returnNetBufferLists(chain)
        }
    }

    static func run(_ bytes: [UInt8]) -> FuzzFindings {
        var input = FuzzInput(bytes)
        let useModel = input.byte() & 1 == 1
        var findings: FuzzFindings = []
        let sink = Sink()
        let adapter: Adapter
        var function: IGBModelFunction?
        var loopback: LoopbackMiniport?
        if useModel {
            guard let f = try? IGBModel.makeFunction(configuration: .init(fidelity: .qemu, linkUpDelayNanoseconds: 0)) else {
                return ["the model did not start"]
            }
            var config = IGBConfiguration()
            config.linkTimeout = .seconds(5)
            config.defaultQueueDescriptors = 64
            config.defaultQueueBuffers = 96
            f.model.start()
            let made = try? IGBMiniport.makeAdapterWithMiniport(function: f, name: "fuzz-igb", configuration: config)
            f.model.stop()
            guard let made else { return ["the IGB adapter did not come up on the model"] }
            adapter = made.adapter
            function = f
        } else {
            let l = LoopbackMiniport()
            adapter = Adapter(name: "fuzz-lo", miniport: l, sharedMemory: HostMemoryProvider())
            do {
                try adapter.initialize()
                try adapter.restart()
            } catch {
                return ["the loopback adapter did not come up: \(error)"]
            }
            loopback = l
        }
        guard let binding = try? adapter.openBinding(sink) else {
            adapter.halt()
            return ["no binding"]
        }

        var live: [ReceiveQueueID] = []
        var filterIDs: [ReceiveFilterID] = []
        func queueID() -> ReceiveQueueID {
            let k = input.byte()
            if k < 200, !live.isEmpty { return live[Int(k) % live.count] }
            return ReceiveQueueID(UInt16(k % 20))
        }
        func mac() -> MACAddress {
            let b = input.take(6) + [0, 0, 0, 0, 0, 0]
            return MACAddress(b[0], b[1], b[2], b[3], b[4], b[5])
        }
        func fieldTest() -> FieldTest {
            let fields = FilterField.allCases
            let field = fields[input.below(fields.count)]
            let test = FilterTest.allCases[input.below(3)]
            var width = field.width
            if input.below(16) == 0 { width = input.below(9) }   // wrong widths now and then
            return FieldTest(field: field, test: test, value: input.take(width),
                             mask: input.below(2) == 0 ? nil : input.take(width))
        }
        func frame() -> [UInt8] {
            let dst: MACAddress = input.bool() ? mac() : (loopback?.configuration.macAddress ?? MACAddress(0x52, 0x54, 0, 0x12, 0x34, 0x56))
            var f = dst.array + [0x02, 0, 0, 0, 0, 0x99]
            if input.bool() { f += [0x81, 0x00, input.byte() & 0x0f, input.byte()] }
            f += [0x08, 0x00] + [UInt8](repeating: input.byte(), count: 46 + input.below(64))
            return f
        }
        func request(_ oid: OIDRequest) -> OIDResponse? {
            do {
                return try binding.request(oid)
            } catch {
                if error.description.isEmpty { findings.append("a refused \(oid) carries no message") }
                return nil
            }
        }

        var steps = 0
        while !input.isAtEnd && steps < 64 {
            steps += 1
            switch input.byte() % 20 {
            case 0, 1:
                var p = ReceiveQueueParameters(numberOfBuffers: [0, 1, 8, 16, 64, 5000][input.below(6)])
                p.flags = ReceiveQueueFlags(rawValue: UInt32(input.byte() & 3))
                p.lookaheadSize = [0, 14, 64, 128, 256, 1000, 65536][input.below(7)]
                if input.below(4) == 0 { p.processorAffinity = [input.below(8) - 1] }
                if case let .queueAllocated(id)? = request(.allocateQueue(p)) {
                    if live.contains(id) || id.isDefault { findings.append("allocateQueue handed out \(id.rawValue), already live") }
                    live.append(id)
                }
            case 2: _ = request(.queueAllocationComplete((0..<input.below(3)).map { _ in queueID() }))
            case 3, 4:
                let tests = (0..<input.below(4)).map { _ in fieldTest() }
                let flags: ReceiveFilterFlags = input.bool() ? .vlanUntaggedOrZero : []
                if case let .filterSet(id)? = request(.setFilter(ReceiveFilterParameters(queue: queueID(), tests: tests, flags: flags))) {
                    filterIDs.append(id)
                }
            case 5:
                let id = filterIDs.isEmpty || input.below(4) == 0 ? ReceiveFilterID(UInt32(input.byte())) : filterIDs[input.below(filterIDs.count)]
                _ = request(.clearFilter(id))
            case 6:
                let id = queueID()
                if request(.freeQueue(id)) != nil { live.removeAll { $0 == id } }
            case 7: _ = request(.setQueueParameters(queueID(), ReceiveQueueParameterChange(processorAffinity: input.bool() ? [input.below(4)] : nil, name: input.bool() ? "q" : nil)))
            case 8: _ = request(.enumerateQueues)
            case 9: _ = request(.enumerateFilters(queueID()))
            case 10: _ = request(input.bool() ? .hardwareCapabilities : .currentCapabilities)
            case 11: _ = request(.statistics)
            case 12: _ = request(.setPacketFilter(PacketFilter(rawValue: UInt32(input.byte()) | UInt32(input.byte() & 1) << 8)))
            case 13: _ = request(.setMulticastList((0..<[0, 1, 3, 16, 40, 200][input.below(6)]).map { _ in mac() }))
            case 14:
                let keyLength = [0, 10, 40, 41][input.below(4)]
                let tableLength = [0, 1, 64, 128, 129][input.below(5)]
                let key = (0..<keyLength).map { _ in input.byte() }
                let table = (0..<tableLength).map { _ in input.byte() % 20 }
                _ = request(.setReceiveScale(ReceiveScaleParameters(hashTypes: HashType(rawValue: input.u32()), key: key, indirectionTable: table)))
            case 15: _ = request(.linkState)
            case 16:
                if input.bool() { _ = adapter.pause() } else { _ = try? adapter.restart() }
            case 17:
                for _ in 0..<(1 + input.below(8)) {
                    let f = frame()
                    if let function { function.model.inject(f) } else { loopback?.inject(f) }
                }
                function?.model.step()
                _ = adapter.poll(budget: 64)
            case 18: sink.hold.toggle()
            default: sink.returnHeld(binding)
            }
        }
        // Give everything back, free what is live, then halt.
        sink.hold = false
        sink.returnHeld(binding)
        _ = try? adapter.restart()
        for id in live { _ = try? binding.request(.freeQueue(id)) }
        function?.model.step()
        _ = adapter.poll(budget: 64)
        let report = adapter.halt()
        if !report.isClean { findings.append("halt not clean after every NBL came back: \(report)") }
        if let function, function.dma.liveRegionCount != 0 { findings.append("\(function.dma.liveRegionCount) DMA regions still mapped after halt") }
        return findings
    }
}
