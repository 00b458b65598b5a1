// The libFuzzer driver (Docs/TESTBED.md, "Fuzzing"). Built only with MINIPORT_FUZZ=1 and
// -sanitize=fuzzer, which links libFuzzer (LLVMFuzzerRunDriver):
//   MINIPORT_FUZZ=1 swift build --product miniport-fuzz -Xswiftc -sanitize=fuzzer,address --scratch-path .build-fuzz
// Run one target: .build-fuzz/debug/miniport-fuzz --target=NAME [libFuzzer flags] [corpus dirs or files]
// (or MINIPORT_FUZZ_TARGET=NAME); NAME is one of FuzzTarget's cases. libFuzzer ignores flags that
// start with "--", so --target stays ours.
import FuzzTargets
#if canImport(Glibc)
import Glibc
#endif

typealias TestOneInput = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt

@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
               _ callback: TestOneInput) -> CInt

/// Unbuffered to stderr (libFuzzer's own output goes there too).
func printError(_ text: String) {
    var s = text + "\n"
    s.withUTF8 { b in _ = write(2, b.baseAddress, b.count) }
}

enum Selected {
    nonisolated(unsafe) static var target = FuzzTarget.parsers
}

var name = getenv("MINIPORT_FUZZ_TARGET").map { String(cString: $0) }
for a in CommandLine.arguments where a.hasPrefix("--target=") { name = String(a.dropFirst("--target=".count)) }
guard let name, let target = FuzzTarget(rawValue: name) else {
    printError("miniport-fuzz: name a target with --target=NAME (one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")))")
    exit(64)
}
Selected.target = target

/// One input. libFuzzer's archive also brings a main that calls this by name (SwiftPM's main wins
/// the link, so that one never runs; the symbol must exist all the same).
@_cdecl("LLVMFuzzerTestOneInput")
func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    let findings = Selected.target.run(bytes)
    if !findings.isEmpty {
        printError("miniport-fuzz \(Selected.target.rawValue): FINDING\n" + findings.map { "  " + $0 }.joined(separator: "\n"))
        abort()   // libFuzzer saves the input (artifact_prefix + crash-<sha1>)
    }
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(runDriver(&argc, &argv) { testOneInput($0, $1) })
