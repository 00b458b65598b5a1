import DeviceAccess
import IGB
import IGBModel
import NDIS
import Testing

/// NET_BUFFER_SHARED_MEMORY on IGB's receive path (seed 001): every segment's SharedMemoryHandle and
/// SharedMemoryOffset name exactly the bytes (and device address) the segment starts at. Guarded by
/// `Tests/mutate igb-post-lookahead-offset-zero`.
@Suite("IGB shared memory info on received frames")
struct SharedMemoryInfoTests {
    static let macA = MACAddress(0x02, 0xAA, 0, 0, 0, 0x01)

    /// Problems with one recorded frame's segments, against the adapter's live shared memory.
    static func problems(_ frame: Recorder.Frame, _ adapter: Adapter) -> [String] {
        var out: [String] = []
        let blocks = adapter.sharedMemoryAllocations
        for (i, s) in frame.segments.enumerated() {
            guard let shm = blocks.first(where: { $0.sharedMemoryHandle == s.sharedMemory }) else {
                out.append("segment \(i): \(s.sharedMemory) is no live shared memory block")
                continue
            }
            let offset = Int(s.sharedMemoryOffset)
            if s.address != shm.unsafeVirtualAddress + offset {
                let actual = s.address.map { String($0 - shm.unsafeVirtualAddress) } ?? "nil"
                out.append("segment \(i): SharedMemoryOffset \(offset) but the segment starts at offset \(actual) of \(s.sharedMemory)")
            }
            if shm.region.iova(atOffset: offset) != s.iova {
                out.append("segment \(i): IOVA \(s.iova) is not the block's IOVA at offset \(offset)")
            }
        }
        return out
    }

    @Test func everySplitSegmentsSharedMemoryOffsetNamesItsOwnBytes() throws {
        let bench = try Bench()
        let q = try bench.allocateQueue(ReceiveQueueParameters(flags: [.lookaheadSplitRequired], numberOfBuffers: 64, lookaheadSize: 128))
        try bench.setFilter(q, [.macDestination(Self.macA)])
        let frames = [Frames.udp(to: Self.macA, payload: Frames.payload(300, seed: 9)),
                      Frames.udp(to: Self.macA, payload: Frames.payload(1200, seed: 3)),
                      Frames.udp(to: bench.address, payload: Frames.payload(500, seed: 4))]
        for f in frames { bench.model.inject(f) }
        bench.pump()
        let got = bench.recorder.frames
        #expect(got.count == frames.count)
        #expect(frames.allSatisfy { f in got.contains { $0.bytes == f } }, "every frame arrived intact")
        let split = got.filter { $0.queue == q.rawValue }
        #expect(split.count == 2)
        #expect(split.allSatisfy { $0.segments.count == 2 }, "split frames have a lookahead and a post-lookahead segment")
        for f in got {
            let p = Self.problems(f, bench.adapter)
            #expect(p.isEmpty, "queue \(f.queue): \(p)")
        }
        bench.haltAndCheck()
    }
}
