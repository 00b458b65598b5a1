import DeviceAccess
import IGB
import IGBModel
import NDIS
import Testing

@Suite("IGB initialization on the model")
struct InitializationTests {
    @Test func initializationBringsTheLinkUpAndReadsThePermanentAddress() throws {
        let bench = try Bench()
        #expect(bench.miniport.permanentAddress == Bench.modelAddress)
        #expect(bench.adapter.attributes?.permanentAddress == Bench.modelAddress)
        guard case let .linkState(link) = try bench.binding.request(.linkState) else {
            Issue.record("no link state")
            return
        }
        #expect(link.up)
        #expect(link.speedBitsPerSecond == 1_000_000_000)
        #expect(bench.adapter.state == .running)
        bench.haltAndCheck()
    }

    @Test(arguments: [IGBModel.Fidelity.qemu, .datasheet])
    func receiveStaysOffUntilRestartWhileTheWireIsBusyAndRequestsWorkWhilePaused(fidelity: IGBModel.Fidelity) throws {
        let bench = try Bench(fidelity: fidelity, start: false)
        #expect(bench.adapter.state == .paused)
        let macA = MACAddress(0x02, 0xAA, 0, 0, 0, 0x01)
        let early = (0..<8).map { i in Frames.udp(to: i % 2 == 0 ? macA : bench.address, payload: Frames.payload(60, seed: UInt8(i))) }
        for f in early { bench.model.inject(f) }
        bench.pump(rounds: 4)
        // Packet filter, queue, filter: all while Paused, all while frames keep arriving.
        try bench.binding.request(.setPacketFilter([.directed, .broadcast, .multicast]))
        let q = try bench.allocateQueue()
        let f = try bench.setFilter(q, [.macDestination(macA)])
        bench.pump(rounds: 4)
        #expect(bench.recorder.frames.isEmpty)
        #expect(bench.adapter.indicationsWhilePaused == 0, "the miniport received before restart")
        #expect(bench.adapter.frameworkDrops == 0)
        try bench.adapter.restart()
        let late = Frames.udp(to: macA, payload: Frames.payload(60, seed: 99))
        bench.model.inject(late)
        bench.pump(rounds: 6)
        // QEMU holds what arrived while receive was off and delivers it now; the datasheet's NIC
        // never took it. Either way each frame is on the queue its filter selects.
        let expectedEarly = fidelity == .qemu ? early : []
        #expect(bench.recorder.frames(on: q.rawValue).map(\.bytes) == expectedEarly.filter { Array($0.prefix(6)) == macA.array } + [late])
        #expect(bench.recorder.frames(on: 0).map(\.bytes) == expectedEarly.filter { Array($0.prefix(6)) != macA.array })
        #expect(bench.adapter.indicationsWhilePaused == 0)
        try bench.binding.request(.clearFilter(f))
        _ = try bench.binding.request(.freeQueue(q))
        bench.haltAndCheck()
    }
}
