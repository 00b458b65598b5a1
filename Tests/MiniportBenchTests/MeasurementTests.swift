import Testing
@testable import MiniportBench

final class Token {}

@Suite("Counts")
struct CountsTests {
    @Test("the malloc interposer counts an allocation and its free")
    func interposerCountsAllocations() {
        #expect(Counts.mallocsAreCounted)
        let before = Counts.now()
        let p = UnsafeMutableRawPointer.allocate(byteCount: 100, alignment: 8)
        p.deallocate()
        let delta = Counts.now().since(before)
        #expect(delta.mallocs >= 1)
        #expect(delta.frees >= 1)
    }

    @Test("the retain hooks count every retain and release of a class reference")
    func retainHooksCountRetains() throws {
        try Counts.installRetainHooks()
        let token = Token()
        let unmanaged = Unmanaged.passUnretained(token)
        let delta = Counts.countingRetains {
            let before = Counts.now()
            for _ in 0..<10 { _ = unmanaged.retain() }
            for _ in 0..<10 { unmanaged.release() }
            return Counts.now().since(before)
        }
        #expect(delta.retains >= 10)
        #expect(delta.releases >= 10)
        withExtendedLifetime(token) {}
    }

    @Test("an object allocation is counted as one Swift object and at least one malloc")
    func objectAllocationIsCounted() throws {
        try Counts.installRetainHooks()
        let (delta, token) = Counts.countingRetains {
            let before = Counts.now()
            let token = Token()
            return (Counts.now().since(before), token)
        }
        withExtendedLifetime(token) {}
        #expect(delta.objectAllocations >= 1)
        #expect(delta.mallocs >= 1)
    }

    @Test("the time-stamp counter advances and its frequency is plausible")
    func tscAdvances() {
        let t0 = TSC.read()
        var x = 0
        for i in 0..<10_000 { x &+= i }
        let t1 = TSC.read()
        #expect(t1 > t0, "TSC did not advance (\(t0) → \(t1), work \(x))")
        let hz = TSC.measureFrequency(milliseconds: 30)
        #expect(hz > 1e8 && hz < 1e10, "TSC frequency \(hz) Hz is not between 100 MHz and 10 GHz")
    }
}

@Suite("CallgrindRun")
struct CallgrindParsingTests {
    @Test("a dump's label, packet count and total instructions are read")
    func parsesDump() throws {
        let text = """
        # callgrind format
        version: 1
        creator: callgrind-3.19.0
        pid: 4242
        cmd:  ./miniport bench
        part: 3

        desc: I1 cache:
        desc: Trigger: Client Request: receive/32/full packets=20000

        positions: line
        events: Ir
        summary: 2400000

        fn=(1) main
        0 2400000
        totals: 2400000
        """
        let parsed = try #require(CallgrindRun.parse(dump: text))
        #expect(parsed.label == "receive/32/full")
        #expect(parsed.packets == 20000)
        #expect(parsed.instructions == 2_400_000)
    }

    @Test("the model's inclusive cost counts calls into IGBModel from outside it, once")
    func modelInclusiveCost() throws {
        let text = """
        desc: Trigger: Client Request: forward/32/full packets=100
        positions: line
        events: Ir
        summary: 5000

        fn=$s3IGB11IGBMiniportC4poll
        0 1000
        cfn=$s8IGBModelAAC13writeRegister
        calls=2 0
        0 300
        cfn=$s4NDIS7AdapterC15indicateReceive
        calls=1 0
        0 700

        fn=$s8IGBModelAAC4step
        0 1500
        cfn=$s8IGBModelAAC8transmit
        calls=1 0
        0 900

        fn=$s14MiniportBench10IGBForwardC8runBatch
        0 100
        cfn=$s8IGBModelAAC4step
        calls=1 0
        0 2400
        totals: 5000
        """
        let parsed = try #require(CallgrindRun.parse(dump: text))
        // writeRegister from the driver (300) and step from the harness (2400); step → transmit is inside.
        #expect(parsed.modelInstructions == 2_700)
        #expect(parsed.instructions == 5_000)
    }

    @Test("a dump without a benchmark label is ignored")
    func ignoresUnlabelled() {
        #expect(CallgrindRun.parse(dump: "desc: Trigger: Program termination\ntotals: 5\n") == nil)
    }
}
