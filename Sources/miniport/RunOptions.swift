import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import MiniportRegistry
import NDIS
import Protocols

/// Options every long-running command takes (capture, forward, respond, pktgen, demo): the
/// progress line on stderr. Add further options of all long-running commands here.
struct RunOptions: ParsableArguments {
    @Flag(help: "No progress line on stderr.")
    var quiet = false

    @Option(name: .customLong("progress-interval"), parsing: .unconditional, help: ArgumentHelp(
        "Seconds between full progress lines when stderr is not a terminal (on a terminal the line is rewritten in place).",
        valueName: "seconds"))
    var progressInterval: Double = 10

    // --metrics (LongRunningOptions.swift: startMetrics, CommandMetrics).
    @Option(name: .customLong("metrics"), help: ArgumentHelp(
        "Serve Prometheus metrics (GET /metrics) on PORT (127.0.0.1), HOST:PORT or [IPv6]:PORT while the command runs; port 0 picks a free one.",
        valueName: "host:port"))
    var metrics: String?

    @Option(name: .customLong("metrics-linger"), parsing: .unconditional, help: ArgumentHelp(
        "After the final figures, keep answering /metrics with them for up to S seconds (Ctrl-C ends it early).",
        valueName: "seconds"))
    var metricsLinger: Double = 0

    /// The progress line these options ask for.
    func progress(_ command: String, unit: String) throws(CLIError) -> ProgressLine {
        let interval = try parseSeconds(progressInterval, option: "--progress-interval", minimum: 0.05)!
        return ProgressLine(command: command, unit: unit, enabled: !quiet, terminal: isatty(2) != 0, interval: interval)
    }
}

/// The progress line of a long-running command: on a terminal one line rewritten in place about
/// four times a second; redirected, a full line every `interval`; with `--quiet`, nothing.
/// The text is built only when a line is due, never per frame.
final class ProgressLine {
    let command: String
    let unit: String
    let enabled: Bool
    let terminal: Bool
    let interval: UInt64
    private var lastPrinted: UInt64
    private var lastTotal: UInt64 = 0
    private var printedOnTerminal = false

    init(command: String, unit: String, enabled: Bool, terminal: Bool, interval: UInt64) {
        self.command = command
        self.unit = unit
        self.enabled = enabled
        self.terminal = terminal
        self.interval = interval
        lastPrinted = Clock.monotonicNanoseconds()
    }

    /// Prints a line if one is due. `total` is the command's main count (frames captured,
    /// forwarded, sent, replies); `details` the rest of the line (drops, per queue figures).
    func update(total: @autoclosure () -> UInt64, details: () -> String) {
        guard enabled else { return }
        let now = Clock.monotonicNanoseconds()
        let every = terminal ? min(interval, 250_000_000) : interval
        guard now &- lastPrinted >= every else { return }
        let t = total()
        let rate = Double(t &- lastTotal) / (Double(now &- lastPrinted) / 1e9)
        lastPrinted = now
        lastTotal = t
        let line = "\(command): \(t) \(unit) (\(ProgressLine.compact(rate))/s), \(details())"
        if terminal {
            // Carriage return, the line, erase to the end of the line (ECMA-48 EL).
            printError("\r" + line + "\u{1B}[K", terminator: "")
            printedOnTerminal = true
        } else {
            printError(line)
        }
    }

    /// Ends the rewritten line on a terminal so the final figures start on a line of their own.
    func finish() {
        if printedOnTerminal { printError("") }
        printedOnTerminal = false
    }

    /// 950, 12.3K, 1.45M: a rate for people.
    static func compact(_ v: Double) -> String {
        guard v.isFinite, v >= 0 else { return "0" }
        if v < 10_000 { return String(Int(v.rounded())) }
        if v < 10_000_000 { return String(format2: v / 1000) + "K" }
        return String(format2: v / 1_000_000) + "M"
    }
}

/// The longest `--seconds` taken: about 31 years (10^9 s), far inside UInt64 nanoseconds.
let maximumSeconds: Double = 1_000_000_000

/// Parses a duration option: finite, above `minimum` (default: above 0), at most 10^9 s.
/// - Returns: nanoseconds (at least 1), or nil when the option was not given.
func parseSeconds(_ value: Double?, option: String = "--seconds", minimum: Double = 0) throws(CLIError) -> UInt64? {
    guard let value else { return nil }
    guard value.isFinite, value > 0, value >= minimum, value <= maximumSeconds else {
        let range = minimum > 0 ? "a number of seconds from \(minimum) to 1000000000" : "a number of seconds above 0 and at most 1000000000 (about 31 years)"
        throw .input(.badNumber(option: option, value: String(value), range: range))
    }
    return max(1, UInt64((value * 1e9).rounded(.up)))
}

/// A point in time `nanoseconds` from now on the monotonic clock (nil: never).
func deadline(after nanoseconds: UInt64?) -> UInt64? {
    nanoseconds.map { ns in
        let (sum, overflow) = Clock.monotonicNanoseconds().addingReportingOverflow(ns)
        return overflow ? UInt64.max : sum
    }
}

/// PCI addresses of the command line, checked before anything is opened.
func checkAddresses(_ texts: String?...) throws(CLIError) {
    for case let t? in texts {
        do { _ = try PCIAddressText.normalize(t) } catch { throw CLIError(error) }
    }
}
