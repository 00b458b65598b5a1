/// What a benchmark measures: the three datapath directions of issue 9.
public enum BenchMode: String, CaseIterable, Sendable, Comparable {
    /// Receive on one adapter, send the same buffers on another; completions return them.
    case forward
    /// Indicate + return + refill on one adapter.
    case receive
    /// Submit + reap on one adapter.
    case transmit

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// Which half of a run: everything, or only the device's own work (subtracted to get the driver's share).
public enum BenchPart: String, Sendable {
    case full
    case deviceOnly = "device"
}

/// One configured run: a subject in one mode at one batch size. Made by a ``BenchSubject``.
///
/// `runBatch` is called in a tight loop between two counter reads; it must not allocate or retain
/// beyond what the code under test does, so implementations keep everything they need in stored
/// properties prepared at creation.
public protocol BenchWorkload: AnyObject {
    /// Runs one batch through the datapath and returns how many packets completed.
    func runBatch() -> Int
    /// Checks the datapath after the runs (no NBL lost, nothing dropped) and tears down.
    func finish() throws(BenchError)
}

/// Something to benchmark: a miniport (and its device) with the protocol modules around it.
public protocol BenchSubject: AnyObject {
    /// Short name (`igb-model`, `ndis`, `loopback`).
    var name: String { get }
    /// One line saying what runs.
    var summary: String { get }
    /// True when there is device-side work (a model) whose cost is measured separately.
    var hasDevice: Bool { get }
    /// Builds the workload for `mode` at `batch`; `part == .deviceOnly` replays only the device's work.
    func makeWorkload(mode: BenchMode, batch: Int, part: BenchPart) throws(BenchError) -> any BenchWorkload
}

/// How long and how often to measure.
public struct BenchSettings: Sendable {
    /// Batch sizes (issue 9: 1, 8, 32, 64).
    public var batchSizes: [Int] = [1, 8, 32, 64]
    public var modes: [BenchMode] = BenchMode.allCases
    /// Packets per timed run.
    public var packets: Int = 200_000
    /// Timed runs per configuration; the median is reported.
    public var repeats: Int = 5
    /// Packets run before timing (caches, branch predictors, pools in steady state).
    public var warmupPackets: Int = 20_000
    public init() {}
}

/// What one configuration measured.
public struct BenchSample: Sendable {
    public var packets: Int
    /// Time-stamp-counter ticks per packet of each timed run, sorted.
    public var cyclesPerPacket: [Double]
    /// Counts over one extra run of `countedPackets` packets.
    public var counts: Counts
    public var countedPackets: Int
    /// Callgrind Ir per packet, when measured.
    public var instructionsPerPacket: Double?

    public var medianCycles: Double { cyclesPerPacket.isEmpty ? 0 : cyclesPerPacket[cyclesPerPacket.count / 2] }
}

/// Runs workloads and brackets them with the counters.
public enum BenchRunner {
    /// Measures one workload: warm-up, then `repeats` timed runs of `packets` packets.
    public static func measure<W: BenchWorkload>(_ workload: W, settings: BenchSettings, label: String) throws(BenchError) -> BenchSample {
        try run(workload, packets: settings.warmupPackets, label: label)
        var perPacket: [Double] = []
        var done = 0
        for _ in 0..<max(1, settings.repeats) {
            let t0 = TSC.read()
            done = try run(workload, packets: settings.packets, label: label)
            let t1 = TSC.read()
            perPacket.append(Double(t1 &- t0) / Double(done))
        }
        // One more run with the allocation and retain counters (retain hooks slow the timing down).
        let counted = min(settings.packets, 50_000)
        let (counts, countedDone) = try Counts.countingRetains { () throws(BenchError) -> (Counts, Int) in
            let c0 = Counts.now()
            let n = try run(workload, packets: counted, label: label)
            return (Counts.now().since(c0), n)
        }
        perPacket.sort()
        return BenchSample(packets: done, cyclesPerPacket: perPacket, counts: counts, countedPackets: countedDone, instructionsPerPacket: nil)
    }

    /// Under callgrind: warm-up, then one run of `packets` with collection on, dumped as `label`.
    public static func profile<W: BenchWorkload>(_ workload: W, settings: BenchSettings, label: String) throws(BenchError) -> Int {
        try run(workload, packets: min(settings.warmupPackets, 2_000), label: label)
        Callgrind.zeroStats()
        Callgrind.toggleCollect()
        let done = try run(workload, packets: settings.packets, label: label)
        Callgrind.toggleCollect()
        Callgrind.dump("\(label) packets=\(done)")
        return done
    }

    /// Runs batches until at least `packets` completed. Throws when 1000 batches in a row make no progress.
    @discardableResult
    static func run<W: BenchWorkload>(_ workload: W, packets: Int, label: String) throws(BenchError) -> Int {
        var done = 0
        var idle = 0
        while done < packets {
            let n = workload.runBatch()
            if n == 0 {
                idle += 1
                if idle >= 1000 { throw .stalled(label) }
            } else {
                idle = 0
                done += n
            }
        }
        return done
    }
}
