import NDIS
import Testing
@testable import Protocols

@Suite struct ForwarderTests {
    func pair(mode: Forwarder.Mode) throws -> (LoopbackBed, LoopbackBed, Forwarder, Binding, Binding) {
        let a = try LoopbackBed(name: "a", mac: Addr.mac1, buffers: 32)
        let b = try LoopbackBed(name: "b", mac: Addr.mac2, buffers: 32)
        let f = Forwarder(mode: mode, sendPoolSize: 16)
        let input = try a.adapter.openBinding(f)
        let output = try b.adapter.openBinding(f)
        f.attachInput(input)
        try f.attachOutput(output)
        return (a, b, f, input, output)
    }

    func frames(_ n: Int) -> [[UInt8]] {
        (0..<n).map { FrameBuilder.filler(destination: Addr.other, source: Addr.peer, length: 60 + $0 * 7) }
    }

    @Test func zeroCopySendsTheReceivedBuffersAndReturnsThemToTheirSourceAfterCompletion() throws {
        let (a, b, f, _, _) = try pair(mode: .zeroCopy)
        let sent = frames(30)
        for x in sent { a.miniport.inject(x) }
        a.pump()
        let out = b.miniport.takeTransmitted()
        let same = out == sent
        #expect(same, "the output sent other frames than the input received")
        #expect(f.forwarded == 30)
        #expect(f.completed == 30)
        #expect(f.inFlight == 0)
        #expect(f.badRestores == 0)
        // Every received buffer is back in the input's receive ring; none leaked to the output.
        #expect(a.adapter.outstandingNetBufferLists == 0)
        #expect(a.miniport.freeBuffers(queue: .default) == 32)
        #expect(a.halt().isClean)
        #expect(b.halt().isClean)
    }

    @Test func copyModeCopiesIntoTheOutputsSendPoolAndReturnsReceivesAtOnce() throws {
        let (a, b, f, _, _) = try pair(mode: .copy)
        let sent = frames(10)
        for x in sent { a.miniport.inject(x) }
        a.pump()
        let same = b.miniport.takeTransmitted() == sent
        #expect(same, "the output sent other frames than the input received")
        #expect(f.forwarded == 10)
        #expect(f.completed == 10)
        #expect(a.adapter.outstandingNetBufferLists == 0)
        #expect(a.halt().isClean)
        #expect(b.halt().isClean)
    }

    @Test func resourcesIndicationsAreForwardedAsCopies() throws {
        // 32 receive buffers: the loopback indicates frames 33... with RESOURCES, which NDIS copies
        // for the forwarder; those copies have no shared memory info, so they take the copy path.
        let (a, b, f, _, _) = try pair(mode: .zeroCopy)
        for x in frames(36) { a.miniport.inject(x) }
        a.pump()
        #expect(a.miniport.resourcesIndications >= 1)
        #expect(b.miniport.takeTransmitted().count == 36)
        #expect(f.forwarded == 36)
        #expect(f.inFlight == 0)
        #expect(a.adapter.outstandingNetBufferLists == 0)
        #expect(a.halt().isClean)
        #expect(b.halt().isClean)
    }

    @Test func framesBeyondTheCopyPoolAreDroppedAndCounted() throws {
        // The loopback completes sends synchronously, so a pool of 16 takes a batch of at most 16.
        let (a, b, f, _, _) = try pair(mode: .copy)
        for x in frames(30) { a.miniport.inject(x) }
        _ = a.adapter.poll(budget: 30)
        #expect(f.forwarded == 16)
        #expect(f.drops == 14)
        #expect(b.miniport.takeTransmitted().count == 16)
        #expect(a.adapter.outstandingNetBufferLists == 0)
        _ = a.halt()
        _ = b.halt()
    }

    @Test func onlyTheChosenQueueIsForwarded() throws {
        let (a, b, f, input, _) = try pair(mode: .zeroCopy)
        let set = try QueueSet.allocate([.mac(Addr.mac3)], on: input, buffers: 16)
        f.inputQueue = set.queues[1].id
        let wanted = FrameBuilder.filler(destination: Addr.mac3, source: Addr.peer, length: 90)
        a.miniport.inject(FrameBuilder.filler(destination: Addr.other, source: Addr.peer, length: 80))
        a.miniport.inject(wanted)
        a.pump()
        #expect(b.miniport.takeTransmitted() == [wanted])
        #expect(f.ignored == 1)
        #expect(set.release().isEmpty)
        #expect(a.halt().isClean)
        _ = b.halt()
    }

    @Test func framesReceivedOnTheOutputAreGivenBackNotForwarded() throws {
        let (a, b, f, _, _) = try pair(mode: .zeroCopy)
        b.miniport.inject(FrameBuilder.filler(destination: Addr.other, source: Addr.peer, length: 80))
        b.pump()
        #expect(f.ignored == 1)
        #expect(a.miniport.takeTransmitted().isEmpty)
        #expect(b.adapter.outstandingNetBufferLists == 0)
        _ = a.halt()
        _ = b.halt()
    }
}

@Suite struct CounterTests {
    @Test func framesAndBytesAreCountedPerQueue() throws {
        let bed = try LoopbackBed()
        let counter = Counter()
        let binding = try bed.adapter.openBinding(counter)
        let set = try QueueSet.allocate([.mac(Addr.mac1), .vlan(7)], on: binding, buffers: 16)
        bed.miniport.inject(FrameBuilder.filler(destination: Addr.mac1, source: Addr.peer, length: 100))
        bed.miniport.inject(FrameBuilder.filler(destination: Addr.mac1, source: Addr.peer, length: 200))
        bed.miniport.inject(FrameBuilder.filler(destination: Addr.other, source: Addr.peer, vlan: 7, length: 300))
        bed.miniport.inject(FrameBuilder.filler(destination: .broadcast, source: Addr.peer, length: 60))
        bed.pump()
        #expect(counter.counters.frames(queue: ReceiveQueueID(1)) == 2)
        #expect(counter.counters.bytes(queue: ReceiveQueueID(1)) == 300)
        #expect(counter.counters.frames(queue: ReceiveQueueID(2)) == 1)
        #expect(counter.counters.bytes(queue: ReceiveQueueID(2)) == 300)
        #expect(counter.counters.frames(queue: .default) == 1)
        let report = QueueReport(queues: set.queues, counters: counter.counters, drops: 0)
        #expect(report.totalFrames == 4)
        #expect(set.release().isEmpty)
        #expect(bed.halt().isClean)
    }

    @Test func aStrippedTagCountsInTheWireLength() {
        let counter = Counter()
        let h = HandMadeNBL([UInt8](repeating: 0, count: 100), vlan: 5)
        counter.tally(h.chain)
        #expect(counter.counters.bytes(queue: .default) == 104)
    }
}
