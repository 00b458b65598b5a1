import DeviceAccess
import IGB
import IGBModel
import NDIS
import Testing
@testable import Protocols

/// The protocol modules on the IGB miniport driving the 82576 hardware model.
final class ModelNIC {
    let function: IGBModelFunction
    let adapter: Adapter
    var model: IGBModel { function.model }

    init(mac: MACAddress = MACAddress(0x52, 0x54, 0x00, 0x12, 0x34, 0x56)) throws {
        function = try IGBModel.makeFunction(configuration: .init(permanentAddress: mac.array, linkUpDelayNanoseconds: 1_000_000, receiveFIFOFrames: 256))
        var config = IGBConfiguration()
        config.linkTimeout = .seconds(5)
        config.queuesAcceptMulticast = false
        let f = function
        f.model.start()
        defer { f.model.stop() }
        adapter = try IGBMiniport.makeAdapter(function: f, name: "model", configuration: config)
    }

    func pump(rounds: Int = 8) {
        for _ in 0..<rounds {
            model.step()
            _ = adapter.poll(budget: 64)
        }
    }

    func halt() -> (HaltReport, Int) {
        let r = adapter.halt()
        return (r, function.dma.liveRegionCount)
    }
}

@Suite(.serialized) struct ModelTests {
    @Test func captureOnTheModelPutsTheStrippedVLANTagBackAndNamesTheQueues() throws {
        let nic = try ModelNIC()
        let capture = PacketCapture(limit: nil)
        let binding = try nic.adapter.openBinding(capture)
        let set = try QueueSet.allocate([.mac(Addr.mac1), .vlan(100)], on: binding, buffers: 64)
        let path = temporaryPath("model.pcapng")
        try capture.start(path: path, queues: set.queues)
        let toMAC = FrameBuilder.filler(destination: Addr.mac1, source: Addr.peer, length: 300)
        let tagged = FrameBuilder.filler(destination: Addr.other, source: Addr.peer, vlan: 100, length: 1518)
        let toUs = FrameBuilder.filler(destination: MACAddress(0x52, 0x54, 0x00, 0x12, 0x34, 0x56), source: Addr.peer, length: 64)
        for f in [toMAC, tagged, toUs] { nic.model.inject(f) }
        nic.pump()
        #expect(capture.finish() == nil)
        let file = try PcapFile(path: path)
        #expect(file.interfaces.map(\.name) == ["rxq0", "rxq1", "rxq2"])
        #expect(file.interfaces.map(\.description) == ["default", "mac 52:54:00:aa:00:01", "vlan 100"])
        #expect(file.packets.count == 3)
        // The 82576 strips the tag (VMOLR.STRVLAN); the file holds the frame as it was on the wire.
        let onVLANQueue = file.packets.filter { $0.interface == 2 }.map(\.data)
        #expect(onVLANQueue.count == 1)
        #expect(onVLANQueue.first == tagged, "the VLAN frame was not written as on the wire")
        #expect(file.packets.filter { $0.interface == 1 }.map(\.data) == [toMAC])
        #expect(file.packets.filter { $0.interface == 0 }.map(\.data) == [toUs])
        #expect(set.release().isEmpty)
        let (report, regions) = nic.halt()
        #expect(report.isClean)
        #expect(regions == 0)
    }

    @Test func theResponderAnswersThroughTheModelsTransmitRing() throws {
        let nic = try ModelNIC()
        let ip = IPv4Address(10, 1, 1, 1)
        let responder = Responder(address: ip)
        _ = try nic.adapter.openBinding(responder, frameTypes: Responder.frameTypes)
        nic.model.inject(FrameBuilder.arpRequest(senderMAC: Addr.peer, senderIP: IPv4Address(10, 1, 1, 2), targetIP: ip))
        nic.model.inject(FrameBuilder.echoRequest(sourceMAC: Addr.peer, destinationMAC: MACAddress(0x52, 0x54, 0x00, 0x12, 0x34, 0x56),
                                                  source: IPv4Address(10, 1, 1, 2), destination: ip, sequence: 3))
        nic.pump()
        let out = nic.model.takeTransmitted()
        #expect(out.count == 2)
        #expect(responder.arpReplies == 1 && responder.echoReplies == 1)
        #expect(out.contains { $0.count >= 42 && $0[12] == 0x08 && $0[13] == 0x06 && $0[21] == 2 })
        #expect(out.contains { f in
            f.count >= 42 && f[12] == 0x08 && f[13] == 0x00 && f[34] == 0
                && Array(f[14..<34]).withUnsafeBytes { InternetChecksum.verify($0) }
        })
        #expect(nic.halt().0.isClean)
    }

    @Test func theForwarderCopiesBetweenTwoModelNICsAndReturnsEveryBuffer() throws {
        let a = try ModelNIC(mac: Addr.mac1)
        let b = try ModelNIC(mac: Addr.mac2)
        let f = Forwarder(mode: .copy, sendPoolSize: 64)
        let input = try a.adapter.openBinding(f)
        f.attachInput(input)
        try f.attachOutput(try b.adapter.openBinding(f))
        let frames = (0..<20).map { FrameBuilder.filler(destination: Addr.mac1, source: Addr.peer, length: 60 + $0 * 50) }
        for x in frames { a.model.inject(x) }
        for _ in 0..<8 { a.pump(rounds: 1); b.pump(rounds: 1) }
        let out = b.model.takeTransmitted()
        let same = out == frames
        #expect(same, "the frames out of B differ from those into A")
        #expect(f.forwarded == 20 && f.completed == 20)
        #expect(a.adapter.outstandingNetBufferLists == 0)
        #expect(a.halt().0.isClean)
        #expect(b.halt().0.isClean)
    }

    @Test func theGeneratorsFramesLeaveTheModelInOrder() throws {
        let nic = try ModelNIC()
        let g = PacketGenerator(configuration: GeneratorConfiguration(destinationMAC: Addr.peer, frameSize: 200, count: 300), poolSize: 128)
        _ = try nic.adapter.openBinding(g)
        var seen: [UInt64] = []
        var now: UInt64 = 1
        while !(g.isComplete && g.isDrained) && now < 10_000 {
            g.generate(now: now)
            nic.pump(rounds: 1)
            seen += nic.model.takeTransmitted().compactMap { GeneratedFrameLayout.sequenceNumber(in: $0) }
            now += 1
        }
        nic.pump()
        seen += nic.model.takeTransmitted().compactMap { GeneratedFrameLayout.sequenceNumber(in: $0) }
        #expect(seen == (0..<300).map { UInt64($0) })
        #expect(nic.halt().0.isClean)
    }
}
