import Foundation
import Testing

/// `miniport extcap` (Wireshark's extcap interface) and its wrapper from `udev/install`, checked with
/// the built binary and with tshark itself.
@Suite(.serialized) struct ExtcapTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixture = repo.appendingPathComponent("Tests/PCITests/Fixtures/igb-host").path

    func miniport(_ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let binary = try #require(CommandLineTests.binary, "the miniport executable is not next to the tests: run swift build first")
        return try run(binary, args)
    }

    /// Runs the binary for `stopAfter` seconds, then SIGTERM (as Wireshark stops an extcap).
    func miniport(_ args: [String], stopAfter: Double) throws -> (status: Int32, stdout: String, stderr: String) {
        let binary = try #require(CommandLineTests.binary)
        return try run("/usr/bin/timeout", ["-s", "TERM", "--preserve-status", String(stopAfter), binary] + args)
    }

    /// The sentences of an answer: (keyword, [key: value]) per line.
    func sentences(_ text: String) -> [(String, [String: String])] {
        text.split(separator: "\n").map { line in
            let keyword = String(line.prefix { $0 != " " })
            var fields: [String: String] = [:]
            var rest = line.dropFirst(keyword.count)
            while let open = rest.firstIndex(of: "{"), let close = rest[open...].firstIndex(of: "}") {
                let pair = rest[rest.index(after: open)..<close]
                if let eq = pair.firstIndex(of: "=") { fields[String(pair[..<eq])] = String(pair[pair.index(after: eq)...]) }
                rest = rest[rest.index(after: close)...]
            }
            return (keyword, fields)
        }
    }

    @Test func theInterfaceListNamesTheModelAndEveryVfioBoundNICAMiniportDrives() throws {
        let r = try miniport(["extcap", "--extcap-interfaces", "--extcap-version=4.0", "--sysfs-root", Self.fixture])
        #expect(r.status == 0, "\(r.stderr)")
        let s = sentences(r.stdout)
        #expect(s.first?.0 == "extcap")
        #expect(s.first?.1["version"]?.isEmpty == false)
        let values = s.filter { $0.0 == "interface" }.compactMap { $0.1["value"] }
        // 03:00.1 is an 82576 on vfio-pci; 03:00.0 is on igb, 04:00.0 has no driver, 05:00.0 is an e1000e.
        // Every model NIC of the build (the first is miniport-model), then the vfio-bound NICs.
        #expect(values == ["miniport-model", "miniport-model-virtio-net", "miniport-0000:03:00.1"])
        #expect(s.filter { $0.0 == "interface" }.allSatisfy { $0.1["display"]?.isEmpty == false })
    }

    @Test func theLinkTypeIsEthernet() throws {
        let r = try miniport(["extcap", "--extcap-dlts", "--extcap-interface", "miniport-model"])
        #expect(r.status == 0, "\(r.stderr)")
        let s = sentences(r.stdout)
        #expect(s.count == 1)
        #expect(s.first?.0 == "dlt")
        #expect(s.first?.1["number"] == "1")
    }

    @Test func theConfigOffersQueueFiltersLookaheadAndForTheModelItsTraffic() throws {
        let model = try miniport(["extcap", "--extcap-config", "--extcap-interface", "miniport-model", "--extcap-version=4.0"])
        #expect(model.status == 0, "\(model.stderr)")
        let s = sentences(model.stdout)
        #expect(s.allSatisfy { $0.0 == "arg" || $0.0 == "value" })
        let args = s.filter { $0.0 == "arg" }
        #expect(args.compactMap { $0.1["call"] } == ["--mac", "--vlan", "--lookahead", "--traffic", "--rate"])
        #expect(Set(args.compactMap { $0.1["number"] }).count == args.count, "arg numbers are unique")
        #expect(args.allSatisfy { $0.1["display"] != nil && $0.1["type"] != nil })
        let trafficNumber = try #require(args.first { $0.1["call"] == "--traffic" }?.1["number"])
        #expect(s.filter { $0.0 == "value" && $0.1["arg"] == trafficNumber }.compactMap { $0.1["value"] } == ["mix", "none"])

        let device = try miniport(["extcap", "--extcap-config", "--extcap-interface", "miniport-0000:03:00.1"])
        #expect(device.status == 0, "\(device.stderr)")
        #expect(sentences(device.stdout).filter { $0.0 == "arg" }.compactMap { $0.1["call"] } == ["--mac", "--vlan", "--lookahead"])
    }

    @Test func aCaptureFilterIsRefusedInOneLine() throws {
        let r = try miniport(["extcap", "--capture", "--extcap-interface", "miniport-model", "--fifo", temporaryPath("refused.pcapng"),
                              "--extcap-capture-filter", "tcp port 80"])
        #expect(r.status != 0)
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(r.stderr.contains("capture filters are not supported"))
        #expect(r.stderr.contains("MAC and VLAN queue filters"))
    }

    @Test func anUnknownInterfaceIsRefusedInOneLine() throws {
        for (name, text) in [("eth0", "unknown extcap interface 'eth0'"), ("miniport-nonsense", "bad PCI address 'nonsense'")] {
            let r = try miniport(["extcap", "--extcap-config", "--extcap-interface", name])
            #expect(r.status != 0)
            #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
            #expect(r.stderr.contains(text), "\(r.stderr)")
        }
    }

    @Test func twoStepsAtOnceAreRefused() throws {
        let r = try miniport(["extcap", "--extcap-interfaces", "--capture"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("exactly one of --extcap-interfaces, --extcap-dlts, --extcap-config, --capture"), "\(r.stderr)")
    }

    /// Starts `miniport extcap --capture` on the model in the background.
    func startCapture(fifo: String, _ extra: [String]) throws -> (Process, Pipe) {
        let binary = try #require(CommandLineTests.binary)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["extcap", "--capture", "--extcap-interface", "miniport-model", "--fifo", fifo, "--verbose"] + extra
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        return (p, err)
    }

    func waitExit(_ p: Process, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        return !p.isRunning
    }

    @Test func theModelCaptureWritesOneInterfacePerQueueUntilWiresharkStopsIt() throws {
        let path = temporaryPath("extcap-file.pcapng")
        let (p, err) = try startCapture(fifo: path, ["--mac", "52:54:00:aa:00:01,52:54:00:aa:00:02", "--vlan", "100", "--rate", "200"])
        usleep(1_500_000)
        // Live: frames are in the file while the capture runs (flushed per batch).
        let live = try PcapFile(path: path)
        #expect(live.packets.count > 0, "nothing flushed while running")
        p.terminate() // SIGTERM, as Wireshark stops an extcap
        #expect(waitExit(p, seconds: 10), "extcap did not stop on SIGTERM")
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(p.terminationStatus == 0, "\(stderr)")
        let file = try PcapFile(path: path)
        #expect(file.interfaces.map(\.name) == ["rxq0", "rxq1", "rxq2", "rxq3"])
        #expect(file.interfaces.map(\.description) == ["default", "mac 52:54:00:aa:00:01", "mac 52:54:00:aa:00:02", "vlan 100"])
        #expect(file.interfaces.allSatisfy { $0.linkType == 1 })
        for i in 0..<4 { #expect(file.packets.contains { $0.interface == i }, "no frame on rxq\(i)") }
        // Paced at 200/s for about 1.5 s (a 1 MiB buffer would hold them all unflushed): far fewer than an unpaced model run.
        #expect(file.packets.count < 2_000, "\(file.packets.count) frames: --rate is not honoured")
        #expect(stderr.contains("miniport extcap: \(file.packets.count) frame(s) on 4 queue(s)"), "\(stderr)")
        // Without --verbose nothing reaches stderr (Wireshark shows any of it as an error).
        let quiet = try miniport(["extcap", "--capture", "--extcap-interface", "miniport-model", "--fifo", temporaryPath("quiet.fifo-file"),
                                  "--traffic", "none", "--rate", "0"], stopAfter: 1.0)
        #expect(quiet.status == 0, "\(quiet.stderr)")
        #expect(quiet.stderr.isEmpty, "stderr without --verbose: \(quiet.stderr)")
        #expect(stderr.contains("0 bytes left mapped"), "\(stderr)")
    }

    @Test func aReaderThatClosesTheFifoEndsTheCaptureCleanly() throws {
        let path = temporaryPath("extcap.fifo")
        unlink(path)
        #expect(mkfifo(path, 0o600) == 0)
        let (p, err) = try startCapture(fifo: path, ["--rate", "0"])
        let reader = try #require(FileHandle(forReadingAtPath: path))
        let head = reader.readData(ofLength: 4096)
        #expect(head.count > 0)
        #expect(head.prefix(4) == Data([0x0a, 0x0d, 0x0d, 0x0a]), "a pcapng section header first")
        try reader.close()
        #expect(waitExit(p, seconds: 10), "extcap kept running after its reader left")
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(p.terminationReason == .exit, "killed by a signal (SIGPIPE?): \(stderr)")
        #expect(p.terminationStatus == 0, "\(stderr)")
        #expect(stderr.contains("0 bytes left mapped"), "\(stderr)")
        unlink(path)
    }

    /// Runs `tshark` as an unprivileged user when we are root: Wireshark ignores WIRESHARK_EXTCAP_DIR
    /// in a privileged process.
    func tshark(_ tshark: String, _ args: [String], extcapDir: String, home: String) throws -> (status: Int32, stdout: String, stderr: String) {
        if getuid() == 0 {
            return try run("/usr/sbin/runuser", ["-u", "nobody", "--", "/usr/bin/env", "WIRESHARK_EXTCAP_DIR=\(extcapDir)", "HOME=\(home)",
                                                "/usr/bin/timeout", "120", tshark] + args)
        }
        return try run("/usr/bin/timeout", ["120", tshark] + args, environment: ["WIRESHARK_EXTCAP_DIR": extcapDir, "HOME": home])
    }

    @Test func tsharkListsTheInterfacesAndCapturesFiftyFramesThroughTheInstalledWrapper() throws {
        guard let tshark = which("tshark") else {
            print("skipped: tshark is not installed (Debian package tshark, Tests/setup installs it); the extcap sentences were checked above")
            return
        }
        let binary = try #require(CommandLineTests.binary)
        let prefix = temporaryPath("extcap-prefix")
        try? FileManager.default.removeItem(atPath: prefix)
        let install = try run(Self.repo.appendingPathComponent("udev/install").path, ["--prefix", prefix, "--binary", binary, "--no-c-api"])
        #expect(install.status == 0, "udev/install: \(install.stderr)")
        let extcapDir = prefix + "/lib/wireshark/extcap"
        for f in ["bin/miniport", "bin/miniport-bind", "lib/udev/rules.d/70-miniport-vfio.rules", "lib/wireshark/extcap/miniport"] {
            #expect(FileManager.default.fileExists(atPath: prefix + "/" + f), "udev/install did not install \(f)")
        }
        #expect(FileManager.default.isExecutableFile(atPath: extcapDir + "/miniport"))
        // tshark (as nobody when we are root) must reach the prefix and write its output.
        let out = prefix + "/out"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        for dir in [URL(fileURLWithPath: prefix).deletingLastPathComponent().path, prefix] { chmod(dir, 0o755) }
        chmod(out, 0o777)

        let list = try self.tshark(tshark, ["-D"], extcapDir: extcapDir, home: out)
        #expect(list.status == 0, "tshark -D: \(list.stderr)")
        #expect(list.stdout.contains("miniport-model (Miniport hardware model"), "tshark -D:\n\(list.stdout)")

        let file = out + "/x.pcapng"
        let cap = try self.tshark(tshark, ["-i", "miniport-model", "-c", "50", "-w", file], extcapDir: extcapDir, home: out)
        #expect(cap.status == 0, "tshark -i miniport-model: \(cap.stderr)")
        let read = try run(tshark, ["-r", file, "-T", "fields", "-e", "frame.interface_name"])
        #expect(read.status == 0, "tshark -r: \(read.stderr)")
        let names = read.stdout.split(separator: "\n").map(String.init)
        #expect(names.count == 50)
        #expect(names.allSatisfy { $0.hasPrefix("rxq") && Int($0.dropFirst(3)) != nil }, "interface names: \(Set(names))")
    }
}
