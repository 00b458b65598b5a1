import IGB
import IGBModel
import NDIS
import Protocols
import Testing

/// Issue 12 item 4: stopping a zero-copy forward never lets the output NIC transmit from buffers
/// the input has freed. Two IGB models share one IOMMU (one DMA domain, like two VFIO NICs of one
/// container); the output's device has not yet fetched the sends when the forward stops.
@Suite struct ForwardStopTests {
    struct Pair {
        let a: IGBModelFunction, b: IGBModelFunction
        let input: Adapter, output: Adapter
        let forwarder: Forwarder
    }

    static func pair() throws -> Pair {
        let a = try IGBModel.makeFunction(configuration: .init(linkUpDelayNanoseconds: 1_000_000))
        let b = try IGBModel.makeFunction(configuration: .init(linkUpDelayNanoseconds: 1_000_000), sharingIOMMUWith: a)
        var config = IGBConfiguration()
        config.linkTimeout = .seconds(5)
        // The models run free while the link comes up, then are stepped by hand.
        a.model.start(); b.model.start()
        let input = try IGBMiniport.makeAdapter(function: a, configuration: config, start: false)
        let output = try IGBMiniport.makeAdapter(function: b, configuration: config, start: false)
        a.model.stop(); b.model.stop()
        let forwarder = Forwarder(mode: Forwarder.mode(from: input, to: output), sendPoolSize: 16)
        #expect(forwarder.mode == .zeroCopy)
        let inBinding = try input.openBinding(forwarder)
        _ = try inBinding.request(.setPacketFilter([.directed, .multicast, .broadcast, .promiscuous]))
        forwarder.attachInput(inBinding)
        try forwarder.attachOutput(try output.openBinding(forwarder))
        try output.restart()
        try input.restart()
        return Pair(a: a, b: b, input: input, output: output, forwarder: forwarder)
    }

    /// 64 frames received on the input and posted, zero-copy, to the output's ring, which the
    /// output's device has not processed yet.
    static func forwardWithoutTransmitting(_ p: Pair) {
        for i in 0..<64 {
            p.a.model.inject(FrameBuilder.ethernet(destination: .broadcast, source: MACAddress(0x02, 0, 0, 0, 0, 0x42),
                                                   type: 0x88B5, payload: [UInt8](repeating: UInt8(i), count: 100)))
        }
        for _ in 0..<4 {
            p.a.model.step()
            _ = p.input.poll(budget: 64)
        }
    }

    @Test func stoppingAZeroCopyForwardStopsTheOutputFirstAndTheDeviceNeverTouchesFreedMemory() throws {
        let p = try Self.pair()
        Self.forwardWithoutTransmitting(p)
        #expect(p.forwarder.forwarded == 64)
        #expect(p.forwarder.inFlight == 64, "the sends wait in the output's ring")
        let (out, inp) = Forwarder.stop(output: { p.output.halt() }, input: { p.input.halt() })
        // The output cancelled its sends (REQUEST_ABORTED) and said so; every buffer went home first.
        #expect(out.sendsNotSent == 64, "\(out)")
        #expect(p.forwarder.inFlight == 0)
        #expect(p.forwarder.sendErrors == 64)
        #expect(inp.isClean, "the input halted with its buffers still lent: \(inp)")
        #expect(p.input.lateReturns == 0)
        // The output's device wakes up late: its queue is off, it fetches nothing.
        p.b.model.step()
        #expect(p.b.model.takeTransmitted().isEmpty)
        #expect(p.a.model.iommu.faults.isEmpty, "IOMMU faults: \(p.a.model.iommu.faults.count)")
        #expect(p.a.model.iommu.liveRegionCount == 0)
    }

    @Test func anInputHaltedFirstKeepsItsLentBuffersMappedUntilTheOutputGivesThemBack() throws {
        let p = try Self.pair()
        Self.forwardWithoutTransmitting(p)
        #expect(p.forwarder.inFlight == 64)
        // The wrong order: the framework still frees nothing the output's ring points at.
        let inp = p.input.halt()
        #expect(inp.outstandingNBLs == 64)
        #expect(inp.sharedMemoryKeptMapped >= 1)
        let out = p.output.halt()
        #expect(out.sendsNotSent == 64)
        #expect(p.input.lateReturns == 64, "the cancelled sends came back to the halted input as late returns")
        p.b.model.step()
        #expect(p.a.model.iommu.faults.isEmpty, "IOMMU faults: \(p.a.model.iommu.faults.count)")
        #expect(p.a.model.iommu.liveRegionCount == 0, "memory left mapped after the last late return")
    }
}
