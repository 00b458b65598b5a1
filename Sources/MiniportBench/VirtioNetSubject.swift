import DeviceAccess
import NDIS
import VirtioNet
import VirtioNetModel
import ModelKit

/// The virtio-net miniport on the virtio-net model. The model's work (virtqueue walks, copies) is
/// in the figures: there is no device-only replay for it yet, so cycles are the whole loop.
/// Mallocs and retains per packet count both sides; the gate (Docs/BENCHMARKS.md) holds them at 0.
public final class VirtioNetSubject: BenchSubject {
    public let name = "virtio-net"
    public let summary = "virtio-net miniport on the virtio-net model (split virtqueues; figures include the model's work)"
    public let hasDevice = false

    public init() {}

    public func makeWorkload(mode: BenchMode, batch: Int, part: BenchPart) throws(BenchError) -> any BenchWorkload {
        try VirtioNetWorkload(mode: mode, batch: batch)
    }

    static func bringUp(_ name: String, sharing iommu: ModelIOMMU? = nil) throws(BenchError) -> (VirtioNetModelFunction, Adapter) {
        var config = VirtioNetModel.Configuration()
        config.keepTransmittedFrames = false
        let function: VirtioNetModelFunction
        do {
            function = try iommu.map { try VirtioNetModel.makeFunction(configuration: config, sharingIOMMUWith: $0) }
                ?? VirtioNetModel.makeFunction(configuration: config)
        } catch { throw .setup("virtio-net model: \(error)") }
        do { return (function, try VirtioNetMiniport.makeAdapter(function: function, name: name)) } catch {
            throw .setup("virtio-net bring-up: \(error)")
        }
    }
}

final class VirtioNetWorkload: BenchWorkload {
    let mode: BenchMode
    let batch: Int
    let inputFunction: VirtioNetModelFunction
    let input: Adapter
    var outputFunction: VirtioNetModelFunction?
    var output: Adapter?
    let consumer = ReturningProtocol()
    let producer = SendingProtocol()
    let forwarder = ForwardingProtocol()
    var binding: Binding?
    var pool: SendPool?
    /// The frame put on the wire, in memory of our own (pushing it allocates nothing).
    let frame: UnsafeMutableRawBufferPointer

    init(mode: BenchMode, batch: Int) throws(BenchError) {
        self.mode = mode
        self.batch = batch
        (inputFunction, input) = try VirtioNetSubject.bringUp("virtio-\(mode.rawValue)")
        var bytes = BenchFrame.udp64
        // Addressed to the adapter (the device filters unicast once promiscuous is off).
        let mac = input.attributes!.currentAddress.array
        for i in 0..<6 { bytes[i] = mac[i] }
        frame = .allocate(byteCount: bytes.count, alignment: 64)
        frame.copyBytes(from: bytes)
        do {
            switch mode {
            case .receive:
                _ = try input.openBinding(consumer)
            case .transmit:
                let b = try input.openBinding(producer)
                binding = b
                pool = try SendingProtocol.makeFilledPool(b, count: 256, frame: bytes)
            case .forward:
                let (f, out) = try VirtioNetSubject.bringUp("virtio-forward-out", sharing: inputFunction.model.iommu)
                outputFunction = f
                output = out
                forwarder.input = try input.openBinding(forwarder)
                forwarder.output = try out.openBinding(forwarder)
                forwarder.inputSource = input.sourceHandle
            }
        } catch let error as BenchError { throw error } catch { throw .setup("binding: \(error)") }
    }

    deinit { frame.deallocate() }

    func runBatch() -> Int {
        let model = inputFunction.model
        switch mode {
        case .receive, .forward:
            let raw = UnsafeRawBufferPointer(frame)
            for _ in 0..<batch { _ = model.port.fifo.push(raw) }
            model.step()
            let n = input.poll(budget: batch)
            if let output, let outputFunction {
                outputFunction.model.step()
                _ = output.poll(budget: batch)
            }
            return n
        case .transmit:
            guard let pool, let binding else { return 0 }
            let chain = pool.allocate(count: batch)
            let n = chain.count
            binding.send(chain)
            model.step()
            _ = input.poll(budget: batch)
            return n
        }
    }

    func finish() throws(BenchError) {
        for _ in 0..<4 {
            inputFunction.model.step(); _ = input.poll(budget: 256)
            if let output, let outputFunction { outputFunction.model.step(); _ = output.poll(budget: 256) }
        }
        try BenchAdapters.haltClean([input] + (output.map { [$0] } ?? []))
    }
}
