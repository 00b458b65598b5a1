import ArgumentParser
import MiniportRegistry
import Logging
import NDIS
import Protocols

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a NIC's link, MAC addresses, capabilities, queues, filters and statistics.",
        discussion: "Opens the NIC (or the model with --model), asks it through NDIS requests and closes it again.")

    @Option(help: "PCI address of a NIC bound to vfio-pci (dddd:bb:dd.f); with --model, names the model NIC.")
    var device: String?

    @OptionGroup var common: CommonOptions

    func run() throws {
        let logger = Log.setUp(verbose: common.verbose)
        let opened = try AdapterFactory.open(device: device, model: common.model, nic: common.nic, logger: logger, tap: common.tap)
        defer { opened.close() }
        let a = opened.adapter
        guard let attrs = a.attributes else { throw CLIError.failed("\(opened.address) has no attributes after initialize") }
        func ask(_ r: OIDRequest) throws(CLIError) -> OIDResponse {
            do { return try a.request(r) } catch { throw .adapter("asking \(opened.address)", error) }
        }
        guard case let .linkState(link) = try ask(.linkState),
              case let .currentCapabilities(caps) = try ask(.currentCapabilities),
              case let .queues(queues) = try ask(.enumerateQueues),
              case let .statistics(stats) = try ask(.statistics) else { throw CLIError.failed("unexpected answer from \(opened.address)") }
        var filters: [(UInt16, [ReceiveFilter])] = []
        for q in [ReceiveQueueID.default] + queues.map(\.id) {
            if case let .filters(f) = try ask(.enumerateFilters(q)) { filters.append((q.rawValue, f)) }
        }
        let hw = caps.hardware
        if common.json {
            let fields = hw.supportedFields.map(\.rawValue).sorted().map { "\"\($0)\"" }.joined(separator: ", ")
            let qs = filters.map { q, f in
                "{\"id\": \(q), \"default\": \(q == 0), \"filters\": [\(f.map { "\"\($0.summary)\"" }.joined(separator: ", "))]}"
            }.joined(separator: ", ")
            let g = stats.global
            print("""
            {"device": "\(opened.address)", "description": "\(attrs.description)", "link": {"up": \(link.up), "speed": \(link.speedBitsPerSecond), "fullDuplex": \(link.fullDuplex)}, \
            "permanentAddress": "\(attrs.permanentAddress)", "currentAddress": "\(attrs.currentAddress)", "mtu": \(attrs.mtu), \
            "capabilities": {"queues": \(hw.numberOfQueues), "filters": \(hw.maxMACHeaderFilters), "filtersPerQueue": \(hw.maxFiltersPerQueue), "fields": [\(fields)], "lookaheadSplit": \(hw.lookaheadSplitSupported), "rss": \(attrs.supportsRSS)}, \
            "queues": [\(qs)], \
            "statistics": {"receivedFrames": \(g.receivedFrames), "receivedBytes": \(g.receivedBytes), "transmittedFrames": \(g.transmittedFrames), "transmittedBytes": \(g.transmittedBytes), "receiveDrops": \(g.receiveDrops), "receiveErrors": \(g.receiveErrors), "frameworkDrops": \(stats.frameworkDrops)}}
            """)
        } else {
            print("device:        \(opened.address) (\(attrs.description))")
            print("link:          \(link.up ? "up" : "down")\(link.up ? ", \(link.speedBitsPerSecond / 1_000_000) Mb/s, \(link.fullDuplex ? "full" : "half") duplex" : "")")
            print("MAC:           \(attrs.currentAddress) (permanent \(attrs.permanentAddress)), MTU \(attrs.mtu)")
            print("VMQ queues:    \(hw.numberOfQueues) in hardware (+\(caps.numberOfQueues - hw.numberOfQueues) in software), \(hw.maxMACHeaderFilters) filters, \(hw.maxFiltersPerQueue) per queue")
            print("filter fields: \(hw.supportedFields.map(\.rawValue).sorted().joined(separator: ", ")) in hardware; the rest in software")
            print("lookahead split: \(hw.lookaheadSplitSupported ? "\(hw.minLookaheadSplitSize)-\(hw.maxLookaheadSplitSize) bytes" : "no"); RSS: \(attrs.supportsRSS ? "yes" : "no")")
            for (q, f) in filters {
                print("rxq\(q):          \(q == 0 ? "default" : f.map(\.summary).joined(separator: ", "))")
            }
            let g = stats.global
            print("statistics:    rx \(g.receivedFrames) frames / \(g.receivedBytes) bytes, tx \(g.transmittedFrames) frames / \(g.transmittedBytes) bytes, drops \(g.receiveDrops + stats.frameworkDrops), errors \(g.receiveErrors)")
        }
    }
}
