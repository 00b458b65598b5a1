import Foundation
import Testing
@testable import Protocols

/// End-to-end checks of the `miniport` executable that `swift build` / `swift test` build next to
/// the test bundle: output shapes, exit codes and the one-line errors for bad input.
@Suite(.serialized) struct CommandLineTests {
    static var binary: String? {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir, dir.deletingLastPathComponent()] {
            let path = candidate.appendingPathComponent("miniport").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    func miniport(_ args: [String], environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
        let binary = try #require(Self.binary, "the miniport executable is not next to the tests: run swift build first")
        return try run(binary, args, environment: environment)
    }

    /// Expects a failure with exactly one line on stderr containing `text`.
    func expectOneLineError(_ args: [String], containing text: String, environment: [String: String] = [:]) throws {
        let r = try miniport(args, environment: environment)
        #expect(r.status != 0, "\(args) should fail")
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1, "stderr should be one line, got: \(r.stderr)")
        #expect(r.stderr.contains(text), "stderr: \(r.stderr)")
        #expect(r.stdout.isEmpty)
    }

    @Test func everySubcommandHasHelp() throws {
        for sub in ["demo", "info", "capture", "respond", "forward", "pktgen"] {
            let r = try miniport([sub, "--help"])
            #expect(r.status == 0)
            #expect(r.stdout.contains("USAGE"), "\(sub) --help")
            #expect(r.stdout.contains("--model") || sub == "demo")
        }
    }

    @Test func theDemoPrintsTheDocumentedJSON() throws {
        let r = try miniport(["demo", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let queues = try #require(json["queues"] as? [[String: Any]])
        #expect(queues.count == 5)
        #expect(queues.map { $0["id"] as? Int } == [0, 1, 2, 3, 4])
        #expect(queues.map { $0["default"] as? Bool } == [true, false, false, false, false])
        #expect((queues[1]["filters"] as? [[String: String]]) == [["mac": "52:54:00:aa:00:01"]])
        #expect((queues[4]["filters"] as? [[String: Int]]) == [["vlan": 100]])
        #expect(queues.allSatisfy { ($0["frames"] as? Int ?? 0) > 0 && ($0["bytes"] as? Int ?? 0) > 0 })
        #expect(json["drops"] as? Int == 0)
    }

    @Test func captureWritesExactlyCountFramesAndReportsThemPerQueue() throws {
        let path = temporaryPath("cli.pcapng")
        let r = try miniport(["capture", "--model", "--mac", "52:54:00:aa:00:01", "--mac", "52:54:00:aa:00:02", "--vlan", "100",
                              "--count", "25", "--write", path, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let queues = try #require(json["queues"] as? [[String: Any]])
        #expect(queues.map { $0["id"] as? Int } == [0, 1, 2, 3])
        let frames = queues.compactMap { $0["frames"] as? Int }
        #expect(frames.reduce(0, +) == 25)
        let file = try PcapFile(path: path)
        #expect(file.packets.count == 25)
        #expect(file.interfaces.map(\.name) == ["rxq0", "rxq1", "rxq2", "rxq3"])
        #expect(file.interfaces.map(\.description) == ["default", "mac 52:54:00:aa:00:01", "mac 52:54:00:aa:00:02", "vlan 100"])
        for (i, q) in queues.enumerated() {
            #expect(file.packets.filter { $0.interface == i }.count == q["frames"] as? Int)
            #expect(file.packets.filter { $0.interface == i }.reduce(0) { $0 + $1.data.count } == q["bytes"] as? Int)
        }
    }

    /// The queue a frame belongs on in `capture --mac A --mac B --vlan 100`: rxq1 for A, rxq2 for B,
    /// rxq3 for VLAN 100, rxq0 for the rest.
    static func expectedQueue(_ frame: [UInt8], macA: [UInt8], macB: [UInt8]) -> Int {
        let destination = Array(frame.prefix(6))
        if destination == macA { return 1 }
        if destination == macB { return 2 }
        if frame.count >= 16, frame[12] == 0x81, frame[13] == 0x00, (Int(frame[14] & 0x0f) << 8 | Int(frame[15])) == 100 { return 3 }
        return 0
    }

    @Test func captureOnABusyWirePutsEveryFrameOnTheQueueItsFiltersSelectFromTheFirstFrame() throws {
        // The model's wire carries the frame mix before the binding opens, after it, and after the
        // queues are set: receive must stay off until restart, so no early frame lands on rxq0.
        let path = temporaryPath("busy.pcapng")
        let r = try miniport(["capture", "--model", "--mac", "52:54:00:aa:00:01", "--mac", "52:54:00:aa:00:02", "--vlan", "100",
                              "--count", "72", "--write", path, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let file = try PcapFile(path: path)
        #expect(file.packets.count == 72)
        let macA: [UInt8] = [0x52, 0x54, 0x00, 0xaa, 0x00, 0x01], macB: [UInt8] = [0x52, 0x54, 0x00, 0xaa, 0x00, 0x02]
        var wrong: [String] = []
        for (i, p) in file.packets.enumerated() {
            // Broadcast is copied to every queue that takes it (VMOLR.BAM); everything else has one home.
            if p.data.prefix(6).allSatisfy({ $0 == 0xff }) { continue }
            let want = Self.expectedQueue(p.data, macA: macA, macB: macB)
            if p.interface != want { wrong.append("frame \(i) on rxq\(p.interface), belongs on rxq\(want)") }
        }
        #expect(wrong.isEmpty, "\(wrong.prefix(5))")
        // The multicast of the mix reaches the default queue from the first round on.
        let multicast = file.packets.filter { $0.interface == 0 && $0.data[0] & 1 == 1 && $0.data[0] != 0xff }
        #expect(!multicast.isEmpty)
        #expect(Set(file.packets.map(\.interface)) == [0, 1, 2, 3])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(json["drops"] as? Int == 0, "frames offered while Paused are not drops: \(r.stdout)")
    }

    @Test func captureIsPromiscuousByDefaultAndNoPromiscuousKeepsOnlyFramesForTheNIC() throws {
        let stranger: [UInt8] = [0x52, 0x54, 0x00, 0xcc, 0x00, 0x99]
        let macA: [UInt8] = [0x52, 0x54, 0x00, 0xaa, 0x00, 0x01]
        for promiscuous in [true, false] {
            let path = temporaryPath(promiscuous ? "promisc.pcapng" : "nopromisc.pcapng")
            let r = try miniport(["capture", "--model", "--mac", "52:54:00:aa:00:01", "--count", "40", "--write", path]
                                 + (promiscuous ? [] : ["--no-promiscuous"]))
            #expect(r.status == 0, "\(r.stderr)")
            let file = try PcapFile(path: path)
            #expect(file.packets.count == 40)
            let destinations = file.packets.map { Array($0.data.prefix(6)) }
            // Unicast for another station: only a promiscuous capture has it.
            #expect(destinations.contains(stranger) == promiscuous, "promiscuous \(promiscuous)")
            #expect(destinations.contains(macA))
            #expect(destinations.contains { $0.allSatisfy { $0 == 0xff } })
            #expect(destinations.contains { $0[0] & 1 == 1 && $0[0] != 0xff })
        }
    }

    @Test func respondAnswersTheModelPeer() throws {
        let r = try miniport(["respond", "--model", "--ip", "10.0.0.1", "--count", "4", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("\"arpReplies\": 2"))
        #expect(r.stdout.contains("\"echoReplies\": 2"))
        #expect(r.stdout.contains("\"peerVerified\": 4"))
    }

    @Test func forwardAndPktgenRunOnTheModel() throws {
        let f = try miniport(["forward", "--model", "--count", "50", "--json"])
        #expect(f.status == 0, "\(f.stderr)")
        #expect(f.stdout.contains("\"forwarded\": 50") && f.stdout.contains("\"arrived\": 50"))
        let p = try miniport(["pktgen", "--model", "--rate", "0", "--size", "256", "--count", "300", "--json"])
        #expect(p.status == 0, "\(p.stderr)")
        #expect(p.stdout.contains("\"sent\": 300") && p.stdout.contains("\"onWire\": 300") && p.stdout.contains("\"outOfOrder\": 0"))
    }

    @Test func sigintStopsCleanlyWithFinalStatistics() throws {
        let binary = try #require(Self.binary, "the miniport executable is not next to the tests: run swift build first")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["respond", "--model", "--ip", "10.0.0.1"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = Pipe()
        try p.run()
        Thread.sleep(forTimeInterval: 0.7)
        kill(p.processIdentifier, SIGINT)
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationReason == .exit)
        #expect(p.terminationStatus == 0)
        #expect(text.contains("answered"))
        #expect(text.contains("clean halt; 0 bytes left mapped"))
    }

    @Test func anUnknownAddressIsOneLineAndNonzero() throws {
        try expectOneLineError(["capture", "--device", "0000:7f:1f.7", "--count", "1", "--write", temporaryPath("x.pcapng")], containing: "no PCI device at 0000:7f:1f.7")
    }

    @Test func aMalformedAddressIsOneLineAndNonzero() throws {
        try expectOneLineError(["info", "--device", "03:00"], containing: "bad PCI address '03:00'")
    }

    @Test func aBadMACIsOneLineAndNonzero() throws {
        try expectOneLineError(["capture", "--model", "--mac", "52:54:00:aa:00", "--write", temporaryPath("x.pcapng")], containing: "bad MAC address '52:54:00:aa:00'")
    }

    @Test func aBadVLANIsOneLineAndNonzero() throws {
        try expectOneLineError(["capture", "--model", "--vlan", "4095", "--write", temporaryPath("x.pcapng")], containing: "bad VLAN id '4095'")
    }

    @Test func conflictingFiltersAreOneLineAndNonzero() throws {
        try expectOneLineError(["capture", "--model", "--mac", "52:54:00:aa:00:01", "--mac", "52-54-00-AA-00-01", "--write", temporaryPath("x.pcapng")],
                               containing: "conflicting filters")
        try expectOneLineError(["capture", "--model", "--vlan", "7", "--vlan", "7", "--write", temporaryPath("x.pcapng")], containing: "conflicting filters")
    }

    @Test func aBadIPv4AddressIsOneLineAndNonzero() throws {
        try expectOneLineError(["respond", "--model", "--ip", "10.0.0.256"], containing: "bad IPv4 address '10.0.0.256'")
    }

    @Test func aBadFrameSizeIsOneLineAndNonzero() throws {
        try expectOneLineError(["pktgen", "--model", "--rate", "1", "--size", "2000", "--count", "1"], containing: "--size")
    }

    @Test func aParseErrorIsOneLineToo() throws {
        try expectOneLineError(["capture", "--model", "--count", "x", "--write", "y"], containing: "--count")
    }

    @Test func aBusyDeviceIsOneLineAndNonzero() throws {
        // Hold the device's lock as another miniport process would.
        let dir = temporaryPath("locks")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let fd = open("\(dir)/miniport-0000:05:00.0.lock", O_RDWR | O_CREAT, 0o644)
        #expect(fd >= 0)
        defer { close(fd) }
        #expect(flock(fd, LOCK_EX | LOCK_NB) == 0)
        _ = "4242".withCString { write(fd, $0, 4) }
        try expectOneLineError(["capture", "--model", "--device", "0000:05:00.0", "--count", "1", "--write", temporaryPath("busy.pcapng")],
                               containing: "device 0000:05:00.0 is busy: process 4242 has it open", environment: ["MINIPORT_LOCK_DIR": dir])
        // Once released, the same command runs.
        flock(fd, LOCK_UN)
        let r = try miniport(["capture", "--model", "--device", "0000:05:00.0", "--count", "1", "--write", temporaryPath("free.pcapng")],
                             environment: ["MINIPORT_LOCK_DIR": dir])
        #expect(r.status == 0, "\(r.stderr)")
    }

    @Test func theReadyFileAppearsWithTheProcessIDForCaptureRespondAndForward() throws {
        for (name, args) in [("capture", ["capture", "--model", "--count", "3", "--write", temporaryPath("ready.pcapng")]),
                             ("respond", ["respond", "--model", "--ip", "10.0.0.1", "--count", "2"]),
                             ("forward", ["forward", "--model", "--count", "3"])] {
            let ready = temporaryPath("\(name).ready")
            try? FileManager.default.removeItem(atPath: ready)
            let r = try miniport(args + ["--ready", ready])
            #expect(r.status == 0, "\(name): \(r.stderr)")
            let text = try #require(try? String(contentsOfFile: ready, encoding: .utf8), "\(name) wrote no ready file")
            let pid = text.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(Int(pid).map { $0 > 0 } == true, "\(name)'s ready file holds '\(pid)', not a process id")
        }
    }

    @Test func anUnwritableReadyFileIsOneLineAndNonzero() throws {
        try expectOneLineError(["capture", "--model", "--count", "1", "--write", temporaryPath("r.pcapng"),
                                "--ready", "/nonexistent-dir/ready"], containing: "cannot create the ready file /nonexistent-dir/ready")
    }

    @Test func forwardingANICToItselfIsRefused() throws {
        try expectOneLineError(["forward", "--model", "--device", "0000:06:00.0", "--to", "06:00.0"], containing: "both name 0000:06:00.0")
    }
}
