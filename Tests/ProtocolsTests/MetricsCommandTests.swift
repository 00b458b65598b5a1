import Foundation
import Testing

/// `--metrics` on the long-running commands, checked with the real clients: curl scrapes a model
/// run, promtool checks the text, and the final scrape equals the command's final JSON.
@Suite(.serialized) struct MetricsCommandTests {
    /// A command running in the background, its stdout and stderr going to files.
    final class Running {
        let process = Process()
        let out: String
        let err: String

        init(_ args: [String]) throws {
            let binary = try #require(CommandLineTests.binary, "the miniport executable is not next to the tests: run swift build first")
            out = temporaryPath("metrics-\(UUID().uuidString).out")
            err = temporaryPath("metrics-\(UUID().uuidString).err")
            FileManager.default.createFile(atPath: out, contents: nil)
            FileManager.default.createFile(atPath: err, contents: nil)
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = args
            process.standardOutput = FileHandle(forWritingAtPath: out)
            process.standardError = FileHandle(forWritingAtPath: err)
            try process.run()
        }

        var stdout: String { (try? String(contentsOfFile: out, encoding: .utf8)) ?? "" }
        var stderr: String { (try? String(contentsOfFile: err, encoding: .utf8)) ?? "" }

        /// Waits until `condition` holds (or `seconds` pass); returns whether it held.
        func wait(seconds: Double, _ condition: () -> Bool) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if condition() { return true }
                usleep(20_000)
            }
            return condition()
        }

        /// The URL the command printed (`miniport: metrics on http://…/metrics`).
        func url() throws -> String {
            #expect(wait(seconds: 30) { stderr.contains("/metrics") }, "no metrics line on stderr: \(stderr)")
            let line = try #require(stderr.split(separator: "\n").first { $0.contains("miniport: metrics on ") })
            return String(line.split(separator: " ").last!)
        }

        func stop() {
            if process.isRunning { process.interrupt() }
            _ = wait(seconds: 15) { !process.isRunning }
        }
    }

    func curl(_ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let curl = try #require(which("curl"), "curl is not installed (Debian package curl; Tests/setup installs it)")
        return try run(curl, ["-sS", "--max-time", "10"] + args)
    }

    /// `name{labels}` → value of a Prometheus text exposition.
    func samples(_ text: String) -> [String: Double] {
        var out: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let v = Double(line[line.index(after: space)...]) else { continue }
            out[String(line[..<space])] = v
        }
        return out
    }

    @Test func curlScrapesACaptureWhilePromtoolAcceptsItAndTheFinalScrapeEqualsTheJSON() throws {
        let file = temporaryPath("metrics-capture.pcapng")
        let r = try Running(["capture", "--model", "--mac", "52:54:00:aa:00:01", "--vlan", "100", "--seconds", "3",
                             "--write", file, "--json", "--metrics", "127.0.0.1:0", "--metrics-linger", "30"])
        defer { r.stop() }
        let url = try r.url()
        #expect(url.hasPrefix("http://127.0.0.1:"), "loopback by default: \(url)")

        // During the run: two scrapes, counters grow, promtool accepts the text.
        let first = try curl([url])
        #expect(first.status == 0, "curl: \(first.stderr)")
        usleep(300_000)
        let second = try curl([url])
        #expect(second.status == 0)
        #expect(r.stdout.isEmpty, "the scrapes were not taken during the run")
        let a = samples(first.stdout), b = samples(second.stdout)
        let key = "miniport_adapter_received_frames_total{adapter=\"model0\"}"
        #expect((a[key] ?? 0) > 0, "no frames in the first scrape:\n\(first.stdout)")
        #expect((b[key] ?? 0) > (a[key] ?? 0), "counters did not grow between scrapes")
        if let promtool = which("promtool") {
            let path = temporaryPath("metrics.prom")
            try second.stdout.write(toFile: path, atomically: true, encoding: .utf8)
            let check = try run("/bin/sh", ["-c", "\(promtool) check metrics < \(path)"])
            #expect(check.status == 0, "promtool check metrics:\n\(check.stdout)\(check.stderr)")
        } else {
            Issue.record("promtool is not installed (Debian package prometheus; Tests/setup installs it)")
        }

        // After the run: the JSON is printed while the listener lingers; a scrape now is the final sample.
        #expect(r.wait(seconds: 30) { r.stdout.contains("\"queues\"") }, "no final JSON: \(r.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let final = try curl([url])
        let f = samples(final.stdout)
        let queues = try #require(json["queues"] as? [[String: Any]])
        #expect(queues.count == 3)
        var total = 0.0
        for q in queues {
            let id = try #require(q["id"] as? Int)
            #expect(f["miniport_capture_frames_total{queue=\"rxq\(id)\"}"] == Double(q["frames"] as? Int ?? -1), "rxq\(id) frames")
            #expect(f["miniport_capture_bytes_total{queue=\"rxq\(id)\"}"] == Double(q["bytes"] as? Int ?? -1), "rxq\(id) bytes")
            total += Double(q["frames"] as? Int ?? 0)
        }
        #expect(f["miniport_capture_drops_total"] == Double(json["drops"] as? Int ?? -1))
        // What the queues indicated covers what was written (multicast copies aside, the same).
        let indicated = f.filter { $0.key.hasPrefix("miniport_queue_received_frames_total{adapter=\"model0\"") }.values.reduce(0, +)
        #expect(indicated >= total && total > 0, "indicated \(indicated), written \(total)")
        // The hardware counts a frame once; the queues count every copy (the 82576 gives broadcasts to
        // the MAC queues too), so their sum is at least the adapter's.
        #expect((f[key] ?? 0) > 0 && indicated >= (f[key] ?? 0), "adapter \(f[key] ?? 0), queues \(indicated)")

        // Ctrl-C ends the linger at once, exit 0.
        r.process.interrupt()
        #expect(r.wait(seconds: 10) { !r.process.isRunning }, "SIGINT did not end the linger")
        #expect(r.process.terminationStatus == 0, "\(r.stderr)")
    }

    @Test func theListenerAnswersGetMetricsOnly() throws {
        let r = try Running(["respond", "--model", "--ip", "10.0.0.1", "--seconds", "20", "--metrics", "0"])
        defer { r.stop() }
        let url = try r.url()
        let base = String(url.dropLast("/metrics".count))
        #expect(try curl(["-o", "/dev/null", "-w", "%{http_code}", url]).stdout == "200")
        #expect(try curl(["-o", "/dev/null", "-w", "%{http_code}", base + "/"]).stdout == "404")
        #expect(try curl(["-o", "/dev/null", "-w", "%{http_code}", base + "/metricsx"]).stdout == "404")
        #expect(try curl(["-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", url]).stdout == "405")
        let body = try curl([url]).stdout
        #expect(body.contains("# TYPE miniport_respond_echo_replies_total counter"), "\(body)")
    }

    @Test func aTakenPortIsOneErrorLineBeforeTheNICIsTouched() throws {
        let holder = try Running(["respond", "--model", "--ip", "10.0.0.1", "--seconds", "20", "--metrics", "127.0.0.1:0"])
        defer { holder.stop() }
        let url = try holder.url()
        let port = try #require(url.split(separator: ":").last?.split(separator: "/").first.map(String.init))
        for command in [["demo"], ["capture", "--model", "--write", temporaryPath("taken.pcapng")], ["forward", "--model"],
                        ["pktgen", "--model", "--rate", "0", "--size", "60", "--count", "10"], ["respond", "--model", "--ip", "10.0.0.1"]] {
            let r = try miniport(command + ["--metrics", "127.0.0.1:\(port)"])
            #expect(r.status != 0, "\(command)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(command): \(r.stderr)")
            #expect(r.stderr.contains("the metrics port 127.0.0.1:\(port) is taken"), "\(command): \(r.stderr)")
            #expect(r.stdout.isEmpty)
        }
    }

    @Test func everyLongRunningCommandTakesMetricsAndEndsCleanWithIt() throws {
        for command in [["demo", "--frames", "500", "--json"], ["forward", "--model", "--count", "64", "--json"],
                        ["pktgen", "--model", "--rate", "0", "--size", "60", "--count", "100", "--json"],
                        ["respond", "--model", "--ip", "10.0.0.1", "--count", "2", "--json"]] {
            let help = try miniport([command[0], "--help"])
            #expect(help.stdout.contains("--metrics <host:port>"), "\(command[0]) --help")
            let r = try miniport(command + ["--metrics", "127.0.0.1:0"])
            #expect(r.status == 0, "\(command): \(r.stderr)")
            #expect(r.stderr.contains("miniport: metrics on http://127.0.0.1:"), "\(command): \(r.stderr)")
            #expect(r.stdout.hasPrefix("{"), "\(command): \(r.stdout)")
        }
        let bad = try miniport(["demo", "--metrics", ":9100"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("bad --metrics value ':9100'"), "\(bad.stderr)")
    }

    func miniport(_ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try run(try #require(CommandLineTests.binary), args)
    }
}
