import ArgumentParser
import Glibc
import Foundation
import MiniportBench

/// `miniport bench`: datapath figures on the hardware model (`--model`) or a bound NIC (`--device`).
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure the datapath: packets/s, cycles, instructions, mallocs and retains per packet.",
        discussion: """
        --model runs receive, transmit and forward at batch sizes 1, 8, 32 and 64 with no setup and
        reports the driver's share (the device's own cost is measured separately and subtracted).
        --instructions adds callgrind instruction counts (valgrind; slower, repeatable).
        --device ADDRESS runs receive, transmit and forward on a NIC bound to vfio-pci (forward with
        --to ADDRESS2 goes to a second NIC). Docs/BENCHMARKS.md explains every figure.
        """
    )

    @Flag(help: "Benchmark on the in-process hardware model (no setup needed).")
    var model = false

    @Option(help: "Benchmark a NIC bound to vfio-pci (PCI address, e.g. 0000:03:00.0) with the IGB miniport.")
    var device: String?

    @Option(help: "With --device: forward to this second NIC (frames are copied: two VFIO containers) instead of back out of the same port.")
    var to: String?

    @Option(help: "What runs on --model: \(BenchSubjectKind.allCases.map(\.rawValue).joined(separator: ", ")).")
    var subject: String = BenchSubjectKind.defaultForModel.rawValue

    @Flag(help: ArgumentHelp("Fail the gate on purpose (tests of the gate): count one malloc per packet.", visibility: .hidden))
    var breakGate = false

    @Flag(help: "Print JSON: {mode: {batch: {packetsPerSecond, cyclesPerPacket, mallocsPerPacket, retainsPerPacket, instructionsPerPacket…}}}.")
    var json = false

    @Flag(help: "Also count instructions per packet under valgrind --tool=callgrind.")
    var instructions = false

    @Option(help: "Packets per timed run.")
    var packets: Int = 200_000

    @Option(help: "Timed runs per configuration (the median is reported).")
    var repeats: Int = 5

    @Option(help: "Packets per configuration under callgrind.")
    var callgrindPackets: Int = 20_000

    @Option(help: "Comma-separated batch sizes.")
    var batch: String = "1,8,32,64"

    @Option(help: "Comma-separated modes (receive, transmit, forward).")
    var mode: String = "receive,transmit,forward"

    @Option(help: "Where callgrind profiles are kept (for callgrind_annotate).")
    var callgrindDir: String = "/tmp/miniport-bench-callgrind"

    @Option(parsing: .unconditional, help: "Seconds per mode on --device.")
    var seconds: Double = 5

    func validate() throws {
        guard model != (device != nil) else { throw ValidationError("give exactly one of --model or --device ADDRESS") }
        if to != nil && device == nil { throw ValidationError("--to ADDRESS2 goes with --device ADDRESS") }
        guard packets > 0, repeats > 0, callgrindPackets > 0 else { throw ValidationError("--packets, --repeats and --callgrind-packets must be positive") }
        // Finite and bounded: the device bench turns it into TSC ticks (UInt64).
        guard seconds.isFinite, seconds > 0, seconds <= 86_400 else {
            throw ValidationError("bad value '\(seconds)' for --seconds: use a number of seconds above 0 and at most 86400")
        }
        _ = try settings()
        guard BenchSubjectKind(rawValue: subject) != nil else {
            throw ValidationError("no benchmark subject \(subject): use one of \(BenchSubjectKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    func settings() throws -> BenchSettings {
        var s = BenchSettings()
        s.packets = packets
        s.repeats = repeats
        s.warmupPackets = min(20_000, max(packets / 10, 1_000))
        let sizes = batch.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !sizes.isEmpty, sizes.allSatisfy({ ($0 ?? 0) > 0 && ($0 ?? 0) <= 256 }) else {
            throw ValidationError("--batch takes batch sizes 1…256 separated by commas, got \(batch)")
        }
        s.batchSizes = sizes.map { $0! }
        let modes = mode.split(separator: ",").map { BenchMode(rawValue: $0.trimmingCharacters(in: .whitespaces)) }
        guard !modes.isEmpty, modes.allSatisfy({ $0 != nil }) else {
            throw ValidationError("--mode takes receive, transmit and forward separated by commas, got \(mode)")
        }
        s.modes = modes.map { $0! }
        return s
    }

    func run() throws {
        if let device {
            let s = try settings()
            try DeviceBench.run(address: device, to: to, modes: s.modes, seconds: seconds,
                                batch: s.batchSizes.count == 4 ? 32 : s.batchSizes[0], json: json)
            return
        }
        let kind = BenchSubjectKind(rawValue: subject)!
        let settings = try settings()
        let progress: (String) -> Void = { line in
            FileHandle.standardError.write(Data("bench: \(line)\n".utf8))
        }
        let subjectUnderTest: any BenchSubject = breakGate ? AllocatingSubject(kind.make()) : kind.make()
        var report = try BenchSuite.run(subjectUnderTest, settings: settings, progress: progress)
        if instructions {
            progress("callgrind run (slow; profiles in \(callgrindDir))")
            let profiler = URL(fileURLWithPath: Self.executablePath()).deletingLastPathComponent()
                .appendingPathComponent("miniport-bench-profile").path
            let counts = try CallgrindRun(directory: callgrindDir).run(
                executable: profiler, arguments: [subject, String(callgrindPackets), batch, mode])
            BenchSuite.merge(instructions: counts, into: &report)
        }
        print(json ? report.json() : report.table())
        // The gate: an allocation or a retain per packet at batch >= 8 fails the run.
        let violations = report.gateViolations(minimumBatch: 8)
        if !violations.isEmpty {
            for v in violations { FileHandle.standardError.write(Data("bench: gate failed: \(v)\n".utf8)) }
            throw ExitCode(1)
        }
    }

    static func executablePath() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
}

/// `--break-gate`: the subject's workload plus one malloc per packet, so the gate can be seen failing.
final class AllocatingSubject: BenchSubject {
    let base: any BenchSubject
    init(_ base: any BenchSubject) { self.base = base }
    var name: String { base.name }
    var summary: String { base.summary + " (+1 malloc per packet: --break-gate)" }
    var hasDevice: Bool { base.hasDevice }
    func makeWorkload(mode: BenchMode, batch: Int, part: BenchPart) throws(BenchError) -> any BenchWorkload {
        let w = try base.makeWorkload(mode: mode, batch: batch, part: part)
        return part == .deviceOnly ? w : AllocatingWorkload(w)
    }
}

final class AllocatingWorkload: BenchWorkload {
    let base: any BenchWorkload
    init(_ base: any BenchWorkload) { self.base = base }
    func runBatch() -> Int {
        let n = base.runBatch()
        for _ in 0..<n {
            let p = malloc(64)
            allocationSink = p   // escapes: the allocation cannot be optimised away
            free(p)
        }
        return n
    }
    func finish() throws(BenchError) { try base.finish() }
}

nonisolated(unsafe) var allocationSink: UnsafeMutableRawPointer?
