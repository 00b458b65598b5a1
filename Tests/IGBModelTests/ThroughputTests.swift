import DeviceAccess
import Glibc
import IGBModel
import Testing

@Suite("Throughput of the stepped model (printed, not gated)")
struct ThroughputTests {
    static func nanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    @Test func tenThousandFramesPassThroughInjectStepAndRecycle() throws {
        let h = try Harness()
        try h.linkUp()
        let rx = try h.setupRX(count: 64)
        h.enableReceive()
        let frame = Frames.ipv4(payload: Array(repeating: 0x5A, count: 1400))
        var received = 0
        var tail = 63
        let start = Self.nanoseconds()
        for _ in 0..<(10_000 / 32) {
            for _ in 0..<32 { h.model.inject(frame) }
            h.model.step()
            // The driver hands the 32 completed descriptors back.
            for _ in 0..<32 {
                let i = (tail + 1) % 64
                if rx.writeBack(i).done { received += 1 }
                rx.refill(i)
                tail = i
            }
            h.write(R.RDT(0), UInt32(tail))
        }
        let elapsed = Self.nanoseconds() - start
        print("IGBModel: \(received) frames of \(frame.count) bytes, \(elapsed / UInt64(max(received, 1))) ns/frame (inject + filter + DMA + write-back)")
        #expect(received == 10_000 / 32 * 32)
        #expect(h.model.faults.isEmpty)
    }

    @Test func theBenchmarkHookCompletesDescriptorsCheaply() throws {
        let h = try Harness()
        try h.linkUp()
        let rx = try h.setupRX(count: 512)
        h.enableReceive()
        h.model.setBenchmarkReceive(frame: Frames.ipv4(payload: Array(repeating: 1, count: 40)), queue: 0)
        var completed = 0
        let start = Self.nanoseconds()
        for _ in 0..<200 {
            let before = Int(h.read(R.RDH(0)))
            h.model.step()
            let after = Int(h.read(R.RDH(0)))
            completed += (after - before + 512) % 512
            h.write(R.RDT(0), UInt32((after + 511) % 512))   // hand every descriptor back
        }
        let elapsed = Self.nanoseconds() - start
        print("IGBModel benchmark hook: \(completed) descriptors, \(elapsed / UInt64(max(completed, 1))) ns/descriptor")
        #expect(completed == 200 * 511)
        #expect(rx.writeBack(0).done)
    }
}
