import DeviceAccess
import IGB
import IGBModel
import NDIS
import Testing

@Suite("IGB receive path on the model")
struct ReceiveTests {
    @Test func framesForTheAdapterAreIndicatedOnTheDefaultQueueAndTheRingIsRefilled() throws {
        let bench = try Bench()
        let before = bench.miniport.bufferCounts(.default)
        var sent: [[UInt8]] = []
        for i in 0..<40 {
            let f = Frames.udp(to: bench.address, sourcePort: UInt16(1000 + i), payload: Frames.payload(100 + i, seed: UInt8(i)))
            sent.append(f)
            bench.model.inject(f)
        }
        bench.pump(rounds: 8)
        let got = bench.recorder.frames
        #expect(got.count == 40)
        #expect(got.map(\.bytes) == sent)
        #expect(got.allSatisfy { $0.queue == 0 && !$0.resources })
        #expect(got.allSatisfy { $0.segments.count == 1 && $0.segments[0].sharedMemory != .none })
        // Checksums were verified by the device.
        #expect(got.allSatisfy { $0.info.checksum.contains(.ipv4Succeeded) && $0.info.checksum.contains(.udpSucceeded) })
        // Every buffer came back and went back to the hardware.
        let after = bench.miniport.bufferCounts(.default)
        #expect(after.held == 0)
        // Refills go in batches of `refillBatch` (32): the ring is never short of more than a batch.
        #expect(after.posted > before.posted - 32)
        #expect(after.posted + after.free == after.total)
        #expect(bench.miniport.queueCounters(.default).frames == 40)
        bench.haltAndCheck()
    }

    @Test func framesAreIndicatedOnTheDatasheetModelToo() throws {
        let bench = try Bench(fidelity: .datasheet)
        let f = Frames.udp(to: bench.address, payload: Frames.payload(64))
        bench.model.inject(f)
        bench.pump()
        #expect(bench.recorder.frames.map(\.bytes) == [f])
        bench.haltAndCheck()
    }

    @Test func aCorruptWriteBackIsCountedAndItsBufferRecycled() throws {
        let bench = try Bench()
        bench.model.corruptNextWriteBackLength(queue: 0, length: 0xFFFF)
        let bad = Frames.udp(to: bench.address, payload: Frames.payload(80))
        let good = Frames.udp(to: bench.address, payload: Frames.payload(90, seed: 7))
        bench.model.inject(bad)
        bench.pump()
        bench.model.inject(good)
        bench.pump()
        #expect(bench.recorder.frames.map(\.bytes) == [good])
        #expect(bench.miniport.queueCounters(.default).badWriteBacks == 1)
        let counts = bench.miniport.bufferCounts(.default)
        #expect(counts.posted + counts.free == counts.total)
        bench.haltAndCheck()
    }

    @Test func aJumboFrameSpanningSeveralDescriptorsBecomesOneNBLWithSeveralSegments() throws {
        let bench = try Bench { $0.maxFrameSize = 9018 }
        let f = Frames.udp(to: bench.address, payload: Frames.payload(9000 - 42))
        bench.model.inject(f)
        bench.pump()
        let got = bench.recorder.frames
        #expect(got.count == 1)
        #expect(got.first?.bytes == f)
        #expect(got.first?.segments.map(\.length) == [2048, 2048, 2048, 2048, 808])
        // Each segment names its own buffer.
        #expect(Set(got.first?.segments.map(\.cookie) ?? []).count == 5)
        let counts = bench.miniport.bufferCounts(.default)
        #expect(counts.posted + counts.free == counts.total)
        bench.haltAndCheck()
    }

    @Test func protocolsHoldingEveryBufferGetResourcesIndicationsAndNoBufferIsLost() throws {
        let bench = try Bench()
        bench.recorder.hold = true
        let total = bench.miniport.bufferCounts(.default).total
        var injected = 0
        // Far more frames than buffers, in bursts the model's FIFO holds.
        for round in 0..<12 {
            for i in 0..<32 {
                bench.model.inject(Frames.udp(to: bench.address, sourcePort: UInt16(round * 32 + i), payload: Frames.payload(60)))
                injected += 1
            }
            bench.pump(rounds: 4)
        }
        bench.pump(rounds: 8)
        let frames = bench.recorder.frames
        let resources = frames.filter(\.resources).count
        #expect(frames.count == injected, "every injected frame reached the protocol, held or lent")
        #expect(resources > 0, "once protocols held most buffers, frames came with RESOURCES")
        #expect(bench.recorder.held.count < total)
        #expect(bench.miniport.queueCounters(.default).resourcesIndications == UInt64(resources))
        // Every frame arrived in order (source ports ascending).
        let ports = frames.map { UInt16($0.bytes[34]) << 8 | UInt16($0.bytes[35]) }
        #expect(ports == ports.sorted())
        bench.recorder.returnHeld()
        let counts = bench.miniport.bufferCounts(.default)
        #expect(counts.held == 0)
        #expect(counts.posted + counts.free == counts.total)
        bench.haltAndCheck()
    }

    @Test func vlanTagsAreStrippedIntoTheNBLInfo() throws {
        let bench = try Bench()
        let f = Frames.udp(to: bench.address, vlan: 0x2064, payload: Frames.payload(50))
        bench.model.inject(f)
        bench.pump()
        let got = try #require(bench.recorder.frames.first)
        #expect(got.info.vlanPresent)
        #expect(got.info.vlanID == 0x064)
        #expect(got.info.userPriority == 1)
        // The tag is gone from the data.
        #expect(got.bytes == Array(f[0..<12]) + Array(f[16...]))
        bench.haltAndCheck()
    }

    @Test(arguments: [IGBModel.Fidelity.datasheet, .qemu])
    func taggedFramesUpTo1522BytesWithoutFCSAreReceivedAndLongerOnesDropped(fidelity: IGBModel.Fidelity) throws {
        let bench = try Bench(fidelity: fidelity)
        // 1522 bytes without FCS with a VLAN tag (a sender that did not count the FCS), then one byte more.
        let max = Frames.udp(to: bench.address, vlan: 100, payload: Frames.payload(1522 - 46))
        let over = Frames.udp(to: bench.address, vlan: 100, payload: Frames.payload(1523 - 46))
        #expect(max.count == 1522 && over.count == 1523)
        bench.model.inject(max)
        bench.model.inject(over)
        bench.pump()
        #expect(bench.recorder.frames.count == 1)
        #expect(bench.recorder.frames.first?.bytes.count == 1518, "the tag is stripped into the NBL info")
        bench.haltAndCheck()
    }
}
