#if canImport(Glibc)
import Glibc
#endif
@testable import MiniportMetrics
import MiniportRegistry
import NDIS
import Protocols
import Synchronization
import Testing

/// A blocking HTTP/1.1 client for the tests: one request, the whole answer (the server closes
/// after `Connection: close`).
func http(_ method: String, _ path: String, port: Int, host: String = "127.0.0.1") throws -> (status: Int, headers: String, body: String) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    #expect(fd >= 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    inet_pton(AF_INET, host, &addr.sin_addr)
    let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    try #require(ok == 0, "connect to \(host):\(port): \(String(cString: strerror(errno)))")
    let request = "\(method) \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n"
    _ = request.withCString { send(fd, $0, strlen($0), 0) }
    var data: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 { break }
        data += buffer[0..<n]
    }
    let text = String(decoding: data, as: UTF8.self)
    let parts = text.components(separatedBy: "\r\n\r\n")
    let head = parts.first ?? ""
    let status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
    return (status, head, parts.dropFirst().joined(separator: "\r\n\r\n"))
}

extension String {
    func components(separatedBy separator: String) -> [String] {
        var out: [String] = []
        var rest = Substring(self)
        while let r = rest.range(of: separator) {
            out.append(String(rest[..<r.lowerBound]))
            rest = rest[r.upperBound...]
        }
        out.append(String(rest))
        return out
    }
}

extension Substring {
    func range(of s: String) -> Range<Substring.Index>? {
        guard !s.isEmpty else { return nil }
        var i = startIndex
        while i < endIndex {
            if self[i...].hasPrefix(s) { return i..<index(i, offsetBy: s.count) }
            i = index(after: i)
        }
        return nil
    }
}

/// The samples of a Prometheus text exposition: `name{labels}` → value.
func samples(_ text: String) -> [String: Double] {
    var out: [String: Double] = [:]
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        guard let space = line.lastIndex(of: " "), let v = Double(line[line.index(after: space)...]) else { continue }
        out[String(line[..<space])] = v
    }
    return out
}

@Suite struct MetricsEndpointTests {
    @Test func aPortAloneListensOnLoopbackOnly() throws {
        #expect(try MetricsEndpoint.parse("9100") == MetricsEndpoint(host: "127.0.0.1", port: 9100))
        #expect(try MetricsEndpoint.parse("0") == MetricsEndpoint(host: "127.0.0.1", port: 0))
    }

    @Test func hostAndPortAndBracketedIPv6AreTakenAsWritten() throws {
        #expect(try MetricsEndpoint.parse("0.0.0.0:9100") == MetricsEndpoint(host: "0.0.0.0", port: 9100))
        #expect(try MetricsEndpoint.parse("localhost:8080") == MetricsEndpoint(host: "localhost", port: 8080))
        #expect(try MetricsEndpoint.parse("[::1]:9100") == MetricsEndpoint(host: "::1", port: 9100))
        #expect(try MetricsEndpoint.parse("[::1]:9100").description == "[::1]:9100")
    }

    @Test func badValuesAreRefusedWithTheFormsThatWork() {
        for bad in [":9100", "abc", "70000", "::1:9100", "host:", "[::1]", "[::1]9100", "-1", "１２"] {
            #expect(throws: MetricsError.self, "\(bad)") { try MetricsEndpoint.parse(bad) }
            do { _ = try MetricsEndpoint.parse(bad) } catch {
                #expect(error.description.contains("bad --metrics value '\(bad)'"))
                #expect(error.description.contains("PORT for 127.0.0.1"))
            }
        }
    }
}

@Suite(.serialized) struct MetricsServerTests {
    func server() throws -> (MetricsServer, MetricsRegistry, ScrapeExchange) {
        let registry = MetricsRegistry()
        let exchange = ScrapeExchange()
        let c = registry.counter("test_frames_total", help: "Frames of the test.", labels: [("queue", "rxq1")])
        c.increment(by: 7)
        exchange.finish() // no loop samples here: answer at once
        return (try MetricsServer(endpoint: MetricsEndpoint(host: "127.0.0.1", port: 0), registry: registry, exchange: exchange), registry, exchange)
    }

    @Test func getMetricsAnswersThePrometheusTextFormatWithHelpAndType() throws {
        let (s, _, exchange) = try server()
        defer { s.stop() }
        #expect(s.boundPort > 0)
        let r = try http("GET", "/metrics", port: s.boundPort)
        #expect(r.status == 200)
        #expect(r.headers.lowercased().contains("content-type: text/plain; version=0.0.4"))
        #expect(r.body.contains("# HELP test_frames_total Frames of the test."))
        #expect(r.body.contains("# TYPE test_frames_total counter"))
        #expect(samples(r.body)["test_frames_total{queue=\"rxq1\"}"] == 7)
        #expect(exchange.served.load(ordering: .relaxed) == 1)
        // A query string is still /metrics.
        #expect(try http("GET", "/metrics?x=1", port: s.boundPort).status == 200)
    }

    @Test func otherPathsAre404AndOtherMethods405() throws {
        let (s, _, _) = try server()
        defer { s.stop() }
        for path in ["/", "/metric", "/metrics/x", "/favicon.ico"] {
            #expect(try http("GET", path, port: s.boundPort).status == 404, "\(path)")
        }
        for method in ["POST", "PUT", "DELETE", "HEAD"] {
            let r = try http(method, "/metrics", port: s.boundPort)
            #expect(r.status == 405, "\(method)")
            #expect(r.headers.contains("Allow: GET"), "\(method): \(r.headers)")
        }
        #expect(try http("POST", "/other", port: s.boundPort).status == 404)
    }

    @Test func aTakenPortIsOneClearError() throws {
        let (first, _, _) = try server()
        defer { first.stop() }
        do {
            _ = try MetricsServer(endpoint: MetricsEndpoint(host: "127.0.0.1", port: first.boundPort), registry: MetricsRegistry(), exchange: ScrapeExchange())
            Issue.record("a second listener on \(first.boundPort) was allowed")
        } catch {
            #expect(error == .portTaken("127.0.0.1:\(first.boundPort)"))
            #expect(error.description.contains("is taken"))
            #expect(error.description.contains("choose another --metrics"))
            #expect(!error.description.contains("\n"))
        }
    }

    @Test func aScrapeWaitsForTheLoopsSampleAndGetsItsFigures() throws {
        let registry = MetricsRegistry()
        let exchange = ScrapeExchange()
        let counter = registry.counter("loop_value_total", help: "A value the loop sets.", labels: [])
        let s = try MetricsServer(endpoint: MetricsEndpoint(host: "127.0.0.1", port: 0), registry: registry, exchange: exchange)
        defer { s.stop() }
        // The "loop": samples only when asked, then says so.
        let done = Atomic<Bool>(false)
        let loop = Thread {
            while !done.load(ordering: .relaxed) {
                if exchange.isRequested {
                    counter.increment(by: 5)
                    exchange.sampled()
                }
                usleep(1000)
            }
        }
        loop.start()
        let first = try http("GET", "/metrics", port: s.boundPort)
        let second = try http("GET", "/metrics", port: s.boundPort)
        done.store(true, ordering: .relaxed)
        #expect(samples(first.body)["loop_value_total"] == 5, "the scrape did not wait for the loop's sample")
        #expect(samples(second.body)["loop_value_total"] == 10)
    }
}

/// A thread for the test's "command loop".
final class Thread: @unchecked Sendable {
    let body: @Sendable () -> Void
    var handle = pthread_t()
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    func start() {
        let box = Unmanaged.passRetained(self)
        pthread_create(&handle, nil, { p in
            let t = Unmanaged<Thread>.fromOpaque(p!).takeRetainedValue()
            t.body()
            return nil
        }, box.toOpaque())
    }
}

@Suite(.serialized) struct AdapterSamplerTests {
    /// The model with a Counter binding, frames to the NIC's MAC and broadcasts through its wire.
    func run(frames: Int, session: MetricsSession) throws -> (OpenedAdapter, Counter) {
        let opened = try AdapterOpener.openModel(name: "model0")
        let counter = Counter()
        let binding = try opened.adapter.openBinding(counter)
        _ = try? binding.request(.setPacketFilter([.directed, .broadcast]))
        try opened.start()
        session.watch(opened.adapter, name: opened.address)
        session.report { [CommandFigure("frames", counter.counters.totalFrames, help: "Frames counted.")] }
        for i in 0..<frames {
            let destination = i % 2 == 0 ? AdapterOpener.modelMAC : MACAddress(0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
            opened.wire?.inject(FrameBuilder.filler(destination: destination, source: MACAddress(0x52, 0x54, 0x00, 0xbb, 0x00, 0x01), length: 100))
            if i % 16 == 15 { while opened.poll() > 0 {} }
        }
        for _ in 0..<50 { opened.poll() }
        return (opened, counter)
    }

    @Test func theSampleMatchesTheAdapterStatisticsAndTheCommandsFigures() throws {
        let session = try MetricsSession(command: "test", endpoint: MetricsEndpoint(host: "127.0.0.1", port: 0))
        defer { session.stop() }
        let (opened, counter) = try run(frames: 200, session: session)
        defer { opened.close() }
        session.finish()
        let text = String(decoding: session.registry.exposition(), as: UTF8.self)
        let s = samples(text)
        #expect(counter.counters.totalFrames == 200)
        #expect(s["miniport_test_frames_total"] == 200)
        #expect(s["miniport_adapter_received_frames_total{adapter=\"model0\"}"] == 200)
        #expect(s["miniport_queue_received_frames_total{adapter=\"model0\",queue=\"rxq0\"}"] == 200)
        #expect(s["miniport_queue_received_bytes_total{adapter=\"model0\",queue=\"rxq0\"}"] == Double(200 * 100))
        #expect(s["miniport_adapter_framework_drops_total{adapter=\"model0\"}"] == 0)
        #expect(s["miniport_adapter_outstanding_nbls{adapter=\"model0\"}"] == 0)
        #expect(s["miniport_queue_outstanding_nbls{adapter=\"model0\",queue=\"rxq0\"}"] == 0)
        let size = try #require(s["miniport_queue_ring_size{adapter=\"model0\",queue=\"rxq0\"}"])
        let fill = try #require(s["miniport_queue_ring_fill{adapter=\"model0\",queue=\"rxq0\"}"])
        #expect(size > 0 && fill > 0 && fill < size, "ring fill \(fill) of \(size)")
        // Every family has its help and type line (promtool asks for both).
        for name in Set(s.keys.map { String($0.prefix { $0 != "{" }) }) {
            #expect(text.contains("# HELP \(name) "), "\(name) has no help")
            #expect(text.contains("# TYPE \(name) "), "\(name) has no type")
        }
        for family in ["miniport_adapter_received_bytes_total", "miniport_adapter_transmitted_frames_total", "miniport_adapter_receive_drops_total",
                       "miniport_adapter_receive_errors_total", "miniport_adapter_resources_indications_total", "miniport_queue_drops_total",
                       "miniport_queue_errors_total", "miniport_queue_resources_indications_total"] {
            #expect(text.contains("# TYPE \(family) counter"), "\(family)")
        }
    }

    @Test func withoutAScrapeTheLoopDoesNotSample() throws {
        let session = try MetricsSession(command: "test", endpoint: MetricsEndpoint(host: "127.0.0.1", port: 0))
        defer { session.stop() }
        let (opened, _) = try run(frames: 32, session: session)
        defer { opened.close() }
        for _ in 0..<1000 { session.service() }
        #expect(session.samples == 0, "service() sampled with no scrape waiting")
        session.exchange.requested.store(true, ordering: .relaxed)
        session.service()
        #expect(session.samples == 1)
        session.service()
        #expect(session.samples == 1)
    }

    @Test func resourcesIndicationsAreCountedPerQueue() throws {
        // A binding that keeps every NBL: the ring runs short and the miniport indicates with RESOURCES.
        final class Keeper: ProtocolDriver {
            var held = NetBufferListChain()
            func receiveNetBufferLists(_ chain: consuming NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
                held.append(chain)
            }
            func receiveNetBufferListsWithResources(_ chain: borrowing NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {}
            var handlesResourcesIndications: Bool { true }
        }
        let session = try MetricsSession(command: "test", endpoint: MetricsEndpoint(host: "127.0.0.1", port: 0))
        defer { session.stop() }
        let opened = try AdapterOpener.openModel(name: "model0")
        let keeper = Keeper()
        let binding = try opened.adapter.openBinding(keeper)
        _ = try? binding.request(.setPacketFilter([.directed]))
        try opened.start()
        session.watch(opened.adapter, name: opened.address)
        for _ in 0..<600 {
            opened.wire?.inject(FrameBuilder.filler(destination: AdapterOpener.modelMAC, source: MACAddress(0x52, 0x54, 0x00, 0xbb, 0x00, 0x01), length: 80))
            opened.poll()
        }
        session.sample()
        let s = samples(String(decoding: session.registry.exposition(), as: UTF8.self))
        let resources = try #require(s["miniport_queue_resources_indications_total{adapter=\"model0\",queue=\"rxq0\"}"])
        #expect(resources > 0)
        #expect(s["miniport_adapter_resources_indications_total{adapter=\"model0\"}"] == resources)
        #expect((s["miniport_queue_outstanding_nbls{adapter=\"model0\",queue=\"rxq0\"}"] ?? 0) > 0)
        var chain = NetBufferListChain()
        swap(&chain, &keeper.held)
        binding.returnNetBufferLists(chain)
        for _ in 0..<10 { opened.poll() }
        opened.close()
    }
}
