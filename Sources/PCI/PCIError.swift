/// Failures of PCI discovery. Each message names the thing and what to do about it.
public enum PCIError: Error, Equatable, CustomStringConvertible {
    /// The text is not a PCI address.
    case invalidAddress(String)
    /// No function with this address under the sysfs root.
    case noSuchDevice(PCIAddress, sysfsDevices: String)
    /// The sysfs PCI tree is missing (no /sys mounted, or a wrong root).
    case noSysfs(path: String)
    /// A function's directory lacks a file libpci needs (the device vanished while we looked).
    case incompleteSysfs(PCIAddress, missing: String)
    /// The PCI ID database could not be read.
    case idsFileUnreadable(path: String)

    public var description: String {
        switch self {
        case let .invalidAddress(text):
            return "'\(text)' is not a PCI address: expected the form DDDD:BB:DD.F (for example 0000:03:00.0) or BB:DD.F (03:00.0), in hex"
        case let .noSuchDevice(address, devices):
            return "no PCI function \(address) in \(devices): check the address with `miniport list --all` (or `lspci -D`)"
        case let .noSysfs(path):
            return "\(path) does not exist: PCI discovery needs sysfs (mount -t sysfs sysfs /sys)"
        case let .incompleteSysfs(address, missing):
            return "\(address): sysfs file \(missing) is missing (was the device removed?): run `miniport list` again"
        case let .idsFileUnreadable(path):
            return "cannot read the PCI ID database \(path): install it with `apt-get install pci.ids` or pass another file"
        }
    }
}
