import ArgumentParser
import DeviceAccess
import Foundation
import Glibc
import IGB
import IGBModel
import NDIS
import VFIO

/// `igb-transmit`: bring the IGB miniport up through VFIO, write `ready`, wait for the host's
/// transmit plan (DIR/tx-plan.json: frames with the offloads to ask for), send them all through
/// one binding, wait for every completion, and write DIR/igb-transmit.json. The host checks the
/// wire byte for byte (checksums and VLAN tags it computes itself).
struct IGBTransmit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "igb-transmit",
        abstract: "Transmit the host's frame plan through the IGB miniport (checksum offload, VLAN insertion) and report completions."
    )

    @Option(help: "PCI address of an 82576/I350 function bound to vfio-pci.")
    var device: String?

    @Flag(help: "Run on the 82576 hardware model instead (needs --plan); the wire goes to DIR/model-wire.json.")
    var model = false

    @Option(help: "Model: the transmit plan (tx-plan.json format) to send.")
    var plan: String?

    @Option(help: "Model: fidelity, qemu or datasheet.")
    var fidelity: String = "qemu"

    @Option(help: "Model: its permanent MAC address.")
    var mac: String = "52:54:00:4d:50:01"

    @Option(help: "Directory for ready and igb-transmit.json; tx-plan.json and host-done are awaited there.")
    var out: String

    @Option(help: "Seconds to wait for the plan and the host at most.")
    var seconds: Double = 30

    /// One frame of the host's plan.
    struct Planned: Codable {
        /// The frame as handed to the miniport (hex); checksums to offload may be anything.
        var bytes: String
        /// Offloads: ipv4 (header checksum), udp, tcp.
        var offload: [String] = []
        var vlan: Int?
        var priority: Int?
    }

    struct Result: Codable {
        var ok = false
        var errors: [String] = []
        var mac = ""
        var planned = 0
        var sent = 0
        var completions: [String: Int] = [:]
        var successes = 0
        /// Model: the frames that left on its wire, hex.
        var wire: [String]?
        var sendMilliseconds = 0.0
        var transmitCounters: [String: UInt64] = [:]
        var statistics: [String: UInt64] = [:]
        var halt = ""
        var resourcesAfterClose: String?
        var milliseconds = 0.0
    }

    func run() throws {
        var result = Result()
        let start = ContinuousClock.now
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        do {
            if model {
                try transmitOnModel(&result)
            } else {
                guard let device else { throw ValidationError("give --device ADDRESS (or --model --plan FILE)") }
                let function = try VFIODevice.open(device)
                if function.supportsReset { try function.reset() }
                try transmit(function, &result)
                closeAndCheck(function, &result.resourcesAfterClose, &result.errors)
            }
        } catch {
            result.errors.append("\(error)")
        }
        result.milliseconds = FrameRecorder.milliseconds(ContinuousClock.now - start)
        result.ok = result.errors.isEmpty
        try writeJSON(result, to: out, name: "igb-transmit.json")
        print("igb-transmit: sent \(result.sent) of \(result.planned), completions \(result.completions)")
        print(result.ok ? "igb-transmit: ok" : "igb-transmit: FAILED\n" + result.errors.map { "  " + $0 }.joined(separator: "\n"))
        if !result.ok { throw ExitCode(1) }
    }

    /// The same plan through the same driver on the model (the differential's transmit side).
    private func transmitOnModel(_ result: inout Result) throws {
        guard let address = MACAddress(mac) else { throw ValidationError("bad --mac \(mac)") }
        guard let plan else { throw ValidationError("--model needs --plan FILE") }
        let function = try IGBModel.makeFunction(configuration: .init(
            permanentAddress: address.array, fidelity: fidelity == "datasheet" ? .datasheet : .qemu, linkUpDelayNanoseconds: 2_000_000))
        let model = function.model
        model.start()
        var running = true
        defer { if running { model.stop() } }
        try transmit(function, &result, planFile: plan, started: { model.stop(); running = false }, step: { model.step() })
        result.wire = model.takeTransmitted().map { FrameRecorder.hex($0) }
        if !model.faults.isEmpty { result.errors.append("IOMMU faults on the model: \(model.faults)") }
    }

    private func transmit<F: PCIFunction>(_ function: F, _ result: inout Result, planFile: String? = nil,
                                          started: () -> Void = {}, step: () -> Void = {}) throws {
        var config = IGBConfiguration()
        config.linkTimeout = .seconds(20)
        let (adapter, miniport) = try IGBMiniport.makeAdapterWithMiniport(function: function, configuration: config)
        started()
        result.mac = miniport.permanentAddress.description
        let recorder = FrameRecorder()
        let binding = try adapter.openBinding(recorder)
        try Data().write(to: URL(fileURLWithPath: out).appendingPathComponent("ready"))

        let plan = try planFile.map { try JSONDecoder().decode([Planned].self, from: Data(contentsOf: URL(fileURLWithPath: $0))) } ?? waitForPlan()
        result.planned = plan.count
        let pool = try binding.makeSendPool(count: max(1, plan.count), bufferSize: 2048)
        let chain = pool.allocate(count: plan.count)
        guard chain.count == plan.count else { throw ScenarioError("the send pool gave \(chain.count) NBLs for \(plan.count) frames") }
        var i = 0
        var bad: [String] = []
        chain.forEach { nbl in
            let p = plan[i]
            guard let bytes = FrameRecorder.bytes(hex: p.bytes) else { bad.append("frame \(i): bad hex"); i += 1; return }
            bytes.withUnsafeBytes { _ = SendPool.fill(nbl, with: $0) }
            var info = NetBufferListInfo()
            for o in p.offload {
                switch o {
                case "ipv4": info.checksum.insert(.transmitIPv4)
                case "udp": info.checksum.insert(.transmitUDP)
                case "tcp": info.checksum.insert(.transmitTCP)
                default: bad.append("frame \(i): unknown offload \(o)")
                }
            }
            if let v = p.vlan {
                info.vlanPresent = true
                info.vlanID = UInt16(v)
                info.userPriority = UInt8(p.priority ?? 0)
            }
            nbl.info = info
            i += 1
        }
        if !bad.isEmpty { throw ScenarioError(bad.joined(separator: "; ")) }
        try? PCAP.write(URL(fileURLWithPath: out).appendingPathComponent("guest-sent.pcap").path,
                        plan.compactMap { FrameRecorder.bytes(hex: $0.bytes) })
        let t = ContinuousClock.now
        binding.send(chain)
        result.sent = plan.count
        let deadline = ContinuousClock.now.advanced(by: .seconds(10))
        while recorder.completed < plan.count && ContinuousClock.now < deadline {
            step()
            _ = adapter.poll(budget: 64)
        }
        result.sendMilliseconds = FrameRecorder.milliseconds(ContinuousClock.now - t)
        result.completions = recorder.sendCompletions
        if recorder.completed < plan.count { result.errors.append("only \(recorder.completed) of \(plan.count) sends completed") }
        result.successes = recorder.successes
        if recorder.successes != plan.count {
            result.errors.append("completions \(recorder.sendCompletions), expected \(plan.count) success")
        }
        // The host checks the wire; stay up (and keep the link) until it is done.
        let until = ContinuousClock.now.advanced(by: .milliseconds(Int(seconds * 1000)))
        while planFile == nil && !hostDone(out) && ContinuousClock.now < until {
            _ = adapter.poll(budget: 64)
            usleep(20_000)
        }
        let c = miniport.transmitCounters
        result.transmitCounters = ["frames": c.frames, "bytes": c.bytes, "completed": c.completed, "rejected": c.rejected,
                                   "bounced": c.bounced, "contextDescriptors": c.contextDescriptors]
        if case let .statistics(report) = try adapter.request(.statistics) {
            result.statistics = ["txFrames": report.global.transmittedFrames, "txBytes": report.global.transmittedBytes,
                                 "txErrors": report.global.transmitErrors]
        }
        binding.close()
        let report = adapter.halt()
        result.halt = report.description
        if !report.isClean { result.errors.append("halt was not clean: \(report)") }
    }

    private func waitForPlan() throws -> [Planned] {
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(Int(seconds * 1000)))
        let dir = URL(fileURLWithPath: out)
        while ContinuousClock.now < deadline {
            if let names = try? FileManager.default.contentsOfDirectory(atPath: out), names.contains("tx-plan.json") {
                let data = try Data(contentsOf: dir.appendingPathComponent("tx-plan.json"))
                return try JSONDecoder().decode([Planned].self, from: data)
            }
            if hostDone(out) { break }
            usleep(20_000)
        }
        throw ScenarioError("the host wrote no tx-plan.json within \(seconds) s")
    }
}
