import CoreMetrics
import NDIS
import Prometheus
import Synchronization

/// A Prometheus registry fed through swift-metrics, with a `# HELP` line for every family.
///
/// swift-prometheus' own swift-metrics factory registers every metric without help text, and
/// `promtool check metrics` asks for one; this factory passes the help of each name (from the
/// table the samplers fill) to the registry. Everything else is swift-prometheus.
public final class MetricsRegistry: @unchecked Sendable {
    public let prometheus = PrometheusCollectorRegistry()
    /// Help per metric name; written once when a family is first made (main thread), read by the factory.
    private let help = Mutex<[String: String]>([:])

    public init() {}

    /// The swift-metrics factory that makes this registry's metrics.
    public var factory: any MetricsFactory { HelpfulFactory(owner: self) }

    func describe(_ name: String, _ text: String) {
        help.withLock { $0[name] = text }
    }

    func help(of name: String) -> String {
        help.withLock { $0[name] } ?? name.replacingUnderscores()
    }

    /// A swift-metrics counter of this registry.
    public func counter(_ name: String, help text: String, labels: [(String, String)]) -> CoreMetrics.Counter {
        describe(name, text)
        return CoreMetrics.Counter(label: name, dimensions: labels, factory: factory)
    }

    /// A swift-metrics gauge of this registry.
    public func gauge(_ name: String, help text: String, labels: [(String, String)]) -> CoreMetrics.Gauge {
        describe(name, text)
        return CoreMetrics.Gauge(label: name, dimensions: labels, factory: factory)
    }

    /// The Prometheus text exposition format (version 0.0.4) of every metric.
    public func exposition() -> [UInt8] {
        var buffer: [UInt8] = []
        prometheus.emit(into: &buffer)
        return buffer
    }
}

extension String {
    func replacingUnderscores() -> String { String(map { $0 == "_" ? " " : $0 }) }
}

struct HelpfulFactory: MetricsFactory {
    let owner: MetricsRegistry

    func descriptor(_ label: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: label, unitName: "", helpText: owner.help(of: label))
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        owner.prometheus.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }
    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        owner.prometheus.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        // Only gauges are made here (aggregate: false); a histogram would need buckets.
        owner.prometheus.makeGauge(descriptor: descriptor(label), labels: dimensions)
    }
    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        owner.prometheus.makeGauge(descriptor: descriptor(label), labels: dimensions)
    }
    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        owner.prometheus.makeDurationHistogram(descriptor: descriptor(label), labels: dimensions,
                                               buckets: [.milliseconds(1), .milliseconds(10), .milliseconds(100), .seconds(1)])
    }
    func destroyCounter(_ handler: any CounterHandler) {
        if let c = handler as? Prometheus.Counter { owner.prometheus.unregisterCounter(c) }
    }
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        if let c = handler as? Prometheus.Counter { owner.prometheus.unregisterCounter(c) }
    }
    func destroyRecorder(_ handler: any RecorderHandler) {
        if let g = handler as? Prometheus.Gauge { owner.prometheus.unregisterGauge(g) }
    }
    func destroyMeter(_ handler: any MeterHandler) {
        if let g = handler as? Prometheus.Gauge { owner.prometheus.unregisterGauge(g) }
    }
    func destroyTimer(_ handler: any TimerHandler) {
        if let h = handler as? DurationHistogram { owner.prometheus.unregisterDurationHistogram(h) }
    }
}

/// A monotonic counter fed from an absolute reading: each sample adds what grew since the last.
/// (swift-metrics counters only go up by increments; the adapters keep absolute 64-bit counts.)
public final class SampledCounter {
    let counter: CoreMetrics.Counter
    private var last: UInt64 = 0

    init(_ counter: CoreMetrics.Counter) { self.counter = counter }

    /// Sets the counter to `value` (a reading lower than the last is ignored: counters never go back).
    public func update(_ value: UInt64) {
        guard value > last else { return }
        counter.increment(by: Int64(clamping: value - last))
        last = value
    }
}

/// One figure a command reports in its final JSON, exported as `miniport_<command>_<key>_total`
/// (or without `_total` for a gauge) with the given labels, so the scrape and the JSON line up.
public struct CommandFigure {
    public var key: String
    public var labels: [(String, String)]
    public var value: UInt64
    public var help: String
    public var isGauge: Bool
    public init(_ key: String, _ value: UInt64, labels: [(String, String)] = [], help: String, gauge: Bool = false) {
        self.key = key
        self.value = value
        self.labels = labels
        self.help = help
        self.isGauge = gauge
    }
}
