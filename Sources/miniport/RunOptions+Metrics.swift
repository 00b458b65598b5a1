import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import MiniportMetrics
import MiniportRegistry
import Protocols
import NDIS

/// `--metrics` and `--metrics-linger` of the long-running commands: options of ``RunOptions`` (the
/// one option group capture, forward, respond, pktgen, demo and stack share).
extension RunOptions {
    /// Starts the metrics listener when `--metrics` was given; prints where it listens (stderr).
    /// - Throws: one line naming the value or the port taken.
    func startMetrics(command: String) throws(CLIError) -> CommandMetrics? {
        guard let metrics else { return nil }
        guard metricsLinger >= 0, metricsLinger.isFinite, metricsLinger <= maximumSeconds else {
            throw .input(.badNumber(option: "--metrics-linger", value: String(metricsLinger), range: "seconds, 0 or more and at most 1000000000"))
        }
        let endpoint: MetricsEndpoint
        do { endpoint = try MetricsEndpoint.parse(metrics) } catch { throw .input(.missing(error.description)) }
        let session: MetricsSession
        do { session = try MetricsSession(command: command, endpoint: endpoint) } catch { throw .failed(error.description) }
        printError("miniport: metrics on \(session.server.url)")
        return CommandMetrics(session: session, linger: metricsLinger)
    }
}

/// A command's metrics: the session plus the end-of-run steps the commands share.
final class CommandMetrics {
    let session: MetricsSession
    let linger: Double

    init(session: MetricsSession, linger: Double) {
        self.session = session
        self.linger = linger
    }

    /// Samples `opened`'s adapter under its address (`model0`, `0000:03:00.0`).
    func watch(_ opened: OpenedAdapter) {
        session.watch(opened.adapter, name: opened.address)
    }

    /// The command's own final figures, read at every sample.
    func report(_ figures: @escaping () -> [CommandFigure]) {
        session.report(figures)
    }

    /// Once per loop iteration: a sample if a scrape waits.
    @inline(__always)
    func service() { session.service() }

    /// After the loop, before the adapters halt: the final sample, equal to what the command prints.
    func finish() { session.finish() }

    /// After the command printed its figures: lingers if asked (Ctrl-C ends it), then closes the listener.
    func stop() {
        if linger > 0 && !closed {
            fflush(nil) // every output stream: the final figures reach a pipe before the linger
            let end = Clock.monotonicNanoseconds() + UInt64(linger * 1e9)
            while !Stop.isRequested && Clock.monotonicNanoseconds() < end { sleep(nanoseconds: 10_000_000) }
        }
        close()
    }

    private var closed = false

    /// Closes the listener at once (error paths; `defer` in the commands). Idempotent.
    func close() {
        guard !closed else { return }
        closed = true
        session.stop()
    }
}

extension QueueReport {
    /// The per-queue figures and drops of the JSON `demo` and `capture` print, as metrics:
    /// `miniport_<command>_frames_total{queue="rxq<id>"}`, `_bytes_total`, `_drops_total`.
    func figures(help what: String) -> [CommandFigure] {
        var out: [CommandFigure] = []
        for q in queues {
            let labels = [("queue", "rxq\(q.id)")]
            out.append(CommandFigure("frames", q.frames, labels: labels, help: "Frames \(what), per receive queue (the final JSON's queues[].frames)."))
            out.append(CommandFigure("bytes", q.bytes, labels: labels, help: "Bytes \(what), per receive queue (the final JSON's queues[].bytes)."))
        }
        out.append(CommandFigure("drops", drops, help: "Frames lost: hardware, framework and not written (the final JSON's drops)."))
        return out
    }
}
