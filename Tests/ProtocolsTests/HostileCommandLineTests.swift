import Foundation
import Testing
@testable import Protocols

/// The `miniport` executable under hostile conditions: numbers out of range, a full disk, a FIFO
/// nobody reads, a reader that quits, signals; and the live pcapng stream and progress lines.
@Suite(.serialized) struct HostileCommandLineTests {
    static var binary: String? { CommandLineTests.binary }

    func binary() throws -> String {
        try #require(Self.binary, "the miniport executable is not next to the tests: run swift build first")
    }

    /// Expects a failure with exactly one line on stderr containing `text`, and no crash.
    func expectOneLineError(_ args: [String], containing text: String, environment: [String: String] = [:],
                            sourceLocation: SourceLocation = #_sourceLocation) throws {
        let r = try runBounded(try binary(), args, seconds: 30, environment: environment)
        #expect(r.status != 0, "\(args) should fail", sourceLocation: sourceLocation)
        #expect(r.status < 128, "\(args) died of a signal (\(r.status))", sourceLocation: sourceLocation)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(args): stderr should be one line, got: \(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.contains(text), "\(args): stderr: \(r.stderr)", sourceLocation: sourceLocation)
        #expect(!r.stderr.contains("Fatal error") && !r.stderr.contains("backtrace"), sourceLocation: sourceLocation)
        #expect(r.stdout.isEmpty, sourceLocation: sourceLocation)
    }

    /// Runs a program, killed (and the test failed) if it has not ended after `seconds`.
    func runBounded(_ executable: String, _ args: [String], seconds: Double = 60, environment: [String: String] = [:],
                    sourceLocation: SourceLocation = #_sourceLocation) throws -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = args
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let pid = p.processIdentifier
        let killer = DispatchWorkItem {
            Issue.record("\(args) did not end within \(seconds) s", sourceLocation: sourceLocation)
            kill(pid, SIGKILL)
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + seconds, execute: killer)
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        killer.cancel()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    /// Starts the binary with pipes for stdout and stderr.
    func start(_ args: [String], stdout: Pipe = Pipe()) throws -> (Process, Pipe, Pipe) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try binary())
        p.arguments = args
        let err = Pipe()
        p.standardOutput = stdout
        p.standardError = err
        try p.run()
        return (p, stdout, err)
    }

    /// Waits up to `seconds` for `p` to end; kills it (and fails) if it does not.
    func waitForExit(_ p: Process, seconds: Double, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while p.isRunning && Date() < end { Thread.sleep(forTimeInterval: 0.02) }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            Issue.record("\(what) did not end within \(seconds) s", sourceLocation: sourceLocation)
            return false
        }
        p.waitUntilExit()
        return true
    }

    // MARK: Numbers

    @Test func durationsThatAreInfiniteHugeNaNNegativeOrZeroAreOneLineForEveryCommand() throws {
        let commands: [[String]] = [
            ["capture", "--model", "--write", temporaryPath("s.pcapng")],
            ["forward", "--model"],
            ["respond", "--model", "--ip", "192.0.2.1"],
        ]
        for c in commands {
            for v in ["inf", "1e300", "nan", "-1", "0", "-inf", "2e9"] {
                try expectOneLineError(c + ["--seconds", v], containing: "for --seconds: use a number of seconds above 0")
            }
        }
        for c in commands + [["pktgen", "--model", "--rate", "1", "--size", "60", "--count", "1"], ["demo"]] {
            for v in ["nan", "0", "-2", "inf"] {
                try expectOneLineError(c + ["--progress-interval", v], containing: "for --progress-interval")
            }
            for v in ["inf", "1e300", "nan", "-1"] {
                try expectOneLineError(c + ["--metrics", "127.0.0.1:0", "--metrics-linger", v], containing: "for --metrics-linger")
            }
        }
    }

    @Test func countsRatesAndSizesOutOfRangeAreOneLineForEveryCommand() throws {
        let huge = "99999999999999999999999"
        for (args, option) in [(["capture", "--model", "--write", temporaryPath("c.pcapng")], "--count"),
                               (["forward", "--model"], "--count"), (["respond", "--model", "--ip", "192.0.2.1"], "--count")] {
            for v in ["-1", "0", huge, "1.5"] {
                try expectOneLineError(args + [option, v], containing: option)
            }
        }
        let pktgen = ["pktgen", "--model"]
        for (rest, option) in [(["--size", "60", "--count", "1", "--rate"], "--rate"), (["--rate", "1", "--count", "1", "--size"], "--size"),
                               (["--rate", "1", "--size", "60", "--count"], "--count")] {
            for v in ["-1", huge] {
                try expectOneLineError(pktgen + rest + [v], containing: option)
            }
        }
        try expectOneLineError(pktgen + ["--size", "60", "--count", "1", "--rate", "100000001"], containing: "--rate")
        for v in ["inf", "1e300", "nan", "-1", "0"] {
            try expectOneLineError(["bench", "--device", "0000:7f:1f.7", "--seconds", v], containing: "for --seconds")
        }
        try expectOneLineError(["demo", "--frames", "-3"], containing: "--frames")
        try expectOneLineError(["demo", "--frames", huge], containing: "--frames")
    }

    @Test func aNegativeVLANNamesTheVLANAndTheRange() throws {
        try expectOneLineError(["capture", "--model", "--vlan", "-1", "--write", temporaryPath("v.pcapng")], containing: "bad VLAN id '-1': use a number from 1 to 4094")
        try expectOneLineError(["capture", "--model", "--vlan", "99999", "--write", temporaryPath("v.pcapng")], containing: "bad VLAN id '99999'")
    }

    @Test func theAllZeroMACIsRefusedWithTheReason() throws {
        try expectOneLineError(["capture", "--model", "--mac", "00:00:00:00:00:00", "--write", temporaryPath("z.pcapng")],
                               containing: "bad MAC address '00:00:00:00:00:00': the all-zero address is no station's")
        try expectOneLineError(["pktgen", "--model", "--rate", "1", "--size", "60", "--count", "1", "--dst-mac", "00-00-00-00-00-00"],
                               containing: "the all-zero address")
    }

    @Test func respondRefusesAddressesThatAreNoHostsOwn() throws {
        for (ip, why) in [("0.0.0.0", "no address"), ("255.255.255.255", "broadcast"), ("224.0.0.1", "multicast"),
                          ("239.255.255.250", "multicast"), ("127.0.0.1", "loopback"), ("0.1.2.3", "this network"), ("240.0.0.1", "reserved")] {
            try expectOneLineError(["respond", "--model", "--ip", ip], containing: "cannot answer for '\(ip)'")
            try expectOneLineError(["respond", "--model", "--ip", ip], containing: why)
        }
        // The ones that are a host's still work.
        let r = try runBounded(try binary(), ["respond", "--model", "--ip", "192.0.2.10", "--count", "2", "--json", "--quiet"])
        #expect(r.status == 0, "\(r.stderr)")
    }

    @Test func forwardChecksBothAddressesBeforeOpeningEitherNIC() throws {
        // The first address names no device: had it been opened first, the error would say so.
        try expectOneLineError(["forward", "--device", "0000:7f:1f.7", "--to", "12:zz"], containing: "bad PCI address '12:zz'")
        // A model NIC held by another process: the bad second address is reported, not "busy".
        let dir = temporaryPath("fwlocks")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let fd = open("\(dir)/miniport-0000:05:00.0.lock", O_RDWR | O_CREAT, 0o644)
        defer { close(fd) }
        #expect(flock(fd, LOCK_EX | LOCK_NB) == 0)
        try expectOneLineError(["forward", "--model", "--device", "0000:05:00.0", "--to", "12:zz"], containing: "bad PCI address '12:zz'",
                               environment: ["MINIPORT_LOCK_DIR": dir])
    }

    // MARK: Binding advice

    @Test func aDiskIsRefusedByItsClassAndNothingAdvisesBindingIt() throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("PCITests/Fixtures/storage-host/sys").path
        for command in [["capture", "--write", temporaryPath("disk.pcapng")], ["info"], ["respond", "--ip", "192.0.2.1"]] {
            let r = try runBounded(try binary(), command + ["--device", "0000:01:00.0"], seconds: 30, environment: ["MINIPORT_SYSFS": fixture])
            #expect(r.status == 69, "\(command): \(r.stderr)")
            #expect(r.stderr == "miniport: error: 0000:01:00.0 is not a network controller (PCI class 0x010802, driven by nvme): miniport drives network controllers only; check the address with miniport list\n")
            #expect(!r.stderr.contains("miniport-bind"))
        }
    }

    @Test func aLockFileLeftByAnotherUserDoesNotBlockTheNextUser() throws {
        guard getuid() == 0, let setpriv = which("setpriv") else {
            print("skipped: needs root and setpriv(1) to run the binary as two other users; the VM scenario cli-users covers it")
            return
        }
        // A sticky, world-writable directory like /tmp (fs.protected_regular applies there).
        let dir = "/tmp/miniport-locks-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        #expect(mkdir(dir, 0o1777) == 0 && chmod(dir, 0o1777) == 0)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for uid in ["65534", "65533"] {
            let r = try runBounded(setpriv, ["--reuid=\(uid)", "--regid=\(uid)", "--clear-groups", "--", try binary(),
                                             "capture", "--model", "--device", "0000:05:00.0", "--count", "1", "--write", "\(dir)/\(uid).pcapng", "--quiet"],
                                   seconds: 60, environment: ["MINIPORT_LOCK_DIR": dir])
            #expect(r.status == 0, "uid \(uid): \(r.stderr)")
        }
        let owner = try FileManager.default.attributesOfItem(atPath: "\(dir)/miniport-0000:05:00.0.lock")[.ownerAccountID] as? Int
        #expect(owner == 65534, "the first user made the lock file")
    }

    // MARK: Full disk, FIFO, closed pipe, signals

    /// Checks a capture that hit a write error: one error line, nonzero exit, the JSON equal to the file.
    func expectJSONEqualsFile(_ r: (status: Int32, stdout: String, stderr: String), path: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(r.status == 1, "exit \(r.status): \(r.stderr)", sourceLocation: sourceLocation)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1 && r.stderr.contains("writing capture file \(path) failed"), "stderr: \(r.stderr)", sourceLocation: sourceLocation)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], sourceLocation: sourceLocation)
        let queues = try #require(json["queues"] as? [[String: Any]], sourceLocation: sourceLocation)
        let frames = queues.compactMap { $0["frames"] as? Int }.reduce(0, +)
        let bytes = queues.compactMap { $0["bytes"] as? Int }.reduce(0, +)
        let file = try PcapFile(path: path)
        #expect(file.packets.count == frames, "the JSON says \(frames) frames, the file holds \(file.packets.count)", sourceLocation: sourceLocation)
        #expect(file.packets.reduce(0) { $0 + $1.data.count } == bytes, sourceLocation: sourceLocation)
        #expect(frames > 0, "the frames that fitted before the error are kept", sourceLocation: sourceLocation)
        #expect((json["drops"] as? Int ?? 0) > 0, "the frames that did not fit are drops", sourceLocation: sourceLocation)
        // The file ends on a whole record.
        let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? -1
        let expected = 28 + 4 + 8 + 4 + 4 // section header block: 28 + shb_userappl "miniport" (4 + 8) + end (4) + length (4)
        #expect(size > expected, sourceLocation: sourceLocation)
        for i in 0..<queues.count { #expect(file.packets.filter { $0.interface == i }.count == queues[i]["frames"] as? Int, sourceLocation: sourceLocation) }
    }

    @Test func aFileSizeLimitStopsTheCaptureAtTheFirstWriteErrorWithTheJSONEqualToTheFile() throws {
        let path = temporaryPath("limited.pcapng")
        try? FileManager.default.removeItem(atPath: path)
        // ulimit -f: writes past the limit fail with EFBIG (SIGXFSZ is ignored), as on a full disk.
        let r = try runBounded("/bin/sh", ["-c", "ulimit -f 100 && exec \"$0\" \"$@\"", try binary(), "capture", "--model", "--mac", "52:54:00:aa:00:01",
                                    "--count", "1000000", "--write", path, "--json", "--quiet"])
        try expectJSONEqualsFile(r, path: path)
    }

    @Test func aFullTmpfsStopsTheCaptureAtTheFirstWriteErrorWithTheJSONEqualToTheFile() throws {
        let dir = temporaryPath("tmpfs")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let m = try run("/bin/mount", ["-t", "tmpfs", "-o", "size=96k", "miniport-test", dir])
        guard m.status == 0 else {
            print("skipped: cannot mount a tmpfs here (\(m.stderr.trimmingCharacters(in: .whitespacesAndNewlines))); the ulimit -f test covers the write error")
            return
        }
        defer { _ = try? run("/bin/umount", [dir]) }
        let path = dir + "/full.pcapng"
        let r = try runBounded(try binary(), ["capture", "--model", "--vlan", "100", "--count", "1000000", "--write", path, "--json", "--quiet"])
        try expectJSONEqualsFile(r, path: path)
        #expect(r.stderr.contains("No space left on device"))
    }

    @Test func devFullIsOneLineAndEndsAtOnce() throws {
        try expectOneLineError(["capture", "--model", "--count", "100", "--write", "/dev/full"], containing: "writing capture file /dev/full failed: No space left on device")
    }

    @Test(arguments: [SIGINT, SIGTERM])
    func aFIFOWithoutAReaderStillStopsOnASignal(_ signal: Int32) throws {
        let fifo = temporaryPath("nobody-\(signal).fifo")
        try? FileManager.default.removeItem(atPath: fifo)
        #expect(mkfifo(fifo, 0o600) == 0)
        let ready = temporaryPath("fifo-\(signal).ready")
        try? FileManager.default.removeItem(atPath: ready)
        let (p, out, err) = try start(["capture", "--model", "--write", fifo, "--quiet", "--ready", ready])
        Thread.sleep(forTimeInterval: 1.0)
        #expect(p.isRunning, "the capture waits for a reader")
        kill(p.processIdentifier, signal)
        guard waitForExit(p, seconds: 5, "a capture to a FIFO without a reader, after signal \(signal)") else { return }
        #expect(p.terminationReason == .exit)
        #expect(p.terminationStatus == 0)
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(text.contains("stopped while waiting for a reader of \(fifo)"), "stderr: \(text)")
        #expect(String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).contains("clean halt; 0 bytes left mapped"))
        #expect(!FileManager.default.fileExists(atPath: ready), "no ready file before the capture takes frames")
    }

    @Test func aFIFOWhoseReaderStallsStillStopsOnSIGINT() throws {
        let fifo = temporaryPath("stalled.fifo")
        try? FileManager.default.removeItem(atPath: fifo)
        #expect(mkfifo(fifo, 0o600) == 0)
        let (p, _, err) = try start(["capture", "--model", "--write", fifo, "--quiet"])
        // A reader that opens the FIFO and never reads: the pipe fills and the writes block.
        let reader = open(fifo, O_RDONLY)
        #expect(reader >= 0)
        defer { close(reader) }
        Thread.sleep(forTimeInterval: 2.0)
        #expect(p.isRunning)
        kill(p.processIdentifier, SIGINT)
        guard waitForExit(p, seconds: 5, "a capture blocked on a stalled FIFO, after SIGINT") else { return }
        #expect(p.terminationReason == .exit)
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(p.terminationStatus == 0, "stderr: \(text)")
        #expect(text.contains("stopped while waiting for a reader of \(fifo)"), "stderr: \(text)")
    }

    @Test func aReaderThatQuitsEndsTheCaptureCleanlyWithTheCounts() throws {
        let (p, out, err) = try start(["capture", "--model", "--write", "-", "--quiet"])
        // Read a little of the stream, then quit as `head -c` would.
        let first = out.fileHandleForReading.readData(ofLength: 4096)
        #expect(first.count > 0)
        try out.fileHandleForReading.close()
        guard waitForExit(p, seconds: 10, "a capture whose reader quit") else { return }
        #expect(p.terminationReason == .exit, "killed by signal \(p.terminationStatus) instead of ending cleanly")
        #expect(p.terminationStatus == 0)
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(text.contains("went away (broken pipe)"), "stderr: \(text)")
        #expect(text.contains("wrote ") && text.contains("frame(s) to standard output; clean halt; 0 bytes left mapped"), "stderr: \(text)")
        #expect(text.contains("rxq0"), "the per-queue counts: \(text)")
    }

    // MARK: --write -

    @Test func writeDashStreamsPcapngToStdoutAndTheJSONToStderr() throws {
        let (p, out, err) = try start(["capture", "--model", "--mac", "52:54:00:aa:00:01", "--vlan", "100", "--count", "40", "--write", "-", "--json", "--quiet"])
        let data = out.fileHandleForReading.readDataToEndOfFile()
        guard waitForExit(p, seconds: 30, "capture --write - --count 40") else { return }
        #expect(p.terminationStatus == 0)
        let path = temporaryPath("stdout.pcapng")
        try data.write(to: URL(fileURLWithPath: path))
        let file = try PcapFile(path: path)
        #expect(file.isPcapng)
        #expect(file.packets.count == 40)
        #expect(file.interfaces.map(\.name) == ["rxq0", "rxq1", "rxq2"])
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let last = try #require(text.split(separator: "\n").last)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any], "stderr: \(text)")
        let queues = try #require(json["queues"] as? [[String: Any]])
        #expect(queues.compactMap { $0["frames"] as? Int }.reduce(0, +) == 40)
    }

    @Test func tsharkReadsTheLiveStreamWhileTheCaptureRuns() throws {
        guard let tshark = which("tshark") else {
            print("skipped: tshark is not installed (Debian package tshark); writeDashStreamsPcapngToStdoutAndTheJSONToStderr checks the stream")
            return
        }
        // miniport capture ... --write - | tshark -r - -l -c 100: no --count, no --seconds short
        // enough to end the capture; only tshark quitting does.
        let pipe = Pipe()
        let (capture, _, err) = try start(["capture", "--model", "--mac", "52:54:00:aa:00:01", "--write", "-", "--seconds", "120", "--quiet"], stdout: pipe)
        let t = Process()
        t.executableURL = URL(fileURLWithPath: tshark)
        t.arguments = ["-r", "-", "-l", "-c", "100", "-T", "fields", "-e", "frame.number", "-e", "frame.interface_name"]
        t.standardInput = pipe
        let tout = Pipe()
        t.standardOutput = tout
        t.standardError = Pipe()
        try t.run()
        try pipe.fileHandleForReading.close()
        // Count tshark's lines as they arrive.
        var lines = 0, buffered = Data()
        var runningAtFirst = false, runningAtLast = false
        let started = Date()
        while lines < 100, Date().timeIntervalSince(started) < 60 {
            let chunk = tout.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            buffered.append(chunk)
            let n = buffered.filter { $0 == UInt8(ascii: "\n") }.count
            if lines == 0 && n > 0 { runningAtFirst = capture.isRunning }
            lines = n
            if lines >= 100 { runningAtLast = capture.isRunning }
        }
        #expect(lines == 100, "tshark printed \(lines) frames")
        #expect(runningAtFirst && runningAtLast, "frames reached tshark while the capture ran")
        #expect(Date().timeIntervalSince(started) < 60)
        _ = waitForExit(t, seconds: 10, "tshark -c 100")
        guard waitForExit(capture, seconds: 10, "the capture after tshark quit") else { return }
        #expect(capture.terminationReason == .exit)
        #expect(capture.terminationStatus == 0)
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(text.contains("went away (broken pipe)"), "stderr: \(text)")
        let wrote = text.split(separator: "\n").first { $0.hasPrefix("wrote ") }.flatMap { Int($0.split(separator: " ")[1]) } ?? 0
        #expect(wrote >= 100, "stderr: \(text)")
        let interfaces = String(decoding: buffered, as: UTF8.self).split(separator: "\n").map { $0.split(separator: "\t").last.map(String.init) ?? "" }
        #expect(Set(interfaces).isSubset(of: ["rxq0", "rxq1"]) && interfaces.contains("rxq1"))
    }

    // MARK: Progress lines

    static let progressRuns: [(String, [String])] = [
        ("capture", ["capture", "--model", "--write", "/dev/null", "--seconds", "1.2"]),
        ("forward", ["forward", "--model", "--seconds", "1.2"]),
        ("respond", ["respond", "--model", "--ip", "192.0.2.1", "--seconds", "1.2"]),
        ("pktgen", ["pktgen", "--model", "--rate", "1000", "--size", "60", "--count", "1200"]),
        ("demo", ["demo", "--frames", "60000"]),
    ]

    @Test func redirectedStderrGetsFullProgressLinesOnEveryLongRunningCommand() throws {
        for (name, args) in Self.progressRuns {
            let r = try runBounded(try binary(), args + ["--progress-interval", "0.1"])
            #expect(r.status == 0, "\(name): \(r.stderr)")
            #expect(!r.stderr.contains("\r"), "\(name): no carriage returns when stderr is not a terminal")
            let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
            #expect(lines.count >= (name == "demo" ? 1 : 3), "\(name): \(r.stderr)")
            for l in lines {
                #expect(l.hasPrefix("\(name): ") && l.contains("/s)") && (l.contains("drops") || name == "pktgen"), "\(name): '\(l)'")
            }
            #expect(r.stderr.isEmpty || r.stderr.hasSuffix("\n"))
        }
    }

    @Test func quietPrintsNoProgressLine() throws {
        for (name, args) in Self.progressRuns {
            let r = try runBounded(try binary(), args + ["--progress-interval", "0.1", "--quiet"])
            #expect(r.status == 0, "\(name): \(r.stderr)")
            #expect(r.stderr.isEmpty, "\(name) --quiet printed: \(r.stderr)")
            #expect(!r.stdout.isEmpty)
        }
    }

    @Test func aTerminalGetsOneLineRewrittenInPlace() throws {
        guard let script = which("script") else {
            print("skipped: script(1) (util-linux) is not installed; no pseudo-terminal to test the rewritten line")
            return
        }
        // script(1) runs the command on a pseudo-terminal: stderr is a terminal there.
        let out = temporaryPath("tty.out")
        let r = try runBounded(script, ["-q", "-e", "-c", "\(try binary()) forward --model --seconds 1.5 > \(out)", "/dev/null"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("\rforward: "), "the line starts with a carriage return: \(r.stdout.debugDescription)")
        #expect(r.stdout.contains("\u{1B}[K"))
        #expect(r.stdout.components(separatedBy: "\rforward: ").count >= 4, "rewritten several times: \(r.stdout.debugDescription)")
    }
}
