import Foundation
import MiniportBench
import NDIS
import PCI

/// `miniport bench --device ADDRESS`: receive-only, transmit-only and forward (back out of the same
/// port) on a NIC bound to vfio-pci, driven by its miniport.
enum DeviceBench {
    enum Failure: Error, CustomStringConvertible {
        case badAddress(String)
        case noMiniport(String)
        var description: String {
            switch self {
            case let .badAddress(a): "\(a) is not a PCI address: give it as dddd:bb:dd.f, e.g. 0000:03:00.0 (see `miniport list`)"
            case let .noMiniport(a): "no miniport in this build can run \(a) yet: the IGB miniport lands on main with Sources/Drivers/IGB; until then use `miniport bench --model`"
            }
        }
    }

    static func run(address: String, seconds: Double, json: Bool) throws {
        guard (try? PCIAddress(parsing: address)) != nil else { throw Failure.badAddress(address) }
        let adapter = try openAdapter(address)
        defer { _ = adapter.halt() }
        let tscHz = TSC.measureFrequency()
        var figures: [AdapterFigures] = []
        figures.append(try AdapterBench.receive(adapter, seconds: seconds, batch: 32, tscHz: tscHz))
        figures.append(try AdapterBench.transmit(adapter, seconds: seconds, batch: 32, tscHz: tscHz))
        figures.append(try AdapterBench.forward(from: adapter, to: adapter, seconds: seconds, batch: 32, tscHz: tscHz))
        print(json ? AdapterBench.json(figures, tscHz: tscHz, device: address) : AdapterBench.table(figures, tscHz: tscHz, device: address))
    }

    /// Opens the device through VFIO and brings its miniport up (initialize + restart).
    static func openAdapter(_ address: String) throws -> Adapter {
        throw Failure.noMiniport(address)
    }
}
