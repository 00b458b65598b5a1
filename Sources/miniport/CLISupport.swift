import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import Logging
import NDIS
import Protocols
import Synchronization

/// Errors of the commands: one line each, naming the thing and the fix.
enum CLIError: Error, CustomStringConvertible {
    case input(InputError)
    case badAddress(String)
    case unknownDevice(String)
    case busy(String, String)
    case noMiniport(String)
    case adapter(String, NDISError)
    case capture(CaptureFileError)
    case failed(String)

    var description: String {
        switch self {
        case let .input(e): e.description
        case let .badAddress(a): "bad PCI address '\(a)': write it as dddd:bb:dd.f (for example 0000:03:00.0); see miniport list"
        case let .unknownDevice(a): "no PCI device at \(a): see miniport list for the NICs present"
        case let .busy(a, why): "device \(a) is busy: \(why); stop the other miniport process first"
        case let .noMiniport(message): message
        case let .adapter(what, e): "\(what): \(e)"
        case let .capture(e): e.description
        case let .failed(m): m
        }
    }

    /// Bad input exits 64 (EX_USAGE), an unavailable device 69 (EX_UNAVAILABLE), anything else 1.
    var exitCode: Int32 {
        switch self {
        case .input, .badAddress: 64
        case .unknownDevice, .busy, .noMiniport: 69
        default: 1
        }
    }
}

/// Options every command that touches a NIC takes.
struct CommonOptions: ParsableArguments {
    @Flag(help: "Run on the in-process hardware model instead of a device (no setup, no root).")
    var model = false

    @Option(help: ArgumentHelp("With --model (and demo): which model NIC, each driven by its family's miniport: igb (82576) or virtio-net.",
                               valueName: "family"))
    var nic: String = "igb"

    @Option(help: ArgumentHelp(
        "With --model: connect the model's wire to this Linux TAP (an existing persistent TAP of that name, or a new one), so the kernel's network stack is the peer.",
        valueName: "ifname"))
    var tap: String?

    @Flag(help: "Print the figures as one line of JSON on stdout.")
    var json = false

    @Flag(help: "Log driver and framework steps to stderr.")
    var verbose = false
}

/// `--ready FILE`, for scripts that send traffic: the file appears once the NIC takes it.
struct ReadyOption: ParsableArguments {
    @Option(name: .customLong("ready"), help: ArgumentHelp(
        "Create this file (holding the process id) once the NIC takes traffic: link up, queues and filters set.",
        valueName: "file"))
    var path: String?

    /// Creates the file, if one was asked for.
    func signal() throws(CLIError) {
        guard let path else { return }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw .failed("cannot create the ready file \(path): \(String(cString: strerror(errno))); give --ready a writable path")
        }
        let pid = "\(getpid())\n"
        _ = pid.withCString { Glibc.write(fd, $0, strlen($0)) }
        Glibc.close(fd)
    }
}

enum Log {
    nonisolated(unsafe) static var bootstrapped = false
    /// Quiet by default (warnings and errors); --verbose shows every step.
    static func setUp(verbose: Bool) -> Logger {
        if !bootstrapped {
            bootstrapped = true
            LoggingSystem.bootstrap { label in
                var h = StreamLogHandler.standardError(label: label)
                h.logLevel = verbose ? .debug : .warning
                return h
            }
        }
        return Logger(label: "miniport")
    }
}

/// Ctrl-C and SIGTERM ask the run loops to stop; they then free queues, halt and print statistics.
enum Stop {
    static let requested = Atomic<Bool>(false)
    static var isRequested: Bool { requested.load(ordering: .relaxed) }

    static func installHandlers() {
        let handler: @convention(c) (Int32) -> Void = { _ in Stop.requested.store(true, ordering: .relaxed) }
        // Without SA_RESTART: a write blocked on a pipe or FIFO whose reader stalls returns EINTR,
        // so the signal is seen (signal(3) would restart the call and the stop would wait forever).
        var action = sigaction()
        action.__sigaction_handler.sa_handler = handler
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        sigaction(SIGINT, &action, nil)
        sigaction(SIGTERM, &action, nil)
        // A parent may have started us with these blocked (test runners do): unblock them.
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }
}

/// Writes to stderr without buffering (progress lines, errors).
func printError(_ text: String, terminator: String = "\n") {
    var s = text + terminator
    s.withUTF8 { b in _ = Glibc.write(2, b.baseAddress, b.count) }
}

/// Sleeps for `nanoseconds` (interrupted early by a signal, which the loops then see).
func sleep(nanoseconds: UInt64) {
    var ts = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    nanosleep(&ts, nil)
}

/// Ignores SIGPIPE for the whole process: a reader that quits (`| head`, `| tshark -c N`) shows up
/// as EPIPE on the write, which the commands handle (the counts are printed, the exit is clean).
/// SIGXFSZ too: a file size limit (`ulimit -f`) is then EFBIG, handled as a full disk.
func ignoreWriteSignals() {
    signal(SIGPIPE, SIG_IGN)
    signal(SIGXFSZ, SIG_IGN)
}

/// Parses a count option: positive.
func parseCount(_ value: Int?, option: String) throws(CLIError) -> Int? {
    guard let value else { return nil }
    guard value > 0 else { throw .input(.badNumber(option: option, value: String(value), range: "a number of 1 or more")) }
    return value
}
