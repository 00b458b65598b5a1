import Foundation

/// Runs a benchmark child under `valgrind --tool=callgrind` and reads back its dumps.
///
/// Callgrind counts executed instructions (Ir) exactly, so the figures repeat to the instruction on
/// a noisy shared machine where cycles drift by tens of percent. The child collects only inside the
/// timed loops (`--collect-atstart=no` + client requests) and dumps one profile per configuration.
public struct CallgrindRun {
    /// Directory the dumps are written to (kept, for `callgrind_annotate`).
    public let directory: String

    public init(directory: String) { self.directory = directory }

    /// Runs `executable arguments…` under callgrind and returns label → instructions per packet.
    /// - Throws: ``BenchError/valgrind(_:)`` when valgrind is missing or the child fails.
    public func run(executable: String, arguments: [String]) throws(BenchError) -> [String: Double] {
        guard let valgrind = Self.findTool("valgrind") else { throw .valgrind("valgrind not found in PATH") }
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw .valgrind("\(executable) is missing: build it with `swift build -c release --product miniport-bench-profile`")
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            for old in try FileManager.default.contentsOfDirectory(atPath: directory) where old.hasPrefix("callgrind.out") {
                try FileManager.default.removeItem(atPath: directory + "/" + old)
            }
        } catch { throw .valgrind("cannot prepare \(directory): \(error)") }
        // Valgrind 3.19 cannot read the DWARF 5 this toolchain writes: profile a copy without it
        // (function names still come from the symbol table).
        var target = executable
        if let objcopy = Self.findTool("objcopy") {
            let copy = directory + "/miniport-bench-profile"
            let strip = Process()
            strip.executableURL = URL(fileURLWithPath: objcopy)
            strip.arguments = ["--strip-debug", executable, copy]
            if (try? strip.run()) != nil {
                strip.waitUntilExit()
                if strip.terminationStatus == 0 { target = copy }
            }
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: valgrind)
        process.arguments = ["--tool=callgrind", "--collect-atstart=no", "--dump-instr=no", "--compress-strings=no",
                             "--callgrind-out-file=\(directory)/callgrind.out", target] + arguments
        let log = directory + "/valgrind.log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: log)
        process.standardOutput = FileHandle.nullDevice
        do { try process.run() } catch { throw .valgrind("cannot start \(valgrind): \(error)") }
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw .valgrind("the child exited with status \(process.terminationStatus); see \(log)")
        }
        return try parseDumps()
    }

    /// Reads every dump in the directory: label → Ir per packet.
    public func parseDumps() throws(BenchError) -> [String: Double] {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix("callgrind.out") } }
        catch { throw .valgrind("cannot list \(directory): \(error)") }
        var result: [String: Double] = [:]
        for name in names {
            guard let text = try? String(contentsOfFile: directory + "/" + name, encoding: .utf8),
                  let parsed = Self.parse(dump: text) else { continue }
            result[parsed.label] = parsed.instructions / Double(max(1, parsed.packets))
            if parsed.modelInstructions > 0 {
                result[parsed.label + Self.modelSuffix] = parsed.modelInstructions / Double(max(1, parsed.packets))
            }
        }
        guard !result.isEmpty else { throw .valgrind("no callgrind dumps with a benchmark label in \(directory)") }
        return result
    }

    /// Key suffix of the instructions spent inside the hardware model (see `parse`).
    public static let modelSuffix = "#model"
    /// Mangled-name prefix of every function of the IGBModel module.
    static let modelModulePrefix = "$s8IGBModel"

    /// Parses one dump: its trigger label `mode/batch/part packets=N`, its total Ir, and the
    /// inclusive Ir of calls from outside the IGBModel module into it (the device's own work in a
    /// full run, measured exactly rather than by a replay).
    static func parse(dump text: String) -> (label: String, packets: Int, instructions: Double, modelInstructions: Double)? {
        var label: String?
        var packets = 0
        var total: Double?
        var model = 0.0
        var callerInModel = false
        var calleeInModel = false
        var callCostNext = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("fn=") {
                callerInModel = line.dropFirst(3).hasPrefix(modelModulePrefix)
                callCostNext = false
                continue
            }
            if line.hasPrefix("cfn=") {
                calleeInModel = line.dropFirst(4).hasPrefix(modelModulePrefix)
                continue
            }
            if line.hasPrefix("calls=") {
                callCostNext = true
                continue
            }
            if callCostNext {
                // The line after calls= is the call's inclusive cost: "position Ir".
                callCostNext = false
                if calleeInModel && !callerInModel, let ir = line.split(separator: " ").last.flatMap({ Double($0) }) {
                    model += ir
                }
                continue
            }
            if line.hasPrefix("desc: Trigger: Client Request: ") {
                let request = line.dropFirst("desc: Trigger: Client Request: ".count)
                let parts = request.split(separator: " ")
                guard parts.count == 2, parts[1].hasPrefix("packets="), let n = Int(parts[1].dropFirst("packets=".count)) else { return nil }
                label = String(parts[0])
                packets = n
            } else if line.hasPrefix("totals: ") || (total == nil && line.hasPrefix("summary: ")) {
                let value = line.split(separator: " ").dropFirst().first.flatMap { Double($0) }
                if let value { total = value }
            }
        }
        guard let label, let total, packets > 0 else { return nil }
        return (label, packets, total, model)
    }

    static func findTool(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}
