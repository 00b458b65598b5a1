import Foundation

extension BenchReport {
    /// `{"forward": {"32": {"packetsPerSecond": …, "cyclesPerPacket": …, "mallocsPerPacket": …,
    /// "retainsPerPacket": …, "instructionsPerPacket": …}}, "receive": {…}, "transmit": {…}}`:
    /// modes and batch sizes in order, one object each. Extra keys (`totalCyclesPerPacket`,
    /// `device…`) follow the five of issue 9; `instructionsPerPacket` only where measured.
    public func json() -> String {
        var out = "{"
        let modes = results.keys.sorted()
        for (i, mode) in modes.enumerated() {
            out += (i == 0 ? "\n" : ",\n") + "  \"\(mode.rawValue)\": {"
            let perBatch = results[mode] ?? [:]
            for (j, batch) in perBatch.keys.sorted().enumerated() {
                let f = perBatch[batch]!
                var fields: [(String, Double)] = [
                    ("packetsPerSecond", f.packetsPerSecond.rounded()),
                    ("cyclesPerPacket", f.cyclesPerPacket),
                    ("mallocsPerPacket", f.mallocsPerPacket),
                    ("retainsPerPacket", f.retainsPerPacket),
                ]
                if let ir = f.instructionsPerPacket { fields.append(("instructionsPerPacket", ir)) }
                fields.append(("totalCyclesPerPacket", f.totalCyclesPerPacket))
                if let d = f.deviceCyclesPerPacket { fields.append(("deviceCyclesPerPacket", d)) }
                if let d = f.deviceInstructionsPerPacket { fields.append(("deviceInstructionsPerPacket", d)) }
                if let r = f.replayInstructionsPerPacket { fields.append(("replayInstructionsPerPacket", r)) }
                let body = fields.map { "\"\($0.0)\": \(Self.number($0.1))" }.joined(separator: ", ")
                out += (j == 0 ? "\n" : ",\n") + "    \"\(batch)\": {\(body)}"
            }
            out += "\n  }"
        }
        return out + "\n}"
    }

    static func number(_ v: Double) -> String {
        guard v.isFinite else { return "null" }
        if v == v.rounded() && abs(v) < 1e15 { return String(Int64(v)) }
        return String(format: "%.3f", v)
    }

    /// A table: one row per mode and batch size, then the machine and method.
    public func table() -> String {
        var rows: [[String]] = [["MODE", "BATCH", "MPPS", "CYCLES/PKT", "TOTAL", "DEVICE", "INSTR/PKT", "DEV INSTR", "REPLAY INSTR", "MALLOCS/PKT", "RETAINS/PKT", "SPREAD"]]
        for mode in results.keys.sorted() {
            let perBatch = results[mode] ?? [:]
            for batch in perBatch.keys.sorted() {
                let f = perBatch[batch]!
                rows.append([
                    mode.rawValue, String(batch),
                    String(format: "%.2f", f.packetsPerSecond / 1e6),
                    String(format: "%.1f", f.cyclesPerPacket),
                    String(format: "%.1f", f.totalCyclesPerPacket),
                    f.deviceCyclesPerPacket.map { String(format: "%.1f", $0) } ?? "-",
                    f.instructionsPerPacket.map { String(format: "%.1f", $0) } ?? "-",
                    f.deviceInstructionsPerPacket.map { String(format: "%.1f", $0) } ?? "-",
                    f.replayInstructionsPerPacket.map { String(format: "%.1f", $0) } ?? "-",
                    mallocsCounted ? String(format: "%.2f", f.mallocsPerPacket) : "n/a",
                    retainsCounted ? String(format: "%.2f", f.retainsPerPacket) : "n/a",
                    String(format: "%.0f%%", f.cycleSpread * 100),
                ])
            }
        }
        let widths = rows[0].indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
        var lines = rows.map { row in
            row.enumerated().map { c, cell in
                c < 2 ? cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                      : String(repeating: " ", count: widths[c] - cell.count) + cell
            }.joined(separator: "  ")
        }
        lines.append("")
        lines.append("subject: \(subject) — \(summary)")
        lines.append(String(format: "TSC %.0f MHz; %d packets × %d timed runs per row (median); CYCLES/PKT = TOTAL − DEVICE = the driver's share; MPPS = TSC / TOTAL",
                            tscHz / 1e6, settings.packets, settings.repeats))
        lines.append("instructions: " + (instructionSource.map { "\($0) (Ir per packet; with a model: INSTR/PKT = full run − Ir inside the model (callgrind inclusive cost = DEV INSTR), REPLAY INSTR = full − device-only replay; otherwise full − device-only run)" } ?? "not measured (add --instructions: runs under valgrind --tool=callgrind)"))
        if !mallocsCounted { lines.append("mallocs: not counted (the malloc interposer is not active in this process)") }
        if !retainsCounted { lines.append("retains: not counted (the Swift runtime offers no retain hooks)") }
        return lines.joined(separator: "\n")
    }
}

extension BenchReport {
    /// The allocation gate (issue 13): every configuration at batch ≥ `minimumBatch` must show
    /// 0 mallocs and 0 retains per packet. Returns one line per violation (empty: the gate holds).
    public func gateViolations(minimumBatch: Int = 8) -> [String] {
        var lines: [String] = []
        if !mallocsCounted { lines.append("mallocs were not counted (the malloc interposer is not active): the gate cannot pass") }
        if !retainsCounted { lines.append("retains were not counted (no retain hooks): the gate cannot pass") }
        for mode in results.keys.sorted() {
            for (batch, f) in (results[mode] ?? [:]).sorted(by: { $0.key < $1.key }) where batch >= minimumBatch {
                if f.mallocsPerPacket > 0 { lines.append("\(mode.rawValue) at batch \(batch): \(Self.number(f.mallocsPerPacket)) mallocs per packet (must be 0)") }
                if f.retainsPerPacket > 0 { lines.append("\(mode.rawValue) at batch \(batch): \(Self.number(f.retainsPerPacket)) retains per packet (must be 0)") }
            }
        }
        return lines
    }
}
