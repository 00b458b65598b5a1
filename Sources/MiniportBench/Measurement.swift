import CBenchSupport
import Glibc

/// Process-wide allocation and reference-counting counts (see Sources/CBenchSupport).
///
/// Allocations are counted by a malloc interposer linked into this process; retains and releases by
/// the Swift runtime's instrumentation hooks once ``installRetainHooks()`` ran. Reading is free of
/// allocation and retains, so it can bracket a measured loop.
public struct Counts: Sendable, Equatable {
    public var mallocs: UInt64 = 0
    public var frees: UInt64 = 0
    public var reallocs: UInt64 = 0
    public var retains: UInt64 = 0
    public var releases: UInt64 = 0
    public var objectAllocations: UInt64 = 0

    public init() {}

    /// The counts now.
    @inline(__always)
    public static func now() -> Counts {
        var raw = miniport_bench_counts()
        miniport_bench_read_counts(&raw)
        var c = Counts()
        c.mallocs = raw.mallocs
        c.frees = raw.frees
        c.reallocs = raw.reallocs
        c.retains = raw.retains
        c.releases = raw.releases
        c.objectAllocations = raw.objectAllocs
        return c
    }

    /// What happened between `earlier` and `self`.
    public func since(_ earlier: Counts) -> Counts {
        var d = Counts()
        d.mallocs = mallocs &- earlier.mallocs
        d.frees = frees &- earlier.frees
        d.reallocs = reallocs &- earlier.reallocs
        d.retains = retains &- earlier.retains
        d.releases = releases &- earlier.releases
        d.objectAllocations = objectAllocations &- earlier.objectAllocations
        return d
    }

    /// True when the malloc interposer is linked in and active.
    public static var mallocsAreCounted: Bool { miniport_bench_malloc_interposed() != 0 }

    /// Turns on retain/release counting (the runtime's instrumentation entry points).
    /// - Throws: ``BenchError/noRetainHooks`` when the Swift runtime has no such hooks.
    public static func installRetainHooks() throws(BenchError) {
        guard miniport_bench_install_retain_hooks() != 0 else { throw .noRetainHooks }
        miniport_bench_retain_counting(0)
    }

    public static var retainsAreCounted: Bool { miniport_bench_retain_hooks_installed() != 0 }

    /// Counts retains only while `body` runs: the hooks slow every retain and release down, so
    /// timed runs go without them.
    public static func countingRetains<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        miniport_bench_retain_counting(1)
        defer { miniport_bench_retain_counting(0) }
        return try body()
    }
}

/// The time-stamp counter and its frequency.
public enum TSC {
    /// Reads the counter (serialised against earlier instructions).
    @inline(__always)
    public static func read() -> UInt64 { miniport_bench_rdtsc() }

    /// Whether ``read()`` is a cycle counter rather than a nanosecond clock.
    public static var isCycleCounter: Bool { miniport_bench_has_cycle_counter() != 0 }

    /// Counter ticks per second, measured against CLOCK_MONOTONIC over `milliseconds`.
    /// On machines with an invariant TSC (constant_tsc, nonstop_tsc) this is the nominal frequency.
    public static func measureFrequency(milliseconds: Int = 100) -> Double {
        guard isCycleCounter else { return 1e9 }
        func ns() -> UInt64 {
            var ts = timespec()
            clock_gettime(CLOCK_MONOTONIC, &ts)
            return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
        }
        var best = 0.0
        // Three short windows; the median resists a preemption in one of them.
        var samples: [Double] = []
        for _ in 0..<3 {
            let n0 = ns(), t0 = read()
            var pause = timespec(tv_sec: 0, tv_nsec: Int(milliseconds) * 1_000_000 / 3)
            nanosleep(&pause, nil)
            let n1 = ns(), t1 = read()
            samples.append(Double(t1 &- t0) / (Double(n1 &- n0) / 1e9))
        }
        samples.sort()
        best = samples[1]
        return best
    }
}

/// Callgrind client requests; they do nothing outside valgrind.
public enum Callgrind {
    public static var isRunning: Bool { miniport_bench_running_on_valgrind() != 0 }
    public static func zeroStats() { miniport_bench_callgrind_zero_stats() }
    public static func toggleCollect() { miniport_bench_callgrind_toggle_collect() }
    /// Writes a profile dump named `name` and zeroes the counters.
    public static func dump(_ name: String) { miniport_bench_callgrind_dump(name) }
}

/// Errors of the benchmark harness; each says what to do.
public enum BenchError: Error, CustomStringConvertible, Equatable {
    case noRetainHooks
    case setup(String)
    case stalled(String)
    case valgrind(String)
    case unknownSubject(String)

    public var description: String {
        switch self {
        case .noRetainHooks:
            "the Swift runtime has no retain/release instrumentation hooks (_swift_retain): retains cannot be counted with this toolchain"
        case let .setup(m): "benchmark setup failed: \(m)"
        case let .stalled(label):
            "\(label): no packet completed in 1000 batches in a row: the device or miniport stopped completing descriptors (run the subject's tests)"
        case let .valgrind(m): "callgrind run failed: \(m) (install valgrind: apt-get install valgrind)"
        case let .unknownSubject(s): "no benchmark subject named \(s): use one of \(BenchSubjectKind.allCases.map(\.rawValue).joined(separator: ", "))"
        }
    }
}
