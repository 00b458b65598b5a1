import DeviceAccess
import IGB
import IGBModel
import NDIS

/// The real driver: ``IGBMiniport`` on the 82576 hardware model in benchmark mode.
///
/// The model's `setBenchmarkReceive` hook completes every free receive descriptor with a copy of a
/// prepared 60-byte frame at each `step()`; transmit runs the model's transmit engine, which
/// completes descriptors at once and only counts the frames (`keepTransmittedFrames: false`).
/// Forward uses two models sharing one IOMMU (one DMA space, as two functions in one VFIO
/// container), so the forwarder sends the received buffers themselves.
///
/// The device's own cost is measured by a replay (``IGBDeviceReplay``) that does the same doorbell
/// writes and `step()` calls on its own rings with no driver; `miniport bench --instructions` also
/// counts the instructions spent inside the model during the full run (callgrind's inclusive cost).
public final class IGBSubject: BenchSubject {
    public let name = "igb"
    public let summary = "IGB miniport (IGBMiniport<IGBModelFunction>) on the 82576 model in benchmark mode: RX descriptors completed with a prepared frame at each step, TX completed at once, frames not kept; forward across two models sharing one IOMMU (zero copy)"
    public let hasDevice = true

    /// Ring sizes: 512 descriptors as ixy's benchmark uses.
    static let descriptors = 512
    static let buffers = 1024

    public init() {}

    public func makeWorkload(mode: BenchMode, batch: Int, part: BenchPart) throws(BenchError) -> any BenchWorkload {
        switch (mode, part) {
        case (.receive, .full): return try IGBReceive(batch: batch)
        case (.transmit, .full): return try IGBTransmit(batch: batch)
        case (.forward, .full): return try IGBForward(batch: batch)
        case (_, .deviceOnly): return try IGBDeviceOnly(mode: mode, batch: batch)
        }
    }

    static var modelConfiguration: IGBModel.Configuration {
        IGBModel.Configuration(linkUpDelayNanoseconds: 1_000, keepTransmittedFrames: false)
    }

    static var driverConfiguration: IGBConfiguration {
        var c = IGBConfiguration()
        c.defaultQueueDescriptors = descriptors
        c.defaultQueueBuffers = buffers
        c.transmitDescriptors = descriptors
        c.linkTimeout = .seconds(5)
        return c
    }

    /// A model function (sharing `other`'s IOMMU when given) with the IGB miniport up and running.
    static func bringUp(_ name: String, sharingIOMMUWith other: IGBModelFunction? = nil) throws(BenchError)
        -> (IGBModelFunction, Adapter, IGBMiniport<IGBModelFunction>) {
        let function: IGBModelFunction
        do {
            if let other {
                function = try IGBModel.makeFunction(configuration: modelConfiguration, sharingIOMMUWith: other)
            } else {
                function = try IGBModel.makeFunction(configuration: modelConfiguration)
            }
        } catch { throw .setup("\(name): model: \(error)") }
        // Free-running while the driver waits for the link (model time follows the clock), then stepped by hand.
        function.model.start()
        defer { function.model.stop() }
        do {
            let made = try IGBMiniport.makeAdapterWithMiniport(function: function, name: name, configuration: driverConfiguration)
            return (function, made.adapter, made.miniport)
        } catch { throw .setup("\(name): IGB miniport: \(error)") }
    }

    /// Halts cleanly or says why not; checks that the model saw no DMA fault.
    static func finish(_ adapters: [Adapter], _ functions: [IGBModelFunction]) throws(BenchError) {
        for f in functions {
            f.model.setBenchmarkReceive(frame: nil)
            guard f.model.faults.isEmpty else { throw .setup("\(f.name): DMA faults: \(f.model.faults.prefix(3))") }
        }
        try BenchAdapters.haltClean(adapters)
    }
}

final class IGBReceive: BenchWorkload {
    let function: IGBModelFunction
    let model: IGBModel
    let adapter: Adapter
    let consumer = ReturningProtocol()
    let batch: Int

    init(batch: Int) throws(BenchError) {
        self.batch = batch
        (function, adapter, _) = try IGBSubject.bringUp("igb-rx")
        model = function.model
        do { _ = try adapter.openBinding(consumer) } catch { throw .setup("binding: \(error)") }
        model.setBenchmarkReceive(frame: BenchFrame.udp64)
    }

    func runBatch() -> Int {
        model.step()
        return adapter.poll(budget: batch)
    }

    func finish() throws(BenchError) {
        guard consumer.received > 0 else { throw .setup("receive: nothing reached the protocol") }
        try IGBSubject.finish([adapter], [function])
    }
}

final class IGBTransmit: BenchWorkload {
    let function: IGBModelFunction
    let model: IGBModel
    let adapter: Adapter
    let producer = SendingProtocol()
    let binding: Binding
    let pool: SendPool
    let batch: Int
    private(set) var submitted: UInt64 = 0

    init(batch: Int) throws(BenchError) {
        self.batch = batch
        (function, adapter, _) = try IGBSubject.bringUp("igb-tx")
        model = function.model
        do { binding = try adapter.openBinding(producer) } catch { throw .setup("binding: \(error)") }
        pool = try SendingProtocol.makeFilledPool(binding, count: IGBSubject.buffers, frame: BenchFrame.udp64)
    }

    func runBatch() -> Int {
        let chain = pool.allocate(count: batch)
        let n = chain.count
        binding.send(chain)
        model.step()
        _ = adapter.poll(budget: batch)
        submitted &+= UInt64(n)
        return n
    }

    func finish() throws(BenchError) {
        // The last batch completes on the next poll.
        model.step()
        _ = adapter.poll(budget: batch)
        guard producer.completed == submitted, producer.failed == 0 else {
            throw .setup("transmit: \(submitted) sent, \(producer.completed) completed, \(producer.failed) failed")
        }
        guard model.wireCounters.transmitted == Int(submitted) else {
            throw .setup("transmit: \(submitted) sent, the model put \(model.wireCounters.transmitted) on the wire")
        }
        try IGBSubject.finish([adapter], [function])
    }
}

final class IGBForward: BenchWorkload {
    let inputFunction: IGBModelFunction, outputFunction: IGBModelFunction
    let inputModel: IGBModel, outputModel: IGBModel
    let input: Adapter, output: Adapter
    let forwarder = ForwardingProtocol()
    let batch: Int

    init(batch: Int) throws(BenchError) {
        self.batch = batch
        (inputFunction, input, _) = try IGBSubject.bringUp("igb-fwd-in")
        (outputFunction, output, _) = try IGBSubject.bringUp("igb-fwd-out", sharingIOMMUWith: inputFunction)
        inputModel = inputFunction.model
        outputModel = outputFunction.model
        do {
            forwarder.input = try input.openBinding(forwarder)
            forwarder.output = try output.openBinding(forwarder)
        } catch { throw .setup("binding: \(error)") }
        forwarder.inputSource = input.sourceHandle
        inputModel.setBenchmarkReceive(frame: BenchFrame.udp64)
    }

    func runBatch() -> Int {
        inputModel.step()
        let n = input.poll(budget: batch)
        outputModel.step()
        _ = output.poll(budget: batch)
        return n
    }

    func finish() throws(BenchError) {
        inputModel.setBenchmarkReceive(frame: nil)
        for _ in 0..<4 {
            outputModel.step()
            _ = output.poll(budget: batch)
        }
        guard forwarder.failed == 0, outputModel.wireCounters.transmitted == Int(forwarder.forwarded) else {
            throw .setup("forward: \(forwarder.forwarded) forwarded, \(outputModel.wireCounters.transmitted) on the wire, \(forwarder.failed) failed")
        }
        try IGBSubject.finish([input, output], [inputFunction, outputFunction])
    }
}

/// The device's work alone: the model's steps and doorbells on the workload's rings, no driver.
final class IGBDeviceOnly: BenchWorkload {
    let functions: [IGBModelFunction]
    let adapters: [Adapter]
    let receive: IGBDeviceReplay.Receive?
    let transmit: IGBDeviceReplay.Transmit?
    let batch: Int

    init(mode: BenchMode, batch: Int) throws(BenchError) {
        self.batch = batch
        switch mode {
        case .receive:
            let (f, a, _) = try IGBSubject.bringUp("igb-rx-device")
            functions = [f]; adapters = [a]
            receive = try IGBDeviceReplay.Receive(f, descriptors: IGBSubject.descriptors)
            transmit = nil
            f.model.setBenchmarkReceive(frame: BenchFrame.udp64)
        case .transmit:
            let (f, a, _) = try IGBSubject.bringUp("igb-tx-device")
            functions = [f]; adapters = [a]
            receive = nil
            transmit = try IGBDeviceReplay.Transmit(f, descriptors: IGBSubject.descriptors, batch: batch, sources: nil)
        case .forward:
            let (fi, ai, _) = try IGBSubject.bringUp("igb-fwd-in-device")
            let (fo, ao, _) = try IGBSubject.bringUp("igb-fwd-out-device", sharingIOMMUWith: fi)
            functions = [fi, fo]; adapters = [ai, ao]
            let rx = try IGBDeviceReplay.Receive(fi, descriptors: IGBSubject.descriptors)
            receive = rx
            transmit = try IGBDeviceReplay.Transmit(fo, descriptors: IGBSubject.descriptors, batch: batch, sources: rx)
            fi.model.setBenchmarkReceive(frame: BenchFrame.udp64)
        }
    }

    func runBatch() -> Int {
        if let receive {
            let n = receive.take(batch)
            if let transmit {
                transmit.send(n)
                receive.giveBack()
            } else {
                receive.giveBack()
            }
            return n
        }
        guard let transmit else { return 0 }
        transmit.send(batch)
        return batch
    }

    func finish() throws(BenchError) {
        for f in functions { f.model.setBenchmarkReceive(frame: nil) }
        receive?.release()
        transmit?.release()
        try IGBSubject.finish(adapters, functions)
    }
}
