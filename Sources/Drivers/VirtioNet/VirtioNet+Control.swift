import DeviceAccess
import DriverKit
import Glibc
import NDIS

/// One control command (§5.1.6.5): class, command, data; the device answers OK or ERR.
struct VirtioControlCommand {
    var cls: UInt8
    var command: UInt8
    var data: [UInt8]
}

extension VirtioNetMiniport {
    /// Slots of the command area: each command's bytes (≤ 1020) and its ack byte.
    static var controlSlotSize: Int { 1024 }
    static var controlSlots: Int { 31 }

    /// Sends `commands` (in batches that fit the queue) and waits for every answer.
    /// - Throws: when the device answers ERR or does not answer in time.
    func sendControl(_ commands: [VirtioControlCommand]) throws(VirtioNetError) {
        guard let buffer = ctrlBuffer, ctrlq.pointee.desc != nil else {
            throw .control("no control queue (VIRTIO_NET_F_CTRL_VQ not negotiated)")
        }
        guard !removed else { return }
        let q = ctrlq
        let batch = min(Self.controlSlots, q.pointee.size / 2)
        var start = 0
        while start < commands.count {
            let slice = commands[start..<min(commands.count, start + batch)]
            for (k, cmd) in slice.enumerated() {
                let at = k * Self.controlSlotSize
                // Safety: a slot holds 2 + data (≤ 1021) bytes and the ack at its last byte.
                let p = buffer.unsafeVirtualAddress + at
                precondition(cmd.data.count <= Self.controlSlotSize - 3, "control command too long")
                p.storeBytes(of: cmd.cls, as: UInt8.self)
                p.storeBytes(of: cmd.command, toByteOffset: 1, as: UInt8.self)
                cmd.data.withUnsafeBytes { (p + 2).copyMemory(from: $0.baseAddress!, byteCount: cmd.data.count) }
                p.storeBytes(of: 0xFF, toByteOffset: Self.controlSlotSize - 1, as: UInt8.self)
                let iova = buffer.region.iova(atOffset: at)!
                q.pointee.writeDesc(2 * k, addr: iova, len: UInt32(2 + cmd.data.count), flags: Virtq.descNext, next: UInt16(2 * k + 1))
                q.pointee.writeDesc(2 * k + 1, addr: iova + UInt64(Self.controlSlotSize - 1), len: 1, flags: Virtq.descWrite, next: 0)
                q.pointee.offer(UInt16(2 * k))
            }
            q.pointee.publish()
            regs.write16(q.pointee.notifyOffset, UInt16(q.pointee.index))
            let target = q.pointee.availIdx
            guard waitUntil(configuration.controlTimeout, interval: .microseconds(20), { q.pointee.usedIdx == target }) else {
                throw .control("the device answered no command in \(configuration.controlTimeout)")
            }
            q.pointee.lastUsed = target
            for (k, cmd) in slice.enumerated() {
                let ack = (buffer.unsafeVirtualAddress + k * Self.controlSlotSize).load(fromByteOffset: Self.controlSlotSize - 1, as: UInt8.self)
                guard ack == VirtioControl.ok else {
                    throw .control("class \(cmd.cls) command \(cmd.command) answered \(ack == 1 ? "VIRTIO_NET_ERR" : "nothing (\(ack))")")
                }
            }
            countersCell.pointee.controlCommands &+= UInt64(slice.count)
            start += slice.count
        }
    }

    /// The unicast MACs the software VMQ filters steer by (besides the adapter's own, which the
    /// device always accepts).
    var wantedUnicast: [MACAddress] {
        var macs: [MACAddress] = []
        for f in softwareFilters {
            for t in f.parameters.tests where t.field == .macDestination && t.test == .equal && t.value.count == 6 && t.value[0] & 1 == 0 {
                let mac = MACAddress(t.value[0], t.value[1], t.value[2], t.value[3], t.value[4], t.value[5])
                if mac != permanentAddress && !macs.contains(mac) { macs.append(mac) }
            }
        }
        return macs
    }

    /// VLAN ids the software filters name.
    var wantedVLANs: Set<UInt16> {
        var ids = Set<UInt16>()
        for f in softwareFilters {
            for t in f.parameters.tests where t.field == .vlanID && t.test == .equal && t.value.count == 2 {
                ids.insert((UInt16(t.value[0]) << 8 | UInt16(t.value[1])) & 0x0FFF)
            }
        }
        return ids
    }

    /// RX mode and MAC table (§5.1.6.5.1, §5.1.6.5.2) from the packet filter, the multicast list
    /// and the queues' filters: the device then drops unicast frames to MACs no queue wants.
    func programFilters() throws(VirtioNetError) {
        guard negotiatedFeatures & VirtioNetFeature.ctrlRx != 0, ctrlq.pointee.desc != nil else { return }
        let promiscuous = packetFilter.contains(.promiscuous)
        var commands: [VirtioControlCommand] = [
            VirtioControlCommand(cls: VirtioControl.rx, command: VirtioControl.rxPromisc, data: [promiscuous ? 1 : 0]),
            VirtioControlCommand(cls: VirtioControl.rx, command: VirtioControl.rxAllMulti, data: [packetFilter.contains(.allMulticast) ? 1 : 0]),
        ]
        // CTRL_RX_EXTRA (NOBCAST, NOUNI, ...) is not negotiated: broadcast stays on; the framework
        // drops it in software when the packet filter does not want it.
        let unicast = wantedUnicast
        let multicast = packetFilter.contains(.multicast) ? multicastList : []
        var table: [UInt8] = []
        func append(_ macs: [MACAddress]) {
            let n = UInt32(macs.count)
            table += [UInt8(n & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 24)]
            for m in macs { table += m.array }
        }
        append(unicast)
        append(multicast)
        if table.count <= Self.controlSlotSize - 3 {
            commands.append(VirtioControlCommand(cls: VirtioControl.mac, command: VirtioControl.macTableSet, data: table))
        } else {
            // More than fits: the device's own overflow rule (accept all) is the same as promiscuous for that kind.
            commands.append(VirtioControlCommand(cls: VirtioControl.rx, command: VirtioControl.rxPromisc, data: [1]))
        }
        try sendControl(commands)
        programmedUnicast = unicast
        if configuration.vlanTable == .filtered { try programVLANs() }
    }

    /// The VLAN table (§5.1.6.5.3): every VLAN (`.all`), or the VLANs the filters name (`.filtered`).
    func programVLANs() throws(VirtioNetError) {
        guard negotiatedFeatures & VirtioNetFeature.ctrlVLAN != 0, ctrlq.pointee.desc != nil else { return }
        var commands: [VirtioControlCommand] = []
        switch configuration.vlanTable {
        case .all:
            guard !vlanAll else { return }
            for vid in 0..<4096 as Range<UInt16> {
                commands.append(VirtioControlCommand(cls: VirtioControl.vlan, command: VirtioControl.vlanAdd, data: [UInt8(vid & 0xFF), UInt8(vid >> 8)]))
            }
            try sendControl(commands)
            vlanAll = true
            programmedVLANs = Set(0..<4096)
        case .filtered:
            let wanted = wantedVLANs
            for vid in wanted.subtracting(programmedVLANs).sorted() {
                commands.append(VirtioControlCommand(cls: VirtioControl.vlan, command: VirtioControl.vlanAdd, data: [UInt8(vid & 0xFF), UInt8(vid >> 8)]))
            }
            for vid in programmedVLANs.subtracting(wanted).sorted() {
                commands.append(VirtioControlCommand(cls: VirtioControl.vlan, command: VirtioControl.vlanDel, data: [UInt8(vid & 0xFF), UInt8(vid >> 8)]))
            }
            guard !commands.isEmpty else { return }
            try sendControl(commands)
            programmedVLANs = wanted
        }
    }
}

extension VirtioNetMiniport {
    /// Makes, initializes and (by default) restarts an adapter for a virtio-net function.
    public static func makeAdapterWithMiniport(function: F, name: String? = nil, configuration: VirtioNetConfiguration = VirtioNetConfiguration(),
                                               start: Bool = true) throws(NDISError) -> (adapter: Adapter, miniport: VirtioNetMiniport<F>) {
        let miniport: VirtioNetMiniport<F>
        do { miniport = try VirtioNetMiniport(function: function, configuration: configuration) } catch { throw error.ndis }
        let adapter = try makeStartedAdapter(name: name ?? function.name, miniport: miniport, dma: function.dma, start: start)
        return (adapter, miniport)
    }

    public static func makeAdapter(function: F, name: String? = nil, configuration: VirtioNetConfiguration = VirtioNetConfiguration(),
                                   start: Bool = true) throws(NDISError) -> Adapter {
        try makeAdapterWithMiniport(function: function, name: name, configuration: configuration, start: start).adapter
    }
}

/// The virtio-net family's registry entry.
public enum VirtioNetFamily: MiniportFamily {
    public static let name = "virtio-net"

    public static var devices: [ClaimedDevice] {
        [ClaimedDevice(vendorID: VirtioNetDeviceID.vendor, deviceID: VirtioNetDeviceID.modern, name: "virtio 1.x net", verified: false)]
    }

    public static func refusal(vendorID: UInt16, deviceID: UInt16) -> String? {
        guard vendorID == VirtioNetDeviceID.vendor, deviceID == VirtioNetDeviceID.transitional else { return nil }
        return VirtioNetError.legacyDevice(deviceID).description
    }

    public static func makeAdapter<F: PCIFunction>(function: F, name: String, context: OpeningContext) throws(NDISError) -> Adapter {
        var config = VirtioNetConfiguration()
        config.linkTimeout = context == .device ? .seconds(20) : .seconds(5)
        // Paused: receive starts at the caller's restart, after its filters and queues are set.
        return try VirtioNetMiniport<F>.makeAdapter(function: function, name: name, configuration: config, start: false)
    }
}
