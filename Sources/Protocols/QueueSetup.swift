import NDIS

/// Bad input to a protocol module or a command: one message that names the value and the fix.
public enum InputError: Error, Equatable, CustomStringConvertible {
    case badMAC(String)
    case badVLAN(String)
    case duplicateMAC(MACAddress)
    case duplicateVLAN(UInt16)
    case broadcastFilter
    case badIPv4(String)
    case badNumber(option: String, value: String, range: String)
    case missing(String)
    case zeroMAC(String)
    case notAHostIPv4(String, String)

    public var description: String {
        switch self {
        case let .badMAC(text): "bad MAC address '\(text)': write six hex pairs like 52:54:00:aa:00:01"
        case let .badVLAN(text): "bad VLAN id '\(text)': use a number from 1 to 4094"
        case let .duplicateMAC(mac): "conflicting filters: --mac \(mac) is given twice; give each address once"
        case let .duplicateVLAN(id): "conflicting filters: --vlan \(id) is given twice; give each VLAN id once"
        case .broadcastFilter: "conflicting filters: --mac ff:ff:ff:ff:ff:ff would take broadcast frames from the default queue, which always receives them; drop that --mac"
        case let .badIPv4(text): "bad IPv4 address '\(text)': write four numbers 0-255 like 192.168.1.10"
        case let .badNumber(option, value, range): "bad value '\(value)' for \(option): use \(range)"
        case let .missing(what): what
        case let .zeroMAC(text): "bad MAC address '\(text)': the all-zero address is no station's, no frame is sent to it; give the station's address like 52:54:00:aa:00:01"
        case let .notAHostIPv4(text, why): "cannot answer for '\(text)': \(why); give a unicast address like 192.0.2.10"
        }
    }
}

/// What a receive queue filters on, as the commands take it: one destination MAC or one VLAN id.
public enum QueueFilterSpec: Hashable, Sendable, CustomStringConvertible {
    case mac(MACAddress)
    case vlan(UInt16)

    /// `mac 52:54:00:aa:00:01` or `vlan 100`: the pcapng `if_description` and the table's filter column.
    public var description: String {
        switch self {
        case let .mac(m): "mac \(m)"
        case let .vlan(v): "vlan \(v)"
        }
    }

    /// The NDIS filter tests.
    public var tests: [FieldTest] {
        switch self {
        case let .mac(m): [.macDestination(m)]
        case let .vlan(v): [.vlanID(v)]
        }
    }

    /// Parses a MAC address (`52:54:00:aa:00:01` or with `-`).
    public static func parseMAC(_ text: String) throws(InputError) -> MACAddress {
        guard let mac = MACAddress(text) else { throw .badMAC(text) }
        guard mac != MACAddress(0, 0, 0, 0, 0, 0) else { throw .zeroMAC(text) }
        return mac
    }

    /// Parses a VLAN id: decimal, 1...4094 (0 marks a priority tag, 4095 is reserved; IEEE 802.1Q 9.6).
    public static func parseVLAN(_ text: String) throws(InputError) -> UInt16 {
        guard !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }), let v = UInt16(text), (1...4094).contains(v) else {
            throw .badVLAN(text)
        }
        return v
    }

    /// Parses and checks `--mac` and `--vlan` values: one queue per filter, MACs first, each in the
    /// order given. The same MAC or VLAN twice is a conflict; so is a broadcast MAC.
    public static func parse(macs: [String], vlans: [String]) throws(InputError) -> [QueueFilterSpec] {
        var specs: [QueueFilterSpec] = []
        var seenMACs = Set<MACAddress>(), seenVLANs = Set<UInt16>()
        for text in macs {
            let mac = try parseMAC(text)
            guard !mac.isBroadcast else { throw .broadcastFilter }
            guard seenMACs.insert(mac).inserted else { throw .duplicateMAC(mac) }
            specs.append(.mac(mac))
        }
        for text in vlans {
            let v = try parseVLAN(text)
            guard seenVLANs.insert(v).inserted else { throw .duplicateVLAN(v) }
            specs.append(.vlan(v))
        }
        return specs
    }
}

/// A receive queue a module uses, with its filters.
public struct QueueDescriptor: Sendable, Equatable {
    public var id: ReceiveQueueID
    public var filters: [QueueFilterSpec]
    /// The NDIS filter ids set on the queue (cleared at release).
    public var filterIDs: [ReceiveFilterID]
    public var isDefault: Bool { id.isDefault }

    public init(id: ReceiveQueueID, filters: [QueueFilterSpec], filterIDs: [ReceiveFilterID] = []) {
        self.id = id
        self.filters = filters
        self.filterIDs = filterIDs
    }

    /// `default`, or the filters joined with `, `.
    public var filterSummary: String {
        isDefault ? "default" : filters.map(\.description).joined(separator: ", ")
    }

    /// The pcapng interface for this queue.
    public var captureInterface: CaptureInterface {
        CaptureInterface(queue: id, description: filterSummary)
    }
}

/// The queues a module set up on an adapter: the default queue plus one VMQ queue per filter.
///
/// Allocation follows the VMQ order (ALLOCATE_QUEUE → QUEUE_ALLOCATION_COMPLETE → SET_FILTER);
/// release is the reverse (CLEAR_FILTER → FREE_QUEUE). Both go through the binding, which owns the queues.
public final class QueueSet {
    public unowned let binding: Binding
    /// The default queue first, then the allocated queues in id order.
    public private(set) var queues: [QueueDescriptor]
    /// Queues whose FREE_QUEUE is waiting for NBLs to come back.
    public private(set) var pendingFrees: [ReceiveQueueID] = []

    init(binding: Binding, queues: [QueueDescriptor]) {
        self.binding = binding
        self.queues = queues
    }

    /// Allocates one queue per filter spec on `binding`'s adapter; on failure, frees what it made.
    /// - Parameters:
    ///   - buffers: receive buffers per queue.
    ///   - lookahead: split every frame of each queue at this many bytes (LOOKAHEAD_SPLIT_REQUIRED); nil: no split.
    /// - Throws: `NDISError` from the adapter (no queue left, filter refused, lookahead out of range…).
    public static func allocate(_ specs: [QueueFilterSpec], on binding: Binding, buffers: Int = 256, lookahead: Int? = nil) throws(NDISError) -> QueueSet {
        let set = QueueSet(binding: binding, queues: [QueueDescriptor(id: .default, filters: [])])
        do {
            for spec in specs {
                var parameters = ReceiveQueueParameters(numberOfBuffers: buffers, name: spec.description)
                if let lookahead {
                    parameters.flags.insert(.lookaheadSplitRequired)
                    parameters.lookaheadSize = lookahead
                }
                guard case let .queueAllocated(id) = try binding.request(.allocateQueue(parameters)) else {
                    throw NDISError.miniportFailure("ALLOCATE_QUEUE answered without a queue id")
                }
                set.queues.append(QueueDescriptor(id: id, filters: [spec]))
                guard case let .allocationComplete(results) = try binding.request(.queueAllocationComplete([id])) else {
                    throw NDISError.miniportFailure("QUEUE_ALLOCATION_COMPLETE answered without statuses")
                }
                if let (_, status) = results.first, status != .success {
                    throw NDISError.resources("\(id) for \(spec) could not get its buffers (\(status))")
                }
                guard case let .filterSet(fid) = try binding.request(.setFilter(ReceiveFilterParameters(queue: id, tests: spec.tests))) else {
                    throw NDISError.miniportFailure("SET_FILTER answered without a filter id")
                }
                set.queues[set.queues.count - 1].filterIDs.append(fid)
            }
        } catch let error as NDISError {
            _ = set.release()
            throw error
        } catch {
            _ = set.release()
            throw .miniportFailure("\(error)")
        }
        set.queues.sort { $0.id < $1.id }
        return set
    }

    /// Clears the filters and frees the queues. A free that waits for NBLs is listed in `pendingFrees`.
    /// - Returns: the errors met (each queue is still attempted).
    @discardableResult
    public func release() -> [NDISError] {
        var errors: [NDISError] = []
        for i in queues.indices.reversed() where !queues[i].isDefault {
            for f in queues[i].filterIDs {
                do { _ = try binding.request(.clearFilter(f)) } catch { errors.append(error) }
            }
            queues[i].filterIDs.removeAll()
            do {
                if case .pending = try binding.request(.freeQueue(queues[i].id)) { pendingFrees.append(queues[i].id) }
            } catch { errors.append(error) }
        }
        queues.removeAll { !$0.isDefault }
        return errors
    }

    /// The capture interfaces, one per queue, in id order.
    public var captureInterfaces: [CaptureInterface] { queues.map(\.captureInterface) }
}

/// Which multicast frames each queue's filters accept, as a fixed table (no allocation per frame).
///
/// Hardware may copy a multicast frame to every pool (the 82576 does with RCTL.MPE, which
/// "all multicast" needs so the default queue sees every group). The contract of the tools is that a
/// multicast frame shows on the queues whose filters accept it, else on the default queue only: this
/// table tells which copies to keep. Broadcast and unicast frames are always kept.
public final class QueueAcceptance {
    /// Per queue id: the MAC filter (48 bits, `UInt64.max` for none) and the VLAN filter (0 for none).
    @usableFromInline let macs: UnsafeMutablePointer<UInt64>
    @usableFromInline let vlans: UnsafeMutablePointer<UInt16>

    public init(queues: [QueueDescriptor] = []) {
        macs = .allocate(capacity: QueueCounters.capacity)
        macs.initialize(repeating: .max, count: QueueCounters.capacity)
        vlans = .allocate(capacity: QueueCounters.capacity)
        vlans.initialize(repeating: 0, count: QueueCounters.capacity)
        set(queues)
    }

    deinit {
        macs.deallocate()
        vlans.deallocate()
    }

    /// Records the filters of `queues` (one MAC and one VLAN per queue are kept).
    public func set(_ queues: [QueueDescriptor]) {
        macs.update(repeating: .max, count: QueueCounters.capacity)
        vlans.update(repeating: 0, count: QueueCounters.capacity)
        for q in queues where !q.isDefault && Int(q.id.rawValue) < QueueCounters.capacity {
            for f in q.filters {
                switch f {
                case let .mac(m): macs[Int(q.id.rawValue)] = m.array.reduce(0) { $0 << 8 | UInt64($1) }
                case let .vlan(v): vlans[Int(q.id.rawValue)] = v
                }
            }
        }
    }

    /// False for a multicast copy on a queue whose filters do not accept it.
    @inlinable
    public func keeps(_ nbl: NetBufferList, queue: UInt16) -> Bool {
        guard queue != 0, Int(queue) < QueueCounters.capacity, let b0 = nbl.byte(at: 0), b0 & 1 == 1 else { return true }
        var dst: UInt64 = UInt64(b0)
        var broadcast = b0 == 0xff
        for i in 1..<6 {
            let b = nbl.byte(at: i) ?? 0
            dst = dst << 8 | UInt64(b)
            broadcast = broadcast && b == 0xff
        }
        if broadcast { return true }
        if macs[Int(queue)] == dst { return true }
        let want = vlans[Int(queue)]
        guard want != 0 else { return false }
        let info = nbl.info
        if info.vlanPresent { return info.vlanID == want }
        if nbl.byte(at: 12) == 0x81, nbl.byte(at: 13) == 0x00, let hi = nbl.byte(at: 14), let lo = nbl.byte(at: 15) {
            return (UInt16(hi & 0x0f) << 8 | UInt16(lo)) == want
        }
        return false
    }
}
