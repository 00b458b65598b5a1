/// Vendor, device and identity of a PCI function.
public struct PCIIdentity: Sendable, Equatable {
    public var vendorID: UInt16
    public var deviceID: UInt16
    public var subsystemVendorID: UInt16
    public var subsystemID: UInt16
    public var revision: UInt8
    public init(vendorID: UInt16, deviceID: UInt16, subsystemVendorID: UInt16 = 0, subsystemID: UInt16 = 0, revision: UInt8 = 0) {
        self.vendorID = vendorID
        self.deviceID = deviceID
        self.subsystemVendorID = subsystemVendorID
        self.subsystemID = subsystemID
        self.revision = revision
    }
}

/// What a miniport needs from a PCI function: config space, BAR registers, DMA memory, interrupts.
///
/// Two backends implement it: `VFIODevice` (a real function bound to vfio-pci) and the
/// hardware model's function. The miniport is generic over it, so register access is
/// specialised per backend.
public protocol PCIFunction: AnyObject {
    associatedtype Registers: RegisterAccess

    /// "dddd:bb:dd.f" for a real device, a model name otherwise.
    var name: String { get }
    var identity: PCIIdentity { get }
    /// Register access to memory BAR `index`.
    func registers(bar index: Int) throws -> Registers
    func readConfig16(_ offset: Int) throws -> UInt16
    func readConfig32(_ offset: Int) throws -> UInt32
    func writeConfig16(_ offset: Int, _ value: UInt16) throws
    /// Sets PCI_COMMAND.MASTER (and MEMORY) so the function may DMA.
    func enableBusMaster() throws
    /// Function-level reset where the backend offers one.
    func reset() throws
    /// DMA memory mapped for this function.
    var dma: any DMAAllocator { get }
    /// Number of MSI-X vectors the function offers (0 if none).
    var msixVectorCount: Int { get }
    /// Routes MSI-X vectors 0..<count to eventfds, one per vector.
    func enableMSIX(count: Int) throws -> [InterruptEvent]
    /// Tears down interrupts.
    func disableInterrupts() throws
}

extension PCIFunction {
    public var isSurpriseRemoved: Bool { false }
}
