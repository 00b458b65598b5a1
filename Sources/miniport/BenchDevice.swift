import DeviceAccess
import Foundation
import IGB
import MiniportBench
import NDIS
import PCI
import VFIO

/// `miniport bench --device ADDRESS [--to ADDRESS2]`: receive-only, transmit-only and forward on a
/// NIC bound to vfio-pci, driven by the IGB miniport through VFIO.
enum DeviceBench {
    enum Failure: Error, CustomStringConvertible {
        case badAddress(String)
        case sameDevice(String)
        var description: String {
            switch self {
            case let .badAddress(a): "\(a) is not a PCI address: give it as dddd:bb:dd.f, e.g. 0000:03:00.0 (see `miniport list`)"
            case let .sameDevice(a): "--to \(a) names the --device itself: leave --to out to forward back out of the same port"
            }
        }
    }

    /// An opened device with its running adapter.
    struct Opened {
        let function: VFIODevice
        let adapter: Adapter
    }

    static func run(address: String, to output: String?, modes: [BenchMode], seconds: Double, batch: Int, json: Bool) throws {
        guard (try? PCIAddress(parsing: address)) != nil else { throw Failure.badAddress(address) }
        if let output {
            guard (try? PCIAddress(parsing: output)) != nil else { throw Failure.badAddress(output) }
            guard try PCIAddress(parsing: output) != PCIAddress(parsing: address) else { throw Failure.sameDevice(output) }
        }
        let first = try open(address)
        defer { close(first) }
        let second = try output.map { try open($0) }
        defer { if let second { close(second) } }
        let tscHz = TSC.measureFrequency()
        var figures: [AdapterFigures] = []
        for mode in modes {
            FileHandle.standardError.write(Data("bench: \(address) \(mode.rawValue) for \(seconds) s\n".utf8))
            switch mode {
            case .receive:
                figures.append(try AdapterBench.receive(first.adapter, seconds: seconds, batch: batch, tscHz: tscHz))
            case .transmit:
                figures.append(try AdapterBench.transmit(first.adapter, seconds: seconds, batch: batch, tscHz: tscHz))
            case .forward:
                if let second {
                    // Two VFIO containers, two DMA spaces: the forwarder copies.
                    figures.append(try AdapterBench.forwardCopying(from: first.adapter, to: second.adapter, seconds: seconds, batch: batch, tscHz: tscHz))
                } else {
                    // Back out of the same port: one DMA space, the received buffers are sent as they are.
                    figures.append(try AdapterBench.forward(from: first.adapter, to: first.adapter, seconds: seconds, batch: batch, tscHz: tscHz))
                }
            }
        }
        let name = output.map { "\(address) → \($0)" } ?? address
        print(json ? AdapterBench.json(figures, tscHz: tscHz, device: name) : AdapterBench.table(figures, tscHz: tscHz, device: name))
    }

    /// Opens the function through VFIO (container, group, BARs, DMA) and brings the IGB miniport up
    /// (initialize; the bench mode restarts it after binding), as the VM scenario `igb-traffic` does.
    static func open(_ address: String) throws -> Opened {
        let function = try VFIODevice.open(address)
        do {
            if function.supportsReset { try function.reset() }
            var configuration = IGBConfiguration()
            configuration.defaultQueueDescriptors = 1024
            configuration.defaultQueueBuffers = 2048
            configuration.transmitDescriptors = 1024
            configuration.linkTimeout = .seconds(20)
            // Paused: each bench mode restarts it once its binding is open (NDIS's order).
            let adapter = try IGBMiniport.makeAdapter(function: function, configuration: configuration, start: false)
            return Opened(function: function, adapter: adapter)
        } catch {
            _ = function.close()
            throw error
        }
    }

    static func close(_ opened: Opened) {
        let report = opened.adapter.halt()
        if !report.isClean { FileHandle.standardError.write(Data("bench: \(opened.function.name): \(report)\n".utf8)) }
        if let error = opened.function.close() { FileHandle.standardError.write(Data("bench: closing \(opened.function.name): \(error)\n".utf8)) }
    }
}
