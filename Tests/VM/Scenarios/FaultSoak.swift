import ArgumentParser
import DeviceAccess
import Foundation
import Glibc
import IGB
import NDIS
import VFIO

/// `fault-soak`: the IGB miniport through VFIO under faults the host causes (Docs/TESTBED.md,
/// "Fault soak"). Steps, each handshaked with the host script through files in --out (the guest
/// writes `at-STEP`, the host answers `STEP-done` holding what it sent):
///   flood      the guest stops polling while the host floods: RX overflow (ring full, then QEMU's backpressure)
///   exhaust    the protocol holds every NBL while frames keep coming: pool exhaustion, then all returned
///   churn      200 x allocate/complete/filter/free of a VMQ queue with NBLs of it outstanding at FREE_QUEUE
///   link       the host pulls the cable (QMP set_link off) and puts it back; sends while down are counted
/// One `event ...` line per step on stdout; counts are judged here and again by the host from the JSON.
/// At exit: halt, close, nothing left (DMA regions, BAR maps, fds).
struct FaultSoak: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fault-soak",
        abstract: "Fault soak on QEMU's igb through VFIO: RX flood, pool exhaustion, queue churn with NBLs outstanding, link down/up.")

    @Option(help: "PCI address of the NIC (bound to vfio-pci).")
    var device: String

    @Option(help: "Directory for the handshake files and fault-soak.json.")
    var out: String

    @Option(help: "Allocate/free cycles of the churn step.")
    var cycles = 200

    static let churnMAC = MACAddress(0x02, 0x4d, 0x50, 0x00, 0x0c, 0x01)

    /// Counts per queue, holds when told to, records link statuses and send completions.
    final class Soak: ProtocolDriver {
        var received: [UInt16: Int] = [:]
        var hold = false
        var holdQueue: UInt16? = nil
        var held = NetBufferListChain()
        var links: [(up: Bool, at: ContinuousClock.Instant)] = []
        var completions: [NDISStatus] = []
        var binding: Binding?
        func bindingOpened(_ binding: Binding) { self.binding = binding }
        func receiveNetBufferLists(_ chain: consuming NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
            received[queue.rawValue, default: 0] += count
            if hold || holdQueue == queue.rawValue { held.append(chain) } else { binding.returnNetBufferLists(chain) }
        }
        func sendNetBufferListsComplete(_ chain: consuming NetBufferListChain, binding: Binding) {
            chain.forEach { completions.append($0.status) }
            binding.freeSendNetBufferLists(chain)
        }
        func status(_ indication: StatusIndication, binding: Binding) {
            if case let .linkState(s) = indication { links.append((s.up, .now)) }
        }
        func returnHeld() -> Int {
            var chain = NetBufferListChain()
            swap(&chain, &held)
            let n = chain.count
            binding?.returnNetBufferLists(chain)
            return n
        }
        var total: Int { received.values.reduce(0, +) }
    }

    struct Result: Codable {
        var events: [String] = []
        var errors: [String] = []
        var flood: [String: Int] = [:]
        var exhaust: [String: Int] = [:]
        var churn: [String: Int] = [:]
        var link: [String: Int] = [:]
        var halt = ""
        var liveDMARegionsAfterHalt = -1
        var resourcesAfterClose: String?
        var ok = false
    }

    func path(_ name: String) -> String { out + "/" + name }
    func touch(_ name: String) { FileManager.default.createFile(atPath: path(name), contents: Data()) }
    /// Waits for the host's `name` file (polling the adapter meanwhile); returns its integer content.
    func waitHost(_ name: String, _ adapter: Adapter, seconds: Double = 60, poll: Bool = true) throws -> Int {
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(Int(seconds * 1000)))
        while ContinuousClock.now < deadline {
            if let d = FileManager.default.contents(atPath: path(name)) {
                return Int(String(decoding: d, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            }
            if poll { _ = adapter.poll(budget: 64) }
            usleep(1000)
        }
        throw ScenarioError("the host did not write \(name) within \(Int(seconds)) s")
    }
    /// Polls until nothing arrives for `quietMs`.
    func drain(_ adapter: Adapter, quietMs: Int = 400) {
        var idleSince = ContinuousClock.now
        while ContinuousClock.now - idleSince < .milliseconds(quietMs) {
            if adapter.poll(budget: 64) > 0 { idleSince = .now } else { usleep(200) }
        }
    }
    func event(_ line: String, _ r: inout Result) {
        print("event " + line)
        fflush(nil)
        r.events.append(line)
    }

    func run() throws {
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        var r = Result()
        do {
            let function = try VFIODevice.open(device)
            if function.supportsReset { try function.reset() }
            do { try soak(function, &r) } catch { r.errors.append("\(error)") }
            closeAndCheck(function, &r.resourcesAfterClose, &r.errors)
            event("exit: DMA regions after halt \(r.liveDMARegionsAfterHalt), after close \(r.resourcesAfterClose ?? "?")", &r)
        } catch {
            r.errors.append("\(error)")
        }
        if r.liveDMARegionsAfterHalt != 0 { r.errors.append("\(r.liveDMARegionsAfterHalt) DMA regions left after halt") }
        r.ok = r.errors.isEmpty
        try writeJSON(r, to: out, name: "fault-soak.json")
        print(r.ok ? "fault-soak: ok" : "fault-soak: FAILED\n" + r.errors.map { "  " + $0 }.joined(separator: "\n"))
        if !r.ok { throw ExitCode(1) }
    }

    func soak(_ function: VFIODevice, _ r: inout Result) throws {
        var config = IGBConfiguration()
        config.linkTimeout = .seconds(20)
        config.watchdogPollInterval = 64
        let (adapter, _) = try IGBMiniport.makeAdapterWithMiniport(function: function, configuration: config, start: false)
        let soak = Soak()
        let binding = try adapter.openBinding(soak)
        _ = try binding.request(.setPacketFilter([.directed, .broadcast]))
        let sendPool = try binding.makeSendPool(count: 64, bufferSize: 2048)
        try adapter.restart()
        touch("ready")

        // 1. RX overflow: not polling while the host floods.
        let before1 = soak.total
        touch("at-flood")
        let sent = try waitHost("flood-done", adapter, poll: false)
        drain(adapter)
        var drops: UInt64 = 0
        if case let .statistics(s) = try adapter.request(.statistics) { drops = s.global.receiveDrops &+ s.global.receiveErrors }
        let got = soak.total - before1
        r.flood = ["sent": sent, "received": got, "nicDrops": Int(drops)]
        event("rx-overflow: host delivered \(sent) frames while the guest did not poll; received \(got), NIC drops \(drops)", &r)
        if got + Int(drops) != sent { r.errors.append("rx-overflow: received \(got) + drops \(drops) != delivered \(sent)") }

        // 2. Pool exhaustion: hold everything.
        soak.hold = true
        let before2 = soak.total
        touch("at-exhaust")
        let sent2 = try waitHost("exhaust-done", adapter)
        drain(adapter)
        let heldCount = soak.held.count
        let outstanding = adapter.outstandingNetBufferLists
        soak.hold = false
        let returned = soak.returnHeld()
        drain(adapter)
        let got2 = soak.total - before2
        touch("at-resume")
        let sent3 = try waitHost("resume-done", adapter)
        drain(adapter)
        let resumed = soak.total - before2 - got2
        r.exhaust = ["sent": sent2, "held": heldCount, "outstandingWhileHeld": outstanding, "returned": returned,
                     "receivedAfterReturn": got2 - heldCount, "resumeSent": sent3, "resumeReceived": resumed,
                     "outstandingAfter": adapter.outstandingNetBufferLists]
        event("pool-exhaustion: held \(heldCount) NBLs (adapter outstanding \(outstanding)) of \(sent2) frames, returned \(returned); then \(resumed) of \(sent3) received", &r)
        if heldCount != outstanding { r.errors.append("pool-exhaustion: held \(heldCount) but the adapter counts \(outstanding) outstanding") }
        if heldCount == 0 || heldCount >= sent2 { r.errors.append("pool-exhaustion: held \(heldCount) of \(sent2): the pool never ran dry") }
        if resumed != sent3 { r.errors.append("pool-exhaustion: after the return \(resumed) of \(sent3) frames arrived") }
        if adapter.outstandingNetBufferLists != 0 { r.errors.append("pool-exhaustion: \(adapter.outstandingNetBufferLists) NBLs outstanding after the return") }

        // 3. Queue churn with NBLs outstanding at FREE_QUEUE; the host streams to churnMAC meanwhile.
        touch("at-churn")
        _ = try waitHost("churn-started", adapter)
        var withOutstanding = 0, pendingFrees = 0, framesOnQueues = 0, failures = 0
        for _ in 0..<cycles {
            do {
                guard case let .queueAllocated(q) = try binding.request(.allocateQueue(ReceiveQueueParameters(numberOfBuffers: 32))) else { failures += 1; continue }
                _ = try binding.request(.queueAllocationComplete([q]))
                _ = try binding.request(.setFilter(ReceiveFilterParameters(queue: q, tests: [.macDestination(Self.churnMAC)])))
                soak.holdQueue = q.rawValue
                let t0 = ContinuousClock.now
                while adapter.outstandingNetBufferLists(queue: q) == 0 && ContinuousClock.now - t0 < .milliseconds(200) {
                    _ = adapter.poll(budget: 64)
                }
                framesOnQueues += soak.received[q.rawValue] ?? 0
                soak.received[q.rawValue] = 0
                if adapter.outstandingNetBufferLists(queue: q) > 0 { withOutstanding += 1 }
                let answer = try binding.request(.freeQueue(q))
                if case .pending = answer { pendingFrees += 1 }
                soak.holdQueue = nil
                _ = soak.returnHeld()
                _ = adapter.poll(budget: 64)
            } catch {
                failures += 1
                if failures <= 3 { r.errors.append("churn: \(error)") }
            }
        }
        touch("churn-end")
        _ = try waitHost("churn-done", adapter)
        drain(adapter)
        var queuesLeft = -1
        if case let .queues(list) = try binding.request(.enumerateQueues) { queuesLeft = list.count }
        r.churn = ["cycles": cycles, "withOutstanding": withOutstanding, "pendingFrees": pendingFrees,
                   "framesOnQueues": framesOnQueues, "failures": failures, "queuesLeft": queuesLeft,
                   "outstandingAfter": adapter.outstandingNetBufferLists]
        event("queue-churn: \(cycles) cycles, \(withOutstanding) freed with NBLs outstanding (\(pendingFrees) frees pended), \(framesOnQueues) frames on the queues, \(failures) failures, queues left \(queuesLeft)", &r)
        if failures != 0 { r.errors.append("queue-churn: \(failures) cycles failed") }
        if withOutstanding == 0 { r.errors.append("queue-churn: no cycle had NBLs outstanding at FREE_QUEUE") }
        if queuesLeft != 1 { r.errors.append("queue-churn: \(queuesLeft) queues listed after the churn (the default only expected)") }
        if adapter.outstandingNetBufferLists != 0 { r.errors.append("queue-churn: \(adapter.outstandingNetBufferLists) NBLs outstanding after") }

        // 4. Link down / up (QMP set_link by the host).
        let linksBefore = soak.links.count
        touch("at-link")
        _ = try waitHost("link-off", adapter)
        let t0 = ContinuousClock.now
        while !(soak.links.dropFirst(linksBefore).contains { !$0.up }) && ContinuousClock.now - t0 < .seconds(10) {
            _ = adapter.poll(budget: 64)
            usleep(500)
        }
        let downSeen = soak.links.dropFirst(linksBefore).contains { !$0.up }
        // Sends while down.
        let completionsBefore = soak.completions.count
        var frame = [UInt8](repeating: 0, count: 60)
        frame.replaceSubrange(0..<6, with: [0x02, 0x4d, 0x50, 0, 0, 0xfe])
        frame[12] = 0x88; frame[13] = 0xb5
        var chain = sendPool.allocate(count: 8)
        let toSend = chain.count
        chain.forEach { nbl in frame.withUnsafeBytes { _ = SendPool.fill(nbl, with: $0) } }
        binding.send(chain)
        let t1 = ContinuousClock.now
        while soak.completions.count - completionsBefore < toSend && ContinuousClock.now - t1 < .seconds(5) {
            _ = adapter.poll(budget: 64)
            usleep(500)
        }
        let downCompletions = Array(soak.completions.dropFirst(completionsBefore))
        touch("at-link-on")
        _ = try waitHost("link-on", adapter)
        let t2 = ContinuousClock.now
        while !(soak.links.dropFirst(linksBefore).contains { $0.up }) && ContinuousClock.now - t2 < .seconds(15) {
            _ = adapter.poll(budget: 64)
            usleep(500)
        }
        let upSeen = soak.links.dropFirst(linksBefore).contains { $0.up }
        let statuses = Dictionary(grouping: downCompletions, by: { "\($0)" }).mapValues(\.count)
        r.link = ["downIndicated": downSeen ? 1 : 0, "upIndicated": upSeen ? 1 : 0, "sentWhileDown": toSend,
                  "completedWhileDown": downCompletions.count, "successWhileDown": downCompletions.filter { $0 == .success }.count]
        event("link-down: \(downSeen ? "indicated" : "NOT indicated"); \(toSend) sends while down completed \(downCompletions.count) (\(statuses.map { "\($0.key) \($0.value)" }.sorted().joined(separator: ", ")))", &r)
        event("link-up: \(upSeen ? "indicated" : "NOT indicated")", &r)
        if !downSeen { r.errors.append("link-down: no link-down status within 10 s of set_link off") }
        if !upSeen { r.errors.append("link-up: no link-up status within 15 s of set_link on") }
        if downCompletions.count != toSend { r.errors.append("link-down: \(toSend) sends while down, \(downCompletions.count) completed") }

        touch("at-end")
        binding.close()
        let report = adapter.halt()
        r.halt = report.description
        r.liveDMARegionsAfterHalt = function.dma.liveRegionCount
        event("halt: \(report)", &r)
        if !report.isClean { r.errors.append("halt was not clean: \(report)") }
    }
}
