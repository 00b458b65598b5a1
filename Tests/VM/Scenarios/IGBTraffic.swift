import ArgumentParser
import DeviceAccess
import Foundation
import Glibc
import IGB
import IGBModel
import NDIS
import VFIO

/// `igb-traffic`: bring the IGB miniport up on a NIC bound to vfio-pci (or on the hardware model
/// with `--model`), optionally allocate VMQ queues with MAC (and VLAN) filters and lookahead split,
/// write `ready`, then receive until the host writes `host-done` (or the time runs out), echoing
/// frames back when asked. Writes DIR/igb-traffic.json: every frame with its queue, bytes and
/// segments, per-queue counts, the bring-up trace, interrupt sleeps and wakeups, statistics and
/// the halt report. Exits 1 if anything failed, halt was not clean or DMA memory leaked.
///
/// With `--model --frames mix.pcap` the same driver and the same queue setup run on the 82576
/// model (in `.qemu` fidelity by default) and the pcap's frames are injected one by one: the
/// differential test compares that JSON with the one from QEMU.
struct IGBTraffic: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "igb-traffic",
        abstract: "The IGB miniport through VFIO (or on the model): VMQ queues, filters, lookahead split, receive, echo, interrupts, clean halt."
    )

    @Option(help: "PCI address of an 82576/I350 function bound to vfio-pci.")
    var device: String?

    @Flag(help: "Run on the 82576 hardware model instead of a device (needs --frames).")
    var model = false

    @Option(help: "Model: a pcap whose frames are injected one by one after setup.")
    var frames: String?

    @Option(help: "Model: fidelity, qemu or datasheet.")
    var fidelity: String = "qemu"

    @Option(help: "Model: its permanent MAC address.")
    var mac: String = "52:54:00:4d:50:01"

    @Option(help: "Directory for ready and igb-traffic.json; host-done is awaited there.")
    var out: String

    @Option(name: .customLong("queue"), help: "A VMQ queue filter: MAC or MAC/VLAN (repeatable), e.g. 02:aa:00:00:00:01/10.")
    var queues: [String] = []

    @Option(help: "Lookahead split on the VMQ queues: header buffer bytes (64…960; 0: no split).")
    var lookahead = 0

    @Option(help: "Receive buffers per VMQ queue.")
    var buffers = 128

    @Option(help: "Seconds to run at most.")
    var seconds: Double = 30

    @Flag(help: "Send every received frame back with destination and source swapped.")
    var echo = false

    @Flag(help: "Use MSI-X interrupts and sleep on them when idle.")
    var interrupts = false

    @Option(help: "With --interrupts: longest sleep on the eventfds, in milliseconds.")
    var sleepMs: Int32 = 10

    @Flag(help: "Per-queue receive workers (implies --interrupts): the i-th --queue is pinned to CPU i, the default queue to CPU 0; every frame records its thread and CPU.")
    var workers = false

    @Flag(help: "Record register accesses during bring-up and check the datasheet's order.")
    var traceBringup = false

    func validate() throws {
        if model && frames == nil { throw ValidationError("--model needs --frames FILE.pcap") }
        if !model && device == nil { throw ValidationError("give --device ADDRESS (or --model --frames FILE)") }
    }

    func run() throws {
        var result = TrafficResult()
        let start = ContinuousClock.now
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        do {
            if model {
                try runOnModel(&result, start: start)
            } else if traceBringup {
                let function = TracingFunction(try VFIODevice.open(device!))
                if function.base.supportsReset { try function.base.reset() }
                try traffic(function, &result, start: start)
                result.bringUp = function.log.analyse()
                result.errors += result.bringUp?.errors ?? []
                closeAndCheck(function.base, &result.resourcesAfterClose, &result.errors)
            } else {
                let function = try VFIODevice.open(device!)
                if function.supportsReset { try function.reset() }
                try traffic(function, &result, start: start)
                closeAndCheck(function, &result.resourcesAfterClose, &result.errors)
            }
        } catch {
            result.errors.append("\(error)")
        }
        if result.liveDMARegionsAfterHalt != 0 { result.errors.append("\(result.liveDMARegionsAfterHalt) DMA regions left after halt") }
        result.milliseconds = FrameRecorder.milliseconds(ContinuousClock.now - start)
        result.ok = result.errors.isEmpty
        try writeJSON(result, to: out, name: "igb-traffic.json")
        writeGuestPcap(result.frames, to: out, name: "guest-received.pcap")
        let counts = result.framesPerQueue.sorted { $0.key < $1.key }.map { "queue \($0.key): \($0.value)" }.joined(separator: ", ")
        print("igb-traffic: \(result.frames.count) frames (\(counts)); bring-up \(Int(result.bringUpMilliseconds)) ms; \(result.halt)")
        print(result.ok ? "igb-traffic: ok" : "igb-traffic: FAILED\n" + result.errors.map { "  " + $0 }.joined(separator: "\n"))
        if !result.ok { throw ExitCode(1) }
    }

    private func configuration() -> IGBConfiguration {
        var config = IGBConfiguration()
        config.useInterrupts = interrupts || workers
        if workers {
            config.receiveWorkers = true
            config.defaultQueueAffinity = [0]
            config.workerSleepTimeoutMilliseconds = sleepMs
        }
        config.linkTimeout = .seconds(20)
        return config
    }

    /// The whole scenario on any PCI function: bring-up, queues, ready, receive loop, halt.
    private func traffic<F: PCIFunction>(_ function: F, _ result: inout TrafficResult, start: ContinuousClock.Instant,
                                         feed: ((Adapter) -> Void)? = nil) throws {
        let t0 = ContinuousClock.now
        // NDIS's order: Paused until the binding, queues and filters are set, then restart.
        let (adapter, miniport) = try IGBMiniport.makeAdapterWithMiniport(function: function, configuration: configuration(), start: false)
        result.bringUpMilliseconds = FrameRecorder.milliseconds(ContinuousClock.now - t0)
        result.mac = miniport.permanentAddress.description
        result.eepromAutoReadDone = miniport.eepromAutoReadDone
        result.link = miniport.linkState.up ? "up \(miniport.linkState.speedBitsPerSecond / 1_000_000) Mb/s" : "down"
        let recorder = FrameRecorder(echo: echo, start: start)
        recorder.recordThreads = workers
        let binding = try adapter.openBinding(recorder)
        if echo { recorder.pool = try binding.makeSendPool(count: 256, bufferSize: 2048) }
        for (index, spec) in queues.enumerated() {
            let parts = spec.split(separator: "/")
            guard let queueMAC = MACAddress(String(parts[0])) else { throw ScenarioError("bad MAC in --queue \(spec)") }
            var parameters = ReceiveQueueParameters(numberOfBuffers: buffers)
            if workers { parameters.processorAffinity = [index] }
            if lookahead > 0 {
                parameters.flags.insert(.lookaheadSplitRequired)
                parameters.lookaheadSize = lookahead
            }
            guard case let .queueAllocated(id) = try binding.request(.allocateQueue(parameters)) else {
                throw ScenarioError("allocateQueue for \(spec) answered without a queue id")
            }
            guard case let .allocationComplete(done) = try binding.request(.queueAllocationComplete([id])),
                  done.allSatisfy({ $0.1 == .success }) else {
                throw ScenarioError("allocation of \(id) for \(spec) did not complete")
            }
            var tests: [FieldTest] = [.macDestination(queueMAC)]
            if parts.count > 1 {
                guard let v = UInt16(parts[1]) else { throw ScenarioError("bad VLAN in --queue \(spec)") }
                tests.append(.vlanID(v))
            }
            _ = try binding.request(.setFilter(ReceiveFilterParameters(queue: id, tests: tests)))
            result.queues.append(QueueInfo(id: Int(id.rawValue), filter: spec,
                                           vector: miniport.interruptVector(for: id)))
        }
        result.usesInterrupts = miniport.usesInterrupts
        try adapter.restart()
        try Data().write(to: URL(fileURLWithPath: out).appendingPathComponent("ready"))
        if let feed {
            feed(adapter)
        } else if workers {
            result.workers = watchWorkers(miniport, recorder, queueIDs: result.queues.map(\.id))
        } else if interrupts {
            result.interrupts = sleepOnInterrupts(adapter, miniport, recorder)
        } else {
            pollUntilDone(adapter, recorder)
        }
        // Let the last echoes complete.
        for _ in 0..<200 where recorder.completed < recorder.echoed { _ = adapter.poll(budget: 64); usleep(100) }
        recorder.locked {
            result.frames = recorder.frames
            result.framesPerQueue = recorder.perQueue.reduce(into: [:]) { $0[String($1.key)] = $1.value }
            result.echoed = recorder.echoed
            result.sendCompletions = recorder.sendCompletions
            result.sendSuccesses = recorder.successes
        }
        if case let .statistics(report) = try adapter.request(.statistics) {
            result.statistics = ["rxFrames": report.global.receivedFrames, "txFrames": report.global.transmittedFrames,
                                 "rxErrors": report.global.receiveErrors, "rxDrops": report.global.receiveDrops,
                                 "rxBroadcast": report.global.receiveBroadcast]
        }
        // The framework's check of the lookahead split rule on every indication of a split queue.
        result.statistics["lookaheadSplitViolations"] = adapter.lookaheadSplitViolations
        if adapter.lookaheadSplitViolations != 0 {
            result.errors.append("\(adapter.lookaheadSplitViolations) frame(s) split before the requested lookahead size")
        }
        binding.close()
        let report = adapter.halt()
        result.halt = report.description
        result.haltClean = report.isClean
        result.liveDMARegionsAfterHalt = function.dma.liveRegionCount
        if workers, var w = result.workers {
            // Halt joined every worker: none is listed and no thread of theirs is left in the process.
            w.workersAfterHalt = miniport.receiveWorkers.count
            w.threadsLeftAfterHalt = w.workers.map(\.threadID).filter { access("/proc/self/task/\($0)", F_OK) == 0 }
            if w.workersAfterHalt != 0 { result.errors.append("\(w.workersAfterHalt) receive workers still listed after halt") }
            if !w.threadsLeftAfterHalt.isEmpty { result.errors.append("worker threads \(w.threadsLeftAfterHalt) still exist after halt") }
            result.workers = w
        }
        if !report.isClean { result.errors.append("halt was not clean: \(report)") }
    }

    /// Polls until the host is done or the time is up (checks the clock every 256 empty polls).
    private func pollUntilDone(_ adapter: Adapter, _ recorder: FrameRecorder) {
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(Int(seconds * 1000)))
        var idle = 0
        var lastCheck = ContinuousClock.now
        while true {
            if adapter.poll(budget: 64) > 0 { idle = 0; continue }
            idle &+= 1
            if idle % 256 == 0 {
                let now = ContinuousClock.now
                if now >= deadline { return }
                if now - lastCheck > .milliseconds(100) {
                    lastCheck = now
                    if hostDone(out) { return }
                }
                usleep(50)
            }
        }
    }

    /// With receive workers the adapter's own threads receive: sample their counters every 100 ms
    /// until the host is done (the host reads the idle windows and the wakeups from the samples).
    private func watchWorkers<F: PCIFunction>(_ miniport: IGBMiniport<F>, _ recorder: FrameRecorder, queueIDs: [Int]) -> WorkersReport {
        var report = WorkersReport(sleepTimeoutMilliseconds: Int(sleepMs))
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(Int(seconds * 1000)))
        func snapshot() -> [WorkerInfo] {
            miniport.receiveWorkers.map { w in
                let queue = w.slot == 0 ? 0 : queueIDs.first { miniport.receiveWorker(for: ReceiveQueueID(UInt16($0))) === w }
                return WorkerInfo(slot: w.slot, queue: queue, requestedCPUs: w.requestedCPUs.sorted(), pinnedCPUs: w.pinnedCPUs.sorted(),
                                  pinningProblem: w.pinningProblem, threadID: w.threadID, lastCPU: w.lastCPU, polls: w.polls,
                                  busyPolls: w.busyPolls, eventWaits: w.eventWaits, wakeups: w.wakeups)
            }
        }
        while ContinuousClock.now < deadline && !hostDone(out) {
            let at = FrameRecorder.milliseconds(ContinuousClock.now - recorder.start)
            let frames = recorder.locked { recorder.total }
            report.samples.append(WorkerSample(atMilliseconds: at, frames: frames,
                                               counters: snapshot().map { [$0.slot, $0.polls, $0.eventWaits, $0.wakeups] }))
            usleep(100_000)
        }
        report.workers = snapshot()
        return report
    }

    /// The datapath of an idle NIC with interrupts: poll while frames come, then sleep on the
    /// MSI-X eventfds; record every sleep, whether an interrupt ended it, and what the next poll found.
    private func sleepOnInterrupts<F: PCIFunction>(_ adapter: Adapter, _ miniport: IGBMiniport<F>,
                                                   _ recorder: FrameRecorder) -> InterruptReport {
        var report = InterruptReport(sleepTimeoutMilliseconds: Int(sleepMs))
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(Int(seconds * 1000)))
        var idle = 0
        var afterWake = false
        while ContinuousClock.now < deadline {
            let n = adapter.poll(budget: 64)
            report.polls += 1
            if n > 0 {
                if afterWake { report.framesFoundAfterWakeup += n } else { report.framesFoundWhilePolling += n }
                afterWake = false
                idle = 0
                continue
            }
            idle += 1
            if idle < 8 { continue }
            idle = 0
            afterWake = false
            if hostDone(out) { break }
            let t = ContinuousClock.now
            let woke = miniport.waitForInterrupt(timeoutMilliseconds: sleepMs)
            let slept = FrameRecorder.milliseconds(ContinuousClock.now - t)
            report.sleeps += 1
            report.sleptMilliseconds += slept
            if woke {
                report.wakeups += 1
                report.wakeupSleepMilliseconds.append(slept)
                report.wakeupAtMilliseconds.append(FrameRecorder.milliseconds(ContinuousClock.now - recorder.start))
                afterWake = true
            } else {
                report.timeouts += 1
            }
        }
        return report
    }

    /// The same scenario on the model: the pcap's frames are injected one at a time; after each the
    /// model is stepped and the adapter polled until the frame has been handled.
    private func runOnModel(_ result: inout TrafficResult, start: ContinuousClock.Instant) throws {
        guard let address = MACAddress(mac) else { throw ValidationError("bad --mac \(mac)") }
        let mode: IGBModel.Fidelity
        switch fidelity {
        case "qemu": mode = .qemu
        case "datasheet": mode = .datasheet
        default: throw ValidationError("--fidelity is qemu or datasheet, not \(fidelity)")
        }
        let mix = try PCAP.read(frames!)
        let function = try IGBModel.makeFunction(configuration: .init(permanentAddress: address.array, fidelity: mode,
                                                                      linkUpDelayNanoseconds: 2_000_000))
        let model = function.model
        result.device = "model (\(fidelity) fidelity)"
        // The model runs free during bring-up (its link timer follows the clock), stepped afterwards.
        model.start()
        var started = true
        defer { if started { model.stop() } }
        try traffic(function, &result, start: start) { adapter in
            model.stop()
            started = false
            for frame in mix {
                model.inject(frame)
                for _ in 0..<8 {
                    model.step()
                    _ = adapter.poll(budget: 64)
                }
            }
        }
        if !model.faults.isEmpty { result.errors.append("IOMMU faults on the model: \(model.faults)") }
        result.modelWire = ["filtered": model.wireCounters.filtered, "notReceived": model.wireCounters.notReceived]
    }
}

struct QueueInfo: Codable {
    var id: Int
    var filter: String
    var vector: Int?
}

struct InterruptReport: Codable {
    var sleepTimeoutMilliseconds: Int
    var polls = 0
    var sleeps = 0
    var wakeups = 0
    var timeouts = 0
    var sleptMilliseconds = 0.0
    /// How long each sleep that an interrupt ended lasted.
    var wakeupSleepMilliseconds: [Double] = []
    /// When each such wakeup happened (scenario clock, as the frames' `atMilliseconds`).
    var wakeupAtMilliseconds: [Double] = []
    var framesFoundAfterWakeup = 0
    var framesFoundWhilePolling = 0
}

struct WorkerInfo: Codable {
    var slot: Int
    /// The NDIS queue id it serves (0: the default queue).
    var queue: Int?
    var requestedCPUs: [Int]
    var pinnedCPUs: [Int]
    var pinningProblem: String?
    var threadID: Int
    var lastCPU: Int
    var polls: Int
    var busyPolls: Int
    var eventWaits: Int
    var wakeups: Int
}

struct WorkerSample: Codable {
    var atMilliseconds: Double
    /// Frames indicated so far.
    var frames: Int
    /// Per worker: [slot, polls, eventWaits, wakeups].
    var counters: [[Int]]
}

struct WorkersReport: Codable {
    var sleepTimeoutMilliseconds: Int
    var samples: [WorkerSample] = []
    /// The workers' counters when the host was done (before halt).
    var workers: [WorkerInfo] = []
    var workersAfterHalt = -1
    var threadsLeftAfterHalt: [Int] = []
}

struct TrafficResult: Codable {
    var ok = false
    var errors: [String] = []
    var device = ""
    var mac = ""
    var link = ""
    var eepromAutoReadDone = false
    var bringUpMilliseconds = 0.0
    var bringUp: BringUpTrace?
    var usesInterrupts = false
    var queues: [QueueInfo] = []
    var framesPerQueue: [String: Int] = [:]
    var frames: [ReceivedFrame] = []
    var echoed = 0
    var sendCompletions: [String: Int] = [:]
    var sendSuccesses = 0
    var interrupts: InterruptReport?
    var workers: WorkersReport?
    var statistics: [String: UInt64] = [:]
    var modelWire: [String: Int]?
    var halt = ""
    var haltClean = false
    var liveDMARegionsAfterHalt = -1
    /// VFIO resources still held after close (all zero when nothing leaked).
    var resourcesAfterClose: String?
    var milliseconds = 0.0
}

/// Closes a VFIO device and checks that it holds nothing afterwards (fds, BARs, DMA, IOMMU mappings).
func closeAndCheck(_ device: VFIODevice, _ resources: inout String?, _ errors: inout [String]) {
    if let error = device.close() { errors.append("close: \(error)") }
    resources = device.openResources.description
    if device.openResources != .none { errors.append("\(device.name) still holds after close: \(device.openResources)") }
}
