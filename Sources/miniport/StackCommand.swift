import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import LwIPStack
import MiniportRegistry
import Protocols

/// `miniport stack`: lwIP on the NIC, through the C API (Sources/LwIPStack, Docs/C-API.md).
struct Stack: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the lwIP TCP/IP stack on the NIC: ARP, ping, TCP echo, discard and HTTP servers.",
        discussion: """
        lwIP 2.1 (its tcpip thread) on a Miniport adapter through the C API: an lwIP netif written in C \
        against miniport.h, receiving zero-copy (each frame a pbuf over its NET_BUFFER_LIST, returned \
        when lwIP frees it). It answers ARP and ping for --ip, echoes TCP on --echo, discards TCP on \
        --discard (RFC 863: iperf 2 measures against it) and serves a page naming the device and queue \
        on --http. Prints one line when ready; runs until Ctrl-C or SIGTERM (or --seconds), then prints \
        its statistics (frames, TCP segments, retransmissions) and halts. With --model --tap IFNAME \
        the model's wire is a Linux TAP, so Linux's own ping, curl and iperf are the clients.
        """)

    @Option(help: "PCI address of a NIC bound to vfio-pci (dddd:bb:dd.f); with --model, names the model NIC.")
    var device: String?

    @Option(help: ArgumentHelp("The stack's IPv4 address and prefix length.", valueName: "A.B.C.D/N"))
    var ip: String

    @Option(help: ArgumentHelp("The default gateway.", valueName: "A.B.C.D"))
    var gateway: String?

    @Option(help: ArgumentHelp("TCP port of the echo server.", valueName: "port"))
    var echo: Int?

    @Option(help: ArgumentHelp("TCP port of the discard server (RFC 863).", valueName: "port"))
    var discard: Int?

    @Option(help: ArgumentHelp("TCP port of the HTTP/1.1 server.", valueName: "port"))
    var http: Int?

    @Option(help: "Stop after S seconds.")
    var seconds: Double?

    @OptionGroup var common: CommonOptions

    static func parsePort(_ value: Int?, option: String) throws(CLIError) -> Int32 {
        guard let value else { return 0 }
        guard (1...65535).contains(value) else { throw .input(.badNumber(option: option, value: String(value), range: "a TCP port from 1 to 65535")) }
        return Int32(value)
    }

    static func parseAddress(_ text: String) throws(CLIError) -> (IPv4Address, UInt32) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let a = IPv4Address(String(parts[0])), let n = UInt32(parts[1]), n >= 1, n <= 32 else {
            throw .input(.missing("bad --ip '\(text)': write an IPv4 address and prefix length like 198.51.100.2/24"))
        }
        return (a, n)
    }

    func run() throws {
        _ = Log.setUp(verbose: common.verbose)
        let (address, prefix) = try Stack.parseAddress(ip)
        var gw: UInt32 = 0
        if let gateway {
            guard let g = IPv4Address(gateway) else { throw CLIError.input(.badIPv4(gateway)) }
            gw = g.value
        }
        let ports = (try Stack.parsePort(echo, option: "--echo"), try Stack.parsePort(discard, option: "--discard"), try Stack.parsePort(http, option: "--http"))
        let given = [ports.0, ports.1, ports.2].filter { $0 != 0 }
        if Set(given).count != given.count {
            throw CLIError.input(.missing("--echo, --discard and --http share a port: give each server its own port"))
        }
        let duration = try parseSeconds(seconds)
        if common.tap != nil && !common.model {
            throw CLIError.input(.missing("--tap IFNAME connects the hardware model's wire to a Linux TAP: add --model (a device's wire is its own cable)"))
        }
        if !common.model && device == nil {
            throw CLIError.input(.missing("--device ADDR is needed (a PCI address bound to vfio-pci), or --model for the hardware model"))
        }
        try checkAddresses(device)
        if common.json { throw CLIError.input(.missing("stack prints its statistics as text; drop --json")) }
        let code: Int32 = device.withOptionalCString { dev in
            common.tap.withOptionalCString { tap in
                var o = lwip_stack_options()
                o.device = dev
                o.model = common.model ? 1 : 0
                o.tap = tap
                o.ip = address.value
                o.prefix = prefix
                o.gateway = gw
                o.echo_port = ports.0
                o.discard_port = ports.1
                o.http_port = ports.2
                o.seconds = duration.map { Double($0) / 1e9 } ?? 0
                return lwip_stack_run(&o)
            }
        }
        if code != 0 { throw ExitCode(code) }
    }
}

extension Optional where Wrapped == String {
    /// Calls `body` with a C string for the value, or NULL.
    func withOptionalCString<R>(_ body: (UnsafePointer<CChar>?) -> R) -> R {
        switch self {
        case let .some(s): s.withCString { body($0) }
        case .none: body(nil)
        }
    }
}
