import DeviceAccess
import IGB
import IGBModel
import NDIS
import Testing

@Suite("IGB RSS, statistics, interrupts and robustness on the model")
struct RobustnessTests {
    static let key: [UInt8] = [
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
        0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
        0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
    ]

    @Test func rssSpreadsFlowsOverQueuesAndReportsTheHashOnTheDefaultQueue() throws {
        let bench = try Bench()
        let table: [UInt8] = (0..<128).map { UInt8($0 % 4) }
        try bench.binding.request(.setReceiveScale(ReceiveScaleParameters(hashTypes: [.ipv4, .udpIPv4, .toeplitz], key: Self.key, indirectionTable: table)))
        for i in 0..<64 {
            bench.model.inject(Frames.udp(to: bench.address, sourcePort: UInt16(2000 + i * 7), payload: Frames.payload(40),
                                          sourceIP: [10, 0, UInt8(i), 1]))
        }
        bench.pump(rounds: 8)
        let frames = bench.recorder.frames
        #expect(frames.count == 64)
        #expect(frames.allSatisfy { $0.queue == 0 })
        #expect(frames.allSatisfy { $0.info.hashType == [.udpIPv4, .toeplitz] })
        // The hash picks the hardware queue through the table: more than one queue was used, and
        // each frame's buffer came from the ring of the queue its hash names.
        let queues = Set(frames.map { Int(table[Int($0.info.hashValue & 127)]) })
        #expect(queues.count > 1)
        for f in frames {
            let slot = Int(f.segments[0].cookie >> 24)
            let expectedQueue = Int(table[Int(f.info.hashValue & 127)])
            #expect(slot == (expectedQueue == 0 ? 0 : 8 + expectedQueue))
        }
        // VMQ queues are refused while RSS is on; turning RSS off allows them again.
        #expect(throws: NDISError.self) { try bench.binding.request(.allocateQueue(ReceiveQueueParameters())) }
        try bench.binding.request(.setReceiveScale(ReceiveScaleParameters(hashTypes: [], key: Self.key, indirectionTable: [0])))
        _ = try bench.allocateQueue()
        bench.haltAndCheck()
    }

    @Test func statisticsAccumulateIn64BitsAcrossClearOnReadRegisters() throws {
        let bench = try Bench()
        for _ in 0..<3 {
            for i in 0..<10 { bench.model.inject(Frames.udp(to: bench.address, payload: Frames.payload(100 + i))) }
            bench.pump()
            _ = try bench.binding.request(.statistics)  // reads (and so clears) the registers each time
        }
        guard case let .statistics(report) = try bench.binding.request(.statistics) else {
            Issue.record("no statistics")
            return
        }
        #expect(report.global.receivedFrames == 30)
        #expect(report.queues[0]?.receivedFrames == 30)
        let bytes = (0..<10).reduce(0) { $0 + 42 + 100 + $1 } * 3
        #expect(report.queues[0]?.receivedBytes == UInt64(bytes))
        #expect(report.global.receivedBytes >= UInt64(bytes))
        bench.haltAndCheck()
    }

    @Test func aFrameLostToADMAFaultIsCountedAsADrop() throws {
        let bench = try Bench(fidelity: .datasheet)
        bench.model.injectDMAFault()
        let frames = (0..<2).map { Frames.udp(to: bench.address, payload: Frames.payload(60, seed: UInt8($0))) }
        for f in frames { bench.model.inject(f) }
        bench.pump(rounds: 4)
        #expect(bench.model.faults.map(\.kind) == [.injected])
        // The first frame's descriptor fetch was refused: it is lost, and the statistics say so.
        #expect(bench.recorder.frames.map(\.bytes) == [frames[1]])
        guard case let .statistics(s) = try bench.binding.request(.statistics) else { Issue.record("no statistics"); return }
        #expect(s.global.receiveDrops == 1)
        #expect(s.global.receivedFrames == 1)
        #expect(bench.model.wireCounters.lostToDMAFaults == 1)
        #expect(bench.adapter.halt().isClean)
    }

    @Test func anAllOnesRegisterMeansTheDeviceIsGoneAndNothingSpins() throws {
        let bench = try Bench { $0.watchdogPollInterval = 1 }
        let pool = try bench.binding.makeSendPool(count: 4, bufferSize: 256)
        bench.model.surpriseRemove()
        let clock = ContinuousClock()
        let elapsed = clock.measure { bench.pump(rounds: 2) }
        #expect(elapsed < .seconds(1))
        #expect(bench.adapter.isSurpriseRemoved)
        #expect(bench.recorder.statuses.contains(.surpriseRemoval))
        // Sends now fail at once.
        let frame = Frames.udp(to: .broadcast, payload: Frames.payload(40))
        var chain = pool.allocate(count: 1)
        chain.forEach { nbl in frame.withUnsafeBytes { _ = SendPool.fill(nbl, with: $0) } }
        bench.binding.send(chain)
        #expect(bench.recorder.sendCompletions == [.deviceRemoved])
        #expect(throws: NDISError.self) { try bench.binding.request(.statistics) }
        let report = bench.adapter.halt()
        #expect(report.isClean, "\(report)")
        #expect(bench.function.dma.liveRegionCount == 0)
    }

    @Test func initializationFailsWithAClearErrorWhenTheLinkStaysDownAndFreesEverything() throws {
        let function = try IGBModel.makeFunction(configuration: .init(fidelity: .qemu))
        function.model.setCableConnected(false)
        var config = IGBConfiguration()
        config.linkTimeout = .milliseconds(50)
        function.model.start()
        defer { function.model.stop() }
        do {
            _ = try IGBMiniport.makeAdapter(function: function, configuration: config)
            Issue.record("initialization should fail without link")
        } catch {
            #expect("\(error)".contains("STATUS.LU"))
        }
        #expect(function.dma.liveRegionCount == 0)
    }

    @Test func unsupportedDevicesAreRefusedAndI350IDsAreClaimed() {
        #expect(IGBDeviceID.isSupported(vendor: 0x8086, device: 0x10C9))
        for id: UInt16 in [0x1521, 0x1522, 0x1523, 0x1524] { #expect(IGBDeviceID.isSupported(vendor: 0x8086, device: id)) }
        #expect(!IGBDeviceID.isSupported(vendor: 0x8086, device: 0x10D3))
        #expect(IGBDeviceID.supported.filter(\.verified).map(\.id) == [0x10C9])
    }

    @Test func anIdleQueueSleepsAndWakesOnItsInterrupt() throws {
        let bench = try Bench { $0.useInterrupts = true; $0.interruptThrottleMicroseconds = 0 }
        #expect(bench.miniport.usesInterrupts)
        #expect(bench.miniport.interruptVector(for: .default) == 1)
        // Nothing arrives: the wait times out.
        #expect(!bench.miniport.waitForInterrupt(timeoutMilliseconds: 5))
        bench.model.inject(Frames.udp(to: bench.address, payload: Frames.payload(40)))
        bench.model.step()
        #expect(bench.miniport.waitForInterrupt(timeoutMilliseconds: 1000))
        #expect(bench.adapter.poll() == 1)
        #expect(bench.recorder.frames.count == 1)
        bench.haltAndCheck()
    }

    @Test func theDatapathLoopPollsUnderLoadAndSleepsWhenIdle() throws {
        let bench = try Bench { $0.useInterrupts = true; $0.interruptThrottleMicroseconds = 0 }
        let loop = IGBDatapathLoop(adapter: bench.adapter, miniport: bench.miniport, idlePollsBeforeSleep: 4, sleepTimeoutMilliseconds: 1)
        for i in 0..<20 { bench.model.inject(Frames.udp(to: bench.address, sourcePort: UInt16(i), payload: Frames.payload(40))) }
        bench.model.step()
        var rounds = 0
        loop.run { rounds += 1; return rounds > 40 }
        #expect(bench.recorder.frames.count == 20)
        #expect(loop.busyPolls >= 1)
        #expect(loop.sleeps >= 1)
        bench.haltAndCheck()
    }
}
