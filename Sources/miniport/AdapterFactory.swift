#if canImport(Glibc)
import Glibc
#endif
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
            let address = try PCIAddressText.normalize(device)
            try refuseNonNetwork(address)
            return try AdapterOpener.openDevice(address, logger: logger, sysfs: sysfsDevices)
        } catch let error as CLIError {
            throw error
        } catch let error as OpenError {
            throw CLIError(error)
        } catch {
            throw .failed("\(error)")
        }
    }
}

extension AdapterFactory {
    /// Where the PCI devices are in sysfs: MINIPORT_SYSFS (the sysfs root, as udev/miniport-bind
    /// takes it) points at a fake tree for tests.
    static var sysfsDevices: String {
        (getenv("MINIPORT_SYSFS").map { String(cString: $0) } ?? "/sys") + "/bus/pci/devices"
    }

    /// A function that is not a network controller (an NVMe disk, a GPU) is refused by its class
    /// before anything is opened, and nothing advises binding it.
    static func refuseNonNetwork(_ address: String) throws(CLIError) {
        let path = "\(sysfsDevices)/\(address)/class"
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = Glibc.read(fd, &buffer, 32)
        Glibc.close(fd)
        guard n > 0 else { return }
        let text = String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.hasPrefix("0x"), let code = UInt32(text.dropFirst(2), radix: 16), code >> 16 != 0x02 else { return }
        let driver = linkName("\(sysfsDevices)/\(address)/driver")
        throw .noMiniport("\(address) is not a network controller (PCI class \(text)\(driver.map { ", driven by \($0)" } ?? "")): miniport drives network controllers only; check the address with miniport list")
    }

    /// The last component of a symlink's target (a device's driver), or nil.
    static func linkName(_ path: String) -> String? {
        var buffer = [Int8](repeating: 0, count: 4096)
        let n = readlink(path, &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        let target = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return target.split(separator: "/").last.map(String.init)
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
