import DeviceAccess
import IGB
import IGBModel
import NDIS
import Testing

/// Issue 12 item 4: teardown never frees memory a protocol or the device still uses.
@Suite("IGB teardown with NBLs and sends outstanding, on the model")
struct TeardownTests {
    @Test func haltWithNBLsStillHeldKeepsTheirMemoryMappedUntilTheLastLateReturnFreesIt() throws {
        let bench = try Bench()
        bench.recorder.hold = true
        let frames = (0..<5).map { Frames.udp(to: bench.address, sourcePort: UInt16($0), payload: Frames.payload(100 + $0)) }
        for f in frames { bench.model.inject(f) }
        bench.pump()
        #expect(bench.recorder.held.count == 5)
        let lateBefore = NDIS.lateReturns.load(ordering: .relaxed)

        let report = bench.adapter.halt()
        #expect(report.outstandingNBLs == 5)
        #expect(report.sharedMemoryKeptMapped >= 1)
        #expect(!report.isClean)
        #expect(report.description.contains("stay mapped until returned"), "\(report)")
        #expect(bench.adapter.state == .halted)
        // The held NBLs' buffers are still mapped: the protocol can read them after halt.
        let kept = bench.function.dma.liveRegionCount
        #expect(kept >= 1, "the receive buffers under the held NBLs must stay mapped")
        var read: [[UInt8]] = []
        bench.recorder.held.forEach { read.append($0.dataBytes()) }
        #expect(read == frames)

        // The late return: counted, accounted, and it frees the memory; nothing reaches the miniport.
        bench.recorder.returnHeld()
        #expect(bench.adapter.lateReturns == 5)
        #expect(NDIS.lateReturns.load(ordering: .relaxed) - lateBefore >= 5)
        #expect(bench.adapter.outstandingNetBufferLists == 0)
        #expect(bench.function.dma.liveRegionCount == 0, "memory left mapped after the last late return")
        #expect(bench.model.faults.isEmpty, "IOMMU faults: \(bench.model.faults)")
    }

    @Test func pauseWaitsForEveryReturnBeforeItCompletes() throws {
        let bench = try Bench()
        bench.recorder.hold = true
        for i in 0..<3 { bench.model.inject(Frames.udp(to: bench.address, sourcePort: UInt16(i), payload: Frames.payload(60))) }
        bench.pump()
        var completed = false
        #expect(bench.adapter.pause { completed = true } == false)
        #expect(bench.adapter.state == .pausing)
        #expect(!completed)
        bench.recorder.returnHeld()
        #expect(completed)
        #expect(bench.adapter.state == .paused)
        bench.haltAndCheck()
    }

    @Test func sendsPostedToAStuckTransmitRingCompleteWithAStatusAtPauseAndTheHaltReportSaysSo() throws {
        let bench = try Bench()
        bench.model.setQueueStuck(transmit: 0, true)
        let frames = (0..<4).map { Frames.udp(to: MACAddress(0x02, 0, 0, 0, 0, 0x10), sourcePort: UInt16($0), payload: Frames.payload(80)) }
        try TransmitTests.send(bench, frames)
        bench.pump()
        #expect(bench.recorder.sendCompletions.isEmpty, "a stuck ring completes nothing")
        _ = bench.adapter.pause()
        #expect(bench.recorder.sendCompletions == [NDISStatus](repeating: .requestAborted, count: 4))
        #expect(bench.miniport.transmitCounters.abortedAtPause == 4)
        #expect(bench.model.readRegister(0xE028) & (1 << 25) != 0, "TXDCTL0 is enabled again for the next restart")
        let report = bench.adapter.halt()
        #expect(report.sendsNotSent == 4)
        #expect(!report.isClean)
        #expect(report.description.contains("4 send(s) completed with an error status, not sent"), "\(report)")
        #expect(bench.function.dma.liveRegionCount == 0)
        // Unsticking the queue afterwards: the device fetches nothing (no fault, nothing sent).
        bench.model.setQueueStuck(transmit: 0, false)
        bench.model.step()
        #expect(bench.model.takeTransmitted().isEmpty)
        #expect(bench.model.faults.isEmpty, "IOMMU faults: \(bench.model.faults)")
    }
}
