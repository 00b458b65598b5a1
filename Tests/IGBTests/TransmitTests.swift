import DeviceAccess
import IGB
import IGBModel
import NDIS
import Testing

@Suite("IGB transmit path on the model")
struct TransmitTests {
    /// Sends `frames` from a send pool, each with `info`, and returns the pool.
    @discardableResult
    static func send(_ bench: Bench, _ frames: [[UInt8]], info: NetBufferListInfo = NetBufferListInfo()) throws -> SendPool {
        let pool = try bench.binding.makeSendPool(count: 64, bufferSize: 2048)
        var chain = pool.allocate(count: frames.count)
        var i = 0
        chain.forEach { nbl in
            frames[i].withUnsafeBytes { _ = SendPool.fill(nbl, with: $0) }
            nbl.info = info
            i += 1
        }
        bench.binding.send(chain)
        return pool
    }

    @Test(arguments: [IGBModel.Fidelity.qemu, .datasheet])
    func transmittedFramesReachTheWireByteExactAndComplete(fidelity: IGBModel.Fidelity) throws {
        let bench = try Bench(fidelity: fidelity)
        let frames = (0..<50).map { Frames.udp(to: MACAddress(0x02, 0, 0, 0, 0, 0x10), sourcePort: UInt16($0), payload: Frames.payload(60 + $0)) }
        try Self.send(bench, frames)
        bench.pump(rounds: 4)
        #expect(bench.model.takeTransmitted() == frames)
        #expect(bench.recorder.sendCompletions.count == 50)
        #expect(bench.recorder.sendCompletions.allSatisfy { $0 == .success })
        #expect(bench.miniport.transmitCounters.completed == 50)
        bench.haltAndCheck()
    }

    @Test(arguments: [IGBModel.Fidelity.qemu, .datasheet])
    func linkDownIsIndicatedAndSendsWhileItIsDownCompleteAsNotSentAndAreCounted(fidelity: IGBModel.Fidelity) throws {
        let bench = try Bench(fidelity: fidelity) { $0.watchdogPollInterval = 1 }
        bench.model.setCableConnected(false)
        bench.pump(rounds: 2)
        #expect(bench.recorder.statuses.contains(.linkState(LinkState(up: false))), "\(bench.recorder.statuses)")
        #expect(bench.adapter.linkState.up == false)
        let frames = (0..<3).map { Frames.udp(to: MACAddress(0x02, 0, 0, 0, 0, 0x10), sourcePort: UInt16($0), payload: Frames.payload(60)) }
        let pool = try Self.send(bench, frames)
        bench.pump(rounds: 2)
        #expect(bench.model.takeTransmitted().isEmpty)
        #expect(bench.recorder.sendCompletions == [.mediaDisconnected, .mediaDisconnected, .mediaDisconnected])
        guard case let .statistics(s) = try bench.binding.request(.statistics) else { Issue.record("no statistics"); return }
        #expect(s.sendsWhileLinkDown == 3)
        #expect(s.global.transmittedFrames == 0)
        // Cable back: link up is indicated and sends go out again.
        bench.model.setCableConnected(true)
        bench.model.advance(nanoseconds: 10_000_000)
        bench.pump(rounds: 2)
        #expect(bench.adapter.linkState.up)
        #expect(bench.recorder.statuses.last == .linkState(bench.adapter.linkState))
        var chain = pool.allocate(count: 1)
        chain.forEach { nbl in frames[0].withUnsafeBytes { _ = SendPool.fill(nbl, with: $0) } }
        bench.binding.send(chain)
        bench.pump(rounds: 3)
        #expect(bench.model.takeTransmitted() == [frames[0]])
        #expect(bench.recorder.sendCompletions.last == .success)
        bench.haltAndCheck()
    }

    @Test func moreFramesThanDescriptorsWaitInTheBacklogAndAllGoOut() throws {
        let bench = try Bench(fidelity: .datasheet) { $0.transmitDescriptors = 64 }
        var all: [[UInt8]] = []
        var pools: [SendPool] = []
        for batch in 0..<3 {
            let frames = (0..<60).map { Frames.udp(to: .broadcast, sourcePort: UInt16(batch * 100 + $0), payload: Frames.payload(40)) }
            all += frames
            pools.append(try Self.send(bench, frames))
        }
        for _ in 0..<20 { bench.pump(rounds: 1) }
        #expect(bench.model.takeTransmitted() == all)
        #expect(bench.recorder.sendCompletions.count == 180)
        bench.haltAndCheck()
    }

    @Test(arguments: [IGBModel.Fidelity.qemu, .datasheet])
    func checksumOffloadFillsIPv4AndUDPChecksums(fidelity: IGBModel.Fidelity) throws {
        let bench = try Bench(fidelity: fidelity)
        let good = Frames.udp(to: MACAddress(0x02, 0, 0, 0, 0, 0x10), payload: Frames.payload(77), checksums: true)
        let bare = Frames.udp(to: MACAddress(0x02, 0, 0, 0, 0, 0x10), payload: Frames.payload(77), checksums: false)
        var info = NetBufferListInfo()
        info.checksum = [.transmitIPv4, .transmitUDP]
        try Self.send(bench, [bare], info: info)
        bench.pump()
        let wire = bench.model.takeTransmitted()
        #expect(wire == [good])
        bench.haltAndCheck()
    }

    @Test(arguments: [IGBModel.Fidelity.qemu, .datasheet])
    func vlanInsertionPutsTheTagFromTheNBLInfoOnTheWire(fidelity: IGBModel.Fidelity) throws {
        let bench = try Bench(fidelity: fidelity)
        let plain = Frames.udp(to: MACAddress(0x02, 0, 0, 0, 0, 0x10), payload: Frames.payload(60))
        var info = NetBufferListInfo()
        info.vlanPresent = true
        info.vlanID = 42
        info.userPriority = 5
        try Self.send(bench, [plain], info: info)
        bench.pump()
        let wire = bench.model.takeTransmitted()
        let expected = Array(plain[0..<12]) + [0x81, 0x00, 0xA0, 42] + Array(plain[12...])
        #expect(wire == [expected])
        bench.haltAndCheck()
    }

    @Test func aFrameTooShortForAnEthernetHeaderIsRefusedWithAStatus() throws {
        let bench = try Bench()
        try Self.send(bench, [[1, 2, 3]])
        bench.pump()
        #expect(bench.model.takeTransmitted().isEmpty)
        #expect(bench.recorder.sendCompletions == [.invalidLength])
        bench.haltAndCheck()
    }
}
