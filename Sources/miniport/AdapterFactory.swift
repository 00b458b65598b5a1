import Logging
import MiniportRegistry
import NDIS

/// The commands' way to open adapters: `MiniportRegistry.AdapterOpener` (the library the C API
/// shares), with its errors turned into the CLI's exit codes.
enum AdapterFactory {
    /// The MAC address the model NIC has (a locally administered QEMU-style address).
    static let modelMAC = AdapterOpener.modelMAC

    static func open(device: String?, model: Bool, nic: String = "igb", logger: Logger, macAddress: MACAddress = modelMAC,
                     modelName: String = "model0", tap: String? = nil) throws(CLIError) -> OpenedAdapter {
        do {
            if tap != nil && !model {
                throw CLIError.input(.missing("--tap IFNAME connects the hardware model's wire to a Linux TAP: add --model (a device's wire is its own cable)"))
            }
            if model {
                // A model NIC lives in this process; only a model named after a device address is
                // locked, so scripts that pass the same --device to the model see the same busy rule.
                let name = try device.map { (d: String) throws(OpenError) in try PCIAddressText.normalize(d) } ?? modelName
                return try AdapterOpener.openModel(nic: nic, name: name, lockName: device == nil ? nil : name,
                                                   macAddress: macAddress, logger: logger, tap: tap)
            }
            guard let device else { throw CLIError.input(.missing("--device ADDR is needed (a PCI address bound to vfio-pci), or --model for the hardware model")) }
            return try AdapterOpener.openDevice(device, logger: logger)
        } catch let error as CLIError {
            throw error
        } catch let error as OpenError {
            throw CLIError(error)
        } catch {
            throw .failed("\(error)")
        }
    }
}

extension CLIError {
    init(_ error: OpenError) {
        switch error {
        case let .badAddress(a): self = .badAddress(a)
        case let .unknownDevice(a): self = .unknownDevice(a)
        case let .busy(a, why): self = .busy(a, why)
        case .noMiniport, .refused: self = .noMiniport(error.description)
        case .unknownModel: self = .input(.missing(error.description))
        case let .adapter(what, e): self = .adapter(what, e)
        case let .tap(m): self = .failed(m)
        case let .failed(m): self = .failed(m)
        }
    }
}

extension OpenedAdapter {
    /// `start()` (MiniportRestart) with its error as the CLI's: the commands call it once their
    /// binding, packet filter, queues and filters are in place.
    func startReceiving() throws(CLIError) {
        do { try start() } catch { throw CLIError(error) }
    }
}
