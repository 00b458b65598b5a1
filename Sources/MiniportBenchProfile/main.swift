// The process `miniport bench --instructions` runs under valgrind --tool=callgrind: one profiled
// loop per configuration, each dumped under its label. Plain top-level code (no async main and no
// dispatch threads, which valgrind 3.19 cannot start in this toolchain's libdispatch).
//
//     miniport-bench-profile SUBJECT PACKETS BATCHES MODES
//     miniport-bench-profile ndis 20000 1,8,32,64 receive,transmit,forward
import Glibc
import MiniportBench

let arguments = CommandLine.arguments
func fail(_ message: String) -> Never {
    let line = "miniport-bench-profile: \(message)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
    exit(2)
}
guard arguments.count == 5 else { fail("usage: miniport-bench-profile SUBJECT PACKETS BATCHES MODES") }
guard let kind = BenchSubjectKind(rawValue: arguments[1]) else { fail(BenchError.unknownSubject(arguments[1]).description) }
guard let packets = Int(arguments[2]), packets > 0 else { fail("PACKETS must be a positive number, got \(arguments[2])") }
var settings = BenchSettings()
settings.packets = packets
settings.batchSizes = arguments[3].split(separator: ",").compactMap { Int($0) }
settings.modes = arguments[4].split(separator: ",").compactMap { BenchMode(rawValue: String($0)) }
guard !settings.batchSizes.isEmpty, !settings.modes.isEmpty else { fail("BATCHES and MODES must list at least one each") }
do {
    try BenchSuite.profileUnderCallgrind(kind.make(), settings: settings)
} catch {
    fail(error.description)
}
