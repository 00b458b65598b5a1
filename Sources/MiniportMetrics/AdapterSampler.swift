import CoreMetrics
import NDIS

/// Copies one adapter's counters into the registry: the statistics OID (the miniport's own 64-bit
/// counters), the framework's drop count and outstanding NBLs. Runs on the thread that owns the
/// adapter's loop, between two polls, so the datapath is not touched: nothing is counted twice and
/// nothing per packet is added.
///
/// Adapter families (label `adapter`): received/transmitted frames and bytes, receive drops
/// (hardware), framework drops, receive and transmit errors, RESOURCES indications, outstanding NBLs.
/// Queue families (labels `adapter`, `queue` = rxq<id>): frames, bytes, drops, errors, RESOURCES
/// indications, outstanding NBLs, ring fill (buffers posted) and ring size.
public final class AdapterSampler {
    public let adapter: Adapter
    public let name: String
    let registry: MetricsRegistry

    let receivedFrames, receivedBytes, transmittedFrames, transmittedBytes: SampledCounter
    let receiveDrops, frameworkDrops, receiveErrors, transmitErrors, resources: SampledCounter
    let outstanding: CoreMetrics.Gauge

    final class QueueSeries {
        let frames, bytes, drops, errors, resources: SampledCounter
        let outstanding, ringFill, ringSize: CoreMetrics.Gauge
        init(_ r: MetricsRegistry, _ labels: [(String, String)]) {
            func c(_ n: String, _ h: String) -> SampledCounter { SampledCounter(r.counter(n, help: h, labels: labels)) }
            func g(_ n: String, _ h: String) -> CoreMetrics.Gauge { r.gauge(n, help: h, labels: labels) }
            frames = c("miniport_queue_received_frames_total", "Frames the miniport indicated on the receive queue.")
            bytes = c("miniport_queue_received_bytes_total", "Bytes of the frames indicated on the receive queue.")
            drops = c("miniport_queue_drops_total", "Frames the queue's ring dropped (no NBL free).")
            errors = c("miniport_queue_errors_total", "Receive write-backs of the queue that failed validation.")
            resources = c("miniport_queue_resources_indications_total", "Frames of the queue indicated with NDIS_RECEIVE_FLAGS_RESOURCES (buffers short).")
            outstanding = g("miniport_queue_outstanding_nbls", "NBLs of the queue indicated to protocols and not yet returned.")
            ringFill = g("miniport_queue_ring_fill", "Receive buffers posted to the queue's hardware ring.")
            ringSize = g("miniport_queue_ring_size", "Descriptors of the queue's receive ring.")
        }
    }
    private var queues: [UInt16: QueueSeries] = [:]

    public init(adapter: Adapter, name: String, registry: MetricsRegistry) {
        self.adapter = adapter
        self.name = name
        self.registry = registry
        let labels = [("adapter", name)]
        func c(_ n: String, _ h: String) -> SampledCounter { SampledCounter(registry.counter(n, help: h, labels: labels)) }
        receivedFrames = c("miniport_adapter_received_frames_total", "Good frames the adapter received (hardware counter).")
        receivedBytes = c("miniport_adapter_received_bytes_total", "Good octets the adapter received (hardware counter).")
        transmittedFrames = c("miniport_adapter_transmitted_frames_total", "Good frames the adapter transmitted (hardware counter).")
        transmittedBytes = c("miniport_adapter_transmitted_bytes_total", "Good octets the adapter transmitted (hardware counter).")
        receiveDrops = c("miniport_adapter_receive_drops_total", "Frames the hardware dropped for lack of a buffer or descriptor.")
        frameworkDrops = c("miniport_adapter_framework_drops_total", "Frames the NDIS framework discarded (no queue, no binding wants them, paused, copy pool dry).")
        receiveErrors = c("miniport_adapter_receive_errors_total", "Frames received with errors (CRC, length, bad write-back).")
        transmitErrors = c("miniport_adapter_transmit_errors_total", "Sends the miniport refused or failed.")
        resources = c("miniport_adapter_resources_indications_total", "Frames indicated with NDIS_RECEIVE_FLAGS_RESOURCES on all queues.")
        outstanding = registry.gauge("miniport_adapter_outstanding_nbls", help: "NBLs indicated to protocols and not yet returned.", labels: labels)
    }

    /// Reads the adapter's counters into the metrics. Call it where the adapter's loop runs.
    public func sample() {
        let report: StatisticsReport
        if case let .statistics(r)? = try? adapter.request(.statistics) {
            report = r
        } else {
            // Halted or gone: the framework's own counts are still there.
            frameworkDrops.update(adapter.frameworkDrops)
            outstanding.record(adapter.outstandingNetBufferLists)
            return
        }
        let g = report.global
        receivedFrames.update(g.receivedFrames)
        receivedBytes.update(g.receivedBytes)
        transmittedFrames.update(g.transmittedFrames)
        transmittedBytes.update(g.transmittedBytes)
        receiveDrops.update(g.receiveDrops)
        frameworkDrops.update(report.frameworkDrops)
        receiveErrors.update(g.receiveErrors)
        transmitErrors.update(g.transmitErrors)
        resources.update(report.queues.values.reduce(0) { $0 &+ $1.resourcesIndications })
        outstanding.record(adapter.outstandingNetBufferLists)
        for (id, s) in report.queues.sorted(by: { $0.key < $1.key }) {
            let series = queues[id] ?? {
                let made = QueueSeries(registry, [("adapter", name), ("queue", "rxq\(id)")])
                queues[id] = made
                return made
            }()
            series.frames.update(s.receivedFrames)
            series.bytes.update(s.receivedBytes)
            series.drops.update(s.receiveDrops)
            series.errors.update(s.receiveErrors)
            series.resources.update(s.resourcesIndications)
            series.outstanding.record(adapter.outstandingNetBufferLists(queue: ReceiveQueueID(id)))
            series.ringFill.record(Int64(clamping: s.ringFill))
            series.ringSize.record(Int64(clamping: s.ringSize))
        }
    }
}

/// The metrics of one command run: the registry, the listener, the adapters it samples and the
/// figures the command prints at the end.
///
/// The command creates it before its loop, calls ``service()`` once per loop iteration (a relaxed
/// atomic load unless a scrape waits), ``finish()`` after the loop (the final sample: the figures
/// then equal the command's final output), and ``stop()`` before it exits.
public final class MetricsSession {
    public let command: String
    public let registry = MetricsRegistry()
    public let exchange = ScrapeExchange()
    public let server: MetricsServer
    var samplers: [AdapterSampler] = []
    var figureSources: [() -> [CommandFigure]] = []
    var figureCounters: [String: SampledCounter] = [:]
    var figureGauges: [String: CoreMetrics.Gauge] = [:]
    public private(set) var samples = 0

    /// Listens on `endpoint`.
    /// - Throws: `MetricsError` when the endpoint is taken or cannot be bound.
    public init(command: String, endpoint: MetricsEndpoint) throws(MetricsError) {
        self.command = command
        server = try MetricsServer(endpoint: endpoint, registry: registry, exchange: exchange)
    }

    /// Samples `adapter`'s counters under the label `adapter=name`.
    public func watch(_ adapter: Adapter, name: String) {
        samplers.append(AdapterSampler(adapter: adapter, name: name, registry: registry))
    }

    /// Adds figures the command reports (its final JSON's numbers), read at every sample.
    public func report(_ figures: @escaping () -> [CommandFigure]) {
        figureSources.append(figures)
    }

    /// Takes a sample if a scrape waits for one. Call once per loop iteration.
    @inline(__always)
    public func service() {
        if exchange.isRequested { sample() }
    }

    /// Reads every adapter and figure into the registry now.
    public func sample() {
        for s in samplers { s.sample() }
        for source in figureSources {
            for f in source() { record(f) }
        }
        samples += 1
        exchange.sampled()
    }

    func record(_ f: CommandFigure) {
        let base = "miniport_\(command)_\(f.key)"
        let key = base + f.labels.map { "|\($0.0)=\($0.1)" }.joined()
        if f.isGauge {
            let g = figureGauges[key] ?? registry.gauge(base, help: f.help, labels: f.labels)
            figureGauges[key] = g
            g.record(Int64(clamping: f.value))
        } else {
            let c = figureCounters[key] ?? SampledCounter(registry.counter(base + "_total", help: f.help, labels: f.labels))
            figureCounters[key] = c
            c.update(f.value)
        }
    }

    /// The final sample: from now on scrapes are answered at once from it.
    public func finish() {
        sample()
        exchange.finish()
    }

    public func stop() {
        server.stop()
    }
}
