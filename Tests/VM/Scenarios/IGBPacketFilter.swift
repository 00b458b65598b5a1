import ArgumentParser
import DeviceAccess
import Foundation
import Glibc
import IGB
import NDIS
import VFIO

/// `igb-packet-filter`: OID_GEN_CURRENT_PACKET_FILTER walked setting by setting on a NIC bound to
/// vfio-pci (issue 12 item 2). Brings the IGB miniport up Paused, binds a recorder, sets the
/// multicast list (one group) and one VMQ queue with a MAC filter, restarts; then for each
/// setting: sets it, writes DIR/step-N (the filter's raw value), waits for the host's DIR/sent-N
/// (the host sent its mix, each frame tagged with N), receives for a while and records what
/// arrived. Writes DIR/igb-packet-filter.json: per step the filter and every frame received with
/// its queue, plus the framework's packet-filter rejects and the halt report.
struct IGBPacketFilter: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "igb-packet-filter",
        abstract: "Every NDIS packet filter setting in turn on the IGB miniport through VFIO; what each delivered, per queue."
    )

    @Option(help: "PCI address of an 82576/I350 function bound to vfio-pci.")
    var device: String

    @Option(help: "Directory for step-N files and igb-packet-filter.json; sent-N is awaited there.")
    var out: String

    @Option(help: "The VMQ queue's MAC filter.")
    var queueMAC: String = "02:4d:50:00:0a:07"

    @Option(help: "The multicast list's one group.")
    var group: String = "01:00:5e:00:00:01"

    /// The settings in order (each an NDIS_PACKET_TYPE_* combination).
    static let settings: [PacketFilter] = [
        [], [.directed], [.broadcast], [.multicast], [.allMulticast], [.promiscuous],
        [.directed, .broadcast], [.directed, .multicast, .broadcast],
    ]

    struct Step: Codable {
        var filter: UInt32
        var frames: [ReceivedFrame] = []
        var packetFilterRejects: UInt64 = 0
    }

    struct Result: Codable {
        var steps: [Step] = []
        var queue = 0
        var mac = ""
        var halt = ""
        var haltClean = false
        var errors: [String] = []
        var ok = false
    }

    func run() throws {
        var result = Result()
        let start = ContinuousClock.now
        do {
            let function = try VFIODevice.open(device)
            if function.supportsReset { try function.reset() }
            try walk(function, &result, start: start)
            var resources: String?
            closeAndCheck(function, &resources, &result.errors)
        } catch {
            result.errors.append("\(error)")
        }
        result.ok = result.errors.isEmpty
        try writeJSON(result, to: out, name: "igb-packet-filter.json")
        for s in result.steps { print("igb-packet-filter: filter 0x\(String(s.filter, radix: 16)): \(s.frames.count) frame(s)") }
        print(result.ok ? "igb-packet-filter: ok" : "igb-packet-filter: FAILED\n" + result.errors.map { "  " + $0 }.joined(separator: "\n"))
        if !result.ok { throw ExitCode(1) }
    }

    func walk(_ function: VFIODevice, _ result: inout Result, start: ContinuousClock.Instant) throws {
        var config = IGBConfiguration()
        config.linkTimeout = .seconds(20)
        let (adapter, miniport) = try IGBMiniport.makeAdapterWithMiniport(function: function, configuration: config, start: false)
        result.mac = miniport.permanentAddress.description
        let recorder = FrameRecorder(start: start)
        let binding = try adapter.openBinding(recorder)
        guard let groupMAC = MACAddress(group), let mac = MACAddress(queueMAC) else { throw ScenarioError("bad --group or --queue-mac") }
        _ = try binding.request(.setMulticastList([groupMAC]))
        guard case let .queueAllocated(q) = try binding.request(.allocateQueue(ReceiveQueueParameters(numberOfBuffers: 128))) else {
            throw ScenarioError("allocateQueue answered without a queue id")
        }
        _ = try binding.request(.queueAllocationComplete([q]))
        guard case let .filterSet(f) = try binding.request(.setFilter(ReceiveFilterParameters(queue: q, tests: [.macDestination(mac)]))) else {
            throw ScenarioError("setFilter answered without a filter id")
        }
        result.queue = Int(q.rawValue)
        try adapter.restart()
        for (n, setting) in Self.settings.enumerated() {
            _ = try binding.request(.setPacketFilter(setting))
            let before = recorder.locked { recorder.frames.count }
            let rejectsBefore = adapter.packetFilterRejects
            try Data("\(setting.rawValue)\n".utf8).write(to: URL(fileURLWithPath: out).appendingPathComponent("step-\(n)"))
            // Receive until the host says its mix is out, then a little longer for the last frames.
            let sent = URL(fileURLWithPath: out).appendingPathComponent("sent-\(n)").path
            let deadline = ContinuousClock.now.advanced(by: .seconds(30))
            while access(sent, F_OK) != 0 && ContinuousClock.now < deadline { poll(adapter, for: .milliseconds(20)) }
            guard access(sent, F_OK) == 0 else { throw ScenarioError("the host never wrote sent-\(n)") }
            poll(adapter, for: .milliseconds(700))
            var step = Step(filter: setting.rawValue)
            step.frames = recorder.locked { Array(recorder.frames[before...]) }
            step.packetFilterRejects = adapter.packetFilterRejects - rejectsBefore
            result.steps.append(step)
        }
        _ = try binding.request(.clearFilter(f))
        _ = try binding.request(.freeQueue(q))
        binding.close()
        let report = adapter.halt()
        result.halt = report.description
        result.haltClean = report.isClean
        if !report.isClean { result.errors.append("halt was not clean: \(report)") }
        if function.dma.liveRegionCount != 0 { result.errors.append("\(function.dma.liveRegionCount) DMA regions left after halt") }
    }

    func poll(_ adapter: Adapter, for duration: Duration) {
        let until = ContinuousClock.now.advanced(by: duration)
        while ContinuousClock.now < until {
            if adapter.poll(budget: 64) == 0 { usleep(200) }
        }
    }
}
