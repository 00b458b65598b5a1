import DeviceAccess
import IGB
import IGBModel
import NDIS

/// Target `receive`: the IGB miniport's receive path on the 82576 model, with every descriptor
/// write-back open to the fuzzer (`IGBModel.tamperWithReceiveWriteBacks`): lengths beyond the
/// buffer, status and error bits, header-split fields (SPH, HDR_LEN), descriptors written out of
/// order or skipped; plus DMA faults, a protocol that holds NBLs and returns them late, and a VMQ
/// queue with a lookahead split.
///
/// Input: a set-up byte, then operations (inject a frame with tampering for its write-backs,
/// pump, hold/return, DMA fault).
/// Judged: every indicated NBL is well formed (data within its segments, segment lengths within
/// their capacity, 14 bytes to the maximum frame size); after the held NBLs are returned, halt is
/// clean and no DMA region is left mapped.
enum ReceiveFuzz {
    /// The write-back changes the input asked for, applied in order, one per descriptor.
    final class Tamper {
        struct Change { var dword0: UInt32; var status: UInt32; var lengthVLAN: UInt32; var hiDword: UInt32; var advance: Int }
        var pending: [Change] = []
        func apply(_ f: inout RxWriteBackFields) {
            guard !pending.isEmpty else { return }
            let c = pending.removeFirst()
            f.dword0 ^= c.dword0
            f.statusError ^= c.status
            f.lengthVLAN ^= c.lengthVLAN
            f.hiDword ^= c.hiDword
            f.headAdvance = c.advance
        }
    }

    /// Checks each indication, holds or returns it.
    final class Sink: ProtocolDriver {
        var hold = false
        var held = NetBufferListChain()
        var findings: FuzzFindings = []
        var indicated = 0
        let maxFrame: Int
        init(maxFrame: Int) { self.maxFrame = maxFrame }

        func check(_ nbl: NetBufferList, queue: ReceiveQueueID) {
            indicated += 1
            let length = nbl.dataLength
            if length < 14 || length > maxFrame { findings.append("queue \(queue.rawValue) indicated a \(length)-byte frame (14...\(maxFrame) expected)") }
            var room = 0
            for i in 0..<nbl.segmentCount {
                let s = nbl.segment(i)
                if s.length > s.capacity { findings.append("segment \(i) length \(s.length) exceeds its capacity \(s.capacity)") }
                if s.address == nil && s.length > 0 { findings.append("segment \(i) has \(s.length) bytes and no address") }
                room += Int(s.length)
            }
            if nbl.dataOffset + length > room { findings.append("data \(nbl.dataOffset)+\(length) runs past the segments' \(room) bytes") }
            if findings.isEmpty { _ = nbl.dataBytes() }   // reads every byte: ASan sees an overrun
        }

        func receiveNetBufferLists(_ chain: consuming NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
            chain.forEach { check($0, queue: queue) }
            if hold { held.append(chain) } else { binding.returnNetBufferLists(chain) }
        }
        var handlesResourcesIndications: Bool { true }
        func receiveNetBufferListsWithResources(_ chain: borrowing NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
            chain.forEach { check($0, queue: queue) }
        }
        func returnHeld(_ binding: Binding) {
            var chain = NetBufferListChain()
            swap(&chain, &held)
            binding.returnNetBufferLists(chain)
        }
    }

    static let address = MACAddress(0x52, 0x54, 0x00, 0x12, 0x34, 0x56)
    static let queueAddress = MACAddress(0x52, 0x54, 0x00, 0xaa, 0x00, 0x01)

    static func run(_ bytes: [UInt8]) -> FuzzFindings {
        var input = FuzzInput(bytes)
        let setup = input.byte()
        var findings: FuzzFindings = []
        let function: IGBModelFunction
        do {
            function = try IGBModel.makeFunction(configuration: .init(fidelity: .qemu, linkUpDelayNanoseconds: 0))
        } catch {
            return ["the model did not start: \(error)"]
        }
        var config = IGBConfiguration()
        config.linkTimeout = .seconds(5)
        config.defaultQueueDescriptors = 64
        config.defaultQueueBuffers = 96
        config.stripVLANTags = setup & 2 != 0
        let sink = Sink(maxFrame: config.maxFrameSize)
        function.model.start()
        let made: (adapter: Adapter, miniport: IGBMiniport<IGBModelFunction>)
        do {
            made = try IGBMiniport.makeAdapterWithMiniport(function: function, name: "fuzz-igb", configuration: config)
        } catch {
            function.model.stop()
            return ["the IGB adapter did not come up on the model: \(error)"]
        }
        function.model.stop()
        let adapter = made.adapter
        let model = function.model
        let tamper = Tamper()
        model.tamperWithReceiveWriteBacks { tamper.apply(&$0) }
        guard let binding = try? adapter.openBinding(sink) else {
            adapter.halt()
            return ["no binding on the IGB adapter"]
        }
        _ = try? binding.request(.setPacketFilter([.directed, .broadcast, .multicast, .promiscuous]))
        if setup & 1 != 0 {
            // A VMQ queue with a lookahead split (header buffers), selected by MAC.
            let lookahead = [64, 128, 256][Int(setup >> 2) % 3]
            if case let .queueAllocated(q)? = try? binding.request(.allocateQueue(ReceiveQueueParameters(flags: .lookaheadSplitRequired, numberOfBuffers: 16, lookaheadSize: lookahead))) {
                _ = try? binding.request(.queueAllocationComplete([q]))
                _ = try? binding.request(.setFilter(ReceiveFilterParameters(queue: q, tests: [.macDestination(queueAddress)])))
            }
        }

        func pump() {
            for _ in 0..<2 {
                model.step()
                _ = adapter.poll(budget: 64)
            }
        }

        var operations = 0
        while !input.isAtEnd && operations < 48 {
            operations += 1
            let op = input.byte()
            switch op % 8 {
            case 0, 1, 2:
                // A frame: destination (ours, the queue's, broadcast, fuzzed), then its body.
                let dst: [UInt8] = switch input.below(4) {
                case 0: address.array
                case 1: queueAddress.array
                case 2: MACAddress.broadcast.array
                default: input.take(6)
                }
                let length = Int(input.u16() % 2100)
                var frame = dst + [0x02, 0, 0, 0, 0, 0x99] + input.take(max(0, length - 12))
                if frame.count < length { frame += [UInt8](repeating: 0, count: length - frame.count) }
                // Tampering for up to 3 of its write-backs.
                for _ in 0..<input.below(4) {
                    let which = input.byte()
                    var c = Tamper.Change(dword0: 0, status: 0, lengthVLAN: 0, hiDword: 0, advance: 1)
                    switch which % 6 {
                    case 0: c.lengthVLAN = UInt32(input.u16())                   // length bits
                    case 1: c.status = UInt32(input.byte()) | UInt32(input.byte()) << 24   // DD/EOP.., errors
                    case 2: c.dword0 = UInt32(input.u16()) << 16                  // HDR_LEN, SPH
                    case 3: c.advance = input.below(3)                            // 0, 1 or 2
                    case 4: c.dword0 = UInt32(input.u16()); c.hiDword = input.u32() // packet type, RSS
                    default: c.status = input.u32(); c.lengthVLAN = input.u32()
                    }
                    tamper.pending.append(c)
                }
                model.inject(frame)
            case 3: pump()
            case 4: sink.hold.toggle()
            case 5: sink.returnHeld(binding)
            case 6: if input.below(8) == 0 { model.injectDMAFault() }
            default: pump(); pump()
            }
        }
        pump()
        sink.hold = false
        sink.returnHeld(binding)
        tamper.pending.removeAll()
        model.tamperWithReceiveWriteBacks(nil)
        pump()
        findings += sink.findings
        let report = adapter.halt()
        if !report.isClean { findings.append("halt not clean after every NBL came back: \(report)") }
        if function.dma.liveRegionCount != 0 { findings.append("\(function.dma.liveRegionCount) DMA regions still mapped after halt") }
        return findings
    }
}
