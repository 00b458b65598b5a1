import Glibc

/// The figures of one mode at one batch size. `cyclesPerPacket`, `instructionsPerPacket`,
/// `mallocsPerPacket` and `retainsPerPacket` are the driver's share (the device's own cost, measured
/// separately, subtracted); `packetsPerSecond` is the rate the whole loop (driver and device) ran at.
public struct BenchFigures: Sendable {
    public var packetsPerSecond: Double
    public var cyclesPerPacket: Double
    public var mallocsPerPacket: Double
    public var retainsPerPacket: Double
    public var instructionsPerPacket: Double?
    /// Cycles per packet of driver and device together.
    public var totalCyclesPerPacket: Double
    /// The device's own cost (nil when the subject has no device).
    public var deviceCyclesPerPacket: Double?
    public var deviceInstructionsPerPacket: Double?
    /// The driver's share by the device-only replay (full − replay), when the model's inclusive cost
    /// was measured too (then `instructionsPerPacket` is full − the Ir spent inside the model).
    public var replayInstructionsPerPacket: Double?
    public var deviceMallocsPerPacket: Double?
    public var deviceRetainsPerPacket: Double?
    /// Spread of the timed runs: (slowest − fastest) / median, driver and device together.
    public var cycleSpread: Double
}

/// Everything one benchmark run measured.
public struct BenchReport: Sendable {
    public var subject: String
    public var summary: String
    public var tscHz: Double
    public var settings: BenchSettings
    public var results: [BenchMode: [Int: BenchFigures]] = [:]
    /// Where `instructionsPerPacket` came from ("callgrind"), nil when not measured.
    public var instructionSource: String?
    public var mallocsCounted: Bool
    public var retainsCounted: Bool
}

/// Runs every mode and batch size of a subject.
public enum BenchSuite {
    /// Measures `subject` natively: cycles and counts, driver and device separately.
    /// - Parameter progress: called before each configuration (for a progress line on stderr).
    public static func run(_ subject: any BenchSubject, settings: BenchSettings,
                           progress: (String) -> Void = { _ in }) throws(BenchError) -> BenchReport {
        if getenv("MINIPORT_BENCH_NO_RETAIN_HOOKS") == nil { try? Counts.installRetainHooks() }
        let tscHz = TSC.measureFrequency()
        var report = BenchReport(subject: subject.name, summary: subject.summary, tscHz: tscHz, settings: settings,
                                 instructionSource: nil, mallocsCounted: Counts.mallocsAreCounted,
                                 retainsCounted: Counts.retainsAreCounted)
        for mode in settings.modes {
            var perBatch: [Int: BenchFigures] = [:]
            for batch in settings.batchSizes {
                progress("\(subject.name) \(mode.rawValue) batch \(batch)")
                let full = try sample(subject, mode: mode, batch: batch, part: .full, settings: settings)
                let device = subject.hasDevice
                    ? try sample(subject, mode: mode, batch: batch, part: .deviceOnly, settings: settings) : nil
                perBatch[batch] = figures(full: full, device: device, tscHz: tscHz)
            }
            report.results[mode] = perBatch
        }
        return report
    }

    static func sample(_ subject: any BenchSubject, mode: BenchMode, batch: Int, part: BenchPart,
                       settings: BenchSettings) throws(BenchError) -> BenchSample {
        let workload = try subject.makeWorkload(mode: mode, batch: batch, part: part)
        let s = try measureOpened(workload, settings: settings, label: label(mode, batch, part))
        try workload.finish()
        return s
    }

    static func measureOpened(_ w: some BenchWorkload, settings: BenchSettings, label: String) throws(BenchError) -> BenchSample {
        try BenchRunner.measure(w, settings: settings, label: label)
    }

    static func label(_ mode: BenchMode, _ batch: Int, _ part: BenchPart) -> String { "\(mode.rawValue)/\(batch)/\(part.rawValue)" }

    static func figures(full: BenchSample, device: BenchSample?, tscHz: Double) -> BenchFigures {
        let total = full.medianCycles
        let perPacket = { (n: UInt64, s: BenchSample) in Double(n) / Double(max(1, s.countedPackets)) }
        let fullMallocs = perPacket(full.counts.mallocs, full), fullRetains = perPacket(full.counts.retains, full)
        let devCycles = device?.medianCycles
        let devMallocs = device.map { perPacket($0.counts.mallocs, $0) }
        let devRetains = device.map { perPacket($0.counts.retains, $0) }
        let spread = full.cyclesPerPacket.count > 1 && total > 0
            ? (full.cyclesPerPacket.last! - full.cyclesPerPacket.first!) / total : 0
        return BenchFigures(
            packetsPerSecond: total > 0 ? tscHz / total : 0,
            cyclesPerPacket: max(0, total - (devCycles ?? 0)),
            mallocsPerPacket: max(0, fullMallocs - (devMallocs ?? 0)),
            retainsPerPacket: max(0, fullRetains - (devRetains ?? 0)),
            instructionsPerPacket: nil,
            totalCyclesPerPacket: total,
            deviceCyclesPerPacket: devCycles,
            deviceInstructionsPerPacket: nil,
            replayInstructionsPerPacket: nil,
            deviceMallocsPerPacket: devMallocs,
            deviceRetainsPerPacket: devRetains,
            cycleSpread: spread)
    }

    /// Under callgrind (the child of ``CallgrindRun``): one profiled run per configuration, each
    /// dumped under the label `mode/batch/part packets=N`.
    public static func profileUnderCallgrind(_ subject: any BenchSubject, settings: BenchSettings) throws(BenchError) {
        guard Callgrind.isRunning else { throw .valgrind("--callgrind-child runs only under valgrind --tool=callgrind") }
        for mode in settings.modes {
            for batch in settings.batchSizes {
                var parts: [BenchPart] = [.full]
                if subject.hasDevice { parts.append(.deviceOnly) }
                for part in parts {
                    let workload = try subject.makeWorkload(mode: mode, batch: batch, part: part)
                    _ = try profileOpened(workload, settings: settings, label: label(mode, batch, part))
                    try workload.finish()
                }
            }
        }
    }

    static func profileOpened(_ w: some BenchWorkload, settings: BenchSettings, label: String) throws(BenchError) -> Int {
        try BenchRunner.profile(w, settings: settings, label: label)
    }

    /// Puts callgrind's instruction counts (label → Ir per packet) into the report.
    public static func merge(instructions: [String: Double], into report: inout BenchReport) {
        for (mode, perBatch) in report.results {
            var updated = perBatch
            for (batch, var f) in perBatch {
                guard let full = instructions[label(mode, batch, .full)] else { continue }
                let device = instructions[label(mode, batch, .deviceOnly)]
                if let inside = instructions[label(mode, batch, .full) + CallgrindRun.modelSuffix] {
                    // Exact: everything the full run executed outside the model. The replay's
                    // difference is kept beside it (it also counts the replay's own ring work as device).
                    f.instructionsPerPacket = max(0, full - inside)
                    f.deviceInstructionsPerPacket = inside
                    f.replayInstructionsPerPacket = device.map { max(0, full - $0) }
                } else {
                    f.instructionsPerPacket = max(0, full - (device ?? 0))
                    f.deviceInstructionsPerPacket = device
                }
                updated[batch] = f
            }
            report.results[mode] = updated
        }
        report.instructionSource = "callgrind"
    }
}
