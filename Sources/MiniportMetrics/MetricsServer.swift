#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Where `--metrics` listens: `PORT` (loopback, 127.0.0.1), `HOST:PORT`, or `[IPv6]:PORT`.
/// Port 0 picks a free port (the command prints the one it got).
public struct MetricsEndpoint: Equatable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses the `--metrics` value.
    /// - Throws: a one-line message naming the value and the accepted forms.
    public static func parse(_ text: String) throws(MetricsError) -> MetricsEndpoint {
        func port(_ s: Substring) throws(MetricsError) -> Int {
            guard !s.isEmpty, s.allSatisfy(\.isASCII), s.allSatisfy(\.isNumber), let p = Int(s), p <= 65535 else {
                throw .badEndpoint(text, "the port must be a number 0-65535")
            }
            return p
        }
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw .badEndpoint(text, "an IPv6 address needs its closing ]") }
            let host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":"), !host.isEmpty else { throw .badEndpoint(text, "write [ADDRESS]:PORT") }
            return MetricsEndpoint(host: String(host), port: try port(rest.dropFirst()))
        }
        guard let colon = text.lastIndex(of: ":") else {
            return MetricsEndpoint(host: "127.0.0.1", port: try port(Substring(text)))
        }
        let host = text[..<colon]
        if host.isEmpty {
            throw .badEndpoint(text, "write PORT for loopback only, or 0.0.0.0:PORT to listen on every interface")
        }
        if host.contains(":") { throw .badEndpoint(text, "write an IPv6 address in brackets: [::1]:PORT") }
        return MetricsEndpoint(host: String(host), port: try port(text[text.index(after: colon)...]))
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Errors of the metrics listener: one line each, naming the thing and the fix.
public enum MetricsError: Error, Equatable, CustomStringConvertible {
    case badEndpoint(String, String)
    case portTaken(String)
    case cannotListen(String, String)

    public var description: String {
        switch self {
        case let .badEndpoint(v, why): "bad --metrics value '\(v)': \(why) (PORT for 127.0.0.1, HOST:PORT, or [IPv6]:PORT)"
        case let .portTaken(e): "the metrics port \(e) is taken (another process listens there): choose another --metrics HOST:PORT, or port 0 for any free one"
        case let .cannotListen(e, why): "cannot listen for metrics on \(e): \(why); give --metrics an address of this machine"
        }
    }
}

/// Hands scrapes to the command's loop: the listener asks for a sample, the loop (which owns the
/// adapter) takes it between two polls and bumps `generation`; the listener then renders.
/// The loop's cost is one relaxed atomic load per iteration, nothing per packet.
public final class ScrapeExchange: Sendable {
    let requested = Atomic<Bool>(false)
    let generation = Atomic<UInt64>(0)
    /// The command has taken its final sample: scrapes are answered at once from it.
    let finished = Atomic<Bool>(false)
    /// Scrapes answered (for tests and the final line).
    public let served = Atomic<UInt64>(0)

    public init() {}

    /// True when a scrape waits for a sample (the loop then samples and calls `sampled()`).
    @inline(__always)
    public var isRequested: Bool { requested.load(ordering: .relaxed) }

    public func sampled() {
        requested.store(false, ordering: .relaxed)
        generation.add(1, ordering: .releasing)
    }

    public func finish() {
        finished.store(true, ordering: .releasing)
    }
}

/// A small HTTP/1.1 listener (swift-nio) that answers `GET /metrics` with the registry in the
/// Prometheus text format, 405 for another method on /metrics, 404 for any other path.
public final class MetricsServer: Sendable {
    public let endpoint: MetricsEndpoint
    /// The port actually bound (the one asked for, or the free one port 0 got).
    public let boundPort: Int
    let group: MultiThreadedEventLoopGroup
    let channel: any Channel

    /// How long a scrape waits for the command's loop to take a fresh sample before it answers
    /// with the last one.
    public static let sampleWait: TimeAmount = .milliseconds(500)

    /// Binds `endpoint` and serves `registry`, sampled through `exchange`.
    /// - Throws: `MetricsError.portTaken` when another socket holds the port, `.cannotListen` otherwise.
    public init(endpoint: MetricsEndpoint, registry: MetricsRegistry, exchange: ScrapeExchange) throws(MetricsError) {
        self.endpoint = endpoint
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 16)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(registry: registry, exchange: exchange))
                }
            }
        do {
            channel = try bootstrap.bind(host: endpoint.host, port: endpoint.port).wait()
        } catch {
            try? group.syncShutdownGracefully()
            if let io = error as? IOError, io.errnoCode == EADDRINUSE { throw .portTaken(endpoint.description) }
            throw .cannotListen(endpoint.description, "\(error)")
        }
        self.group = group
        boundPort = channel.localAddress?.port ?? endpoint.port
    }

    /// The URL scrapers use.
    public var url: String {
        let host = endpoint.host.contains(":") ? "[\(endpoint.host)]" : endpoint.host
        return "http://\(host):\(boundPort)/metrics"
    }

    /// Closes the listener and its connections.
    public func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }
}

final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let registry: MetricsRegistry
    let exchange: ScrapeExchange
    private var head: HTTPRequestHead?

    init(registry: MetricsRegistry, exchange: ScrapeExchange) {
        self.registry = registry
        self.exchange = exchange
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case let .head(h): head = h
        case .body: break
        case .end:
            guard let h = head else { return }
            head = nil
            let path = h.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? h.uri
            if path != "/metrics" {
                respond(context, h, .notFound, Array("not found: this exporter serves GET /metrics only\n".utf8), type: "text/plain; charset=utf-8")
            } else if h.method != .GET {
                respond(context, h, .methodNotAllowed, Array("method \(h.method.rawValue) not allowed: GET /metrics\n".utf8),
                        type: "text/plain; charset=utf-8", extra: [("Allow", "GET")])
            } else {
                awaitSample(context, h, since: exchange.generation.load(ordering: .acquiring),
                            deadline: NIODeadline.now() + MetricsServer.sampleWait)
            }
        }
    }

    /// Asks the command's loop for a fresh sample and answers once it is taken (or at the deadline).
    private func awaitSample(_ context: ChannelHandlerContext, _ h: HTTPRequestHead, since: UInt64, deadline: NIODeadline) {
        if exchange.finished.load(ordering: .acquiring) || exchange.generation.load(ordering: .acquiring) > since || NIODeadline.now() >= deadline {
            exchange.served.add(1, ordering: .relaxed)
            respond(context, h, .ok, registry.exposition(), type: "text/plain; version=0.0.4; charset=utf-8")
            return
        }
        exchange.requested.store(true, ordering: .relaxed)
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        loop.scheduleTask(in: .milliseconds(1)) {
            let (handler, context) = bound.value
            handler.awaitSample(context, h, since: since, deadline: deadline)
        }
    }

    private func respond(_ context: ChannelHandlerContext, _ request: HTTPRequestHead, _ status: HTTPResponseStatus, _ body: [UInt8],
                         type: String, extra: [(String, String)] = []) {
        var headers = HTTPHeaders([("Content-Type", type), ("Content-Length", String(body.count))])
        for (k, v) in extra { headers.add(name: k, value: v) }
        let keepAlive = request.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
        var buffer = context.channel.allocator.buffer(capacity: body.count)
        buffer.writeBytes(body)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        let done = context.writeAndFlushAndReturnFuture(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}

extension ChannelHandlerContext {
    func writeAndFlushAndReturnFuture(_ data: NIOAny) -> EventLoopFuture<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        writeAndFlush(data, promise: promise)
        return promise.futureResult
    }
}
