import DeviceAccess
import Glibc
import NDIS

/// Polls `condition` every `interval` until it holds or `timeout` passes (bring-up waits: reset
/// done, link up, a control command answered).
/// - Returns: true if the condition held in time.
public func waitUntil(_ timeout: Duration, interval: Duration = .microseconds(100), _ condition: () -> Bool) -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    while true {
        if condition() { return true }
        if clock.now >= deadline { return condition() }
        let ns = interval.components.attoseconds / 1_000_000_000 + interval.components.seconds * 1_000_000_000
        var ts = timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
        nanosleep(&ts, nil)
    }
}

/// The EtherType after at most one 802.1Q tag, the tag's TCI, and whether a tag was there: what a
/// miniport puts into `NetBufferListInfo.frameType` (and the VLAN fields when it strips nothing).
@inlinable @inline(__always)
public func classifyFrame(_ frame: UnsafeRawPointer, length: Int) -> (etherType: UInt16, tagged: Bool, tci: UInt16) {
    guard length >= 14 else { return (0, false, 0) }
    let type = UInt16(bigEndian: frame.loadUnaligned(fromByteOffset: 12, as: UInt16.self))
    guard type == 0x8100 else { return (type, false, 0) }
    guard length >= 18 else { return (0, true, 0) }
    return (UInt16(bigEndian: frame.loadUnaligned(fromByteOffset: 16, as: UInt16.self)), true,
            UInt16(bigEndian: frame.loadUnaligned(fromByteOffset: 14, as: UInt16.self)))
}

/// Broadcast (ff:ff:ff:ff:ff:ff), other multicast (group bit), or neither.
@inlinable @inline(__always)
public func destinationKind(_ frame: UnsafeRawPointer) -> (broadcast: Bool, multicast: Bool) {
    let b0 = frame.load(as: UInt8.self)
    guard b0 & 1 != 0 else { return (false, false) }
    let all = b0 == 0xFF && frame.loadUnaligned(fromByteOffset: 1, as: UInt8.self) == 0xFF
        && frame.loadUnaligned(fromByteOffset: 2, as: UInt32.self) == 0xFFFF_FFFF
    return (all, !all)
}

/// Adapter construction every family shares: an adapter around `miniport` with DMA memory from
/// `dma`, initialized, and restarted unless `start` is false (callers that set filters first
/// restart it themselves). A failed restart halts the adapter again.
public func makeStartedAdapter(name: String, miniport: any MiniportDriver, dma: any DMAAllocator, start: Bool) throws(NDISError) -> Adapter {
    let adapter = Adapter(name: name, miniport: miniport, sharedMemory: DMASharedMemoryProvider(dma))
    try adapter.initialize()
    if start {
        do { try adapter.restart() } catch {
            adapter.halt()
            throw error
        }
    }
    return adapter
}

extension MiniportHandle {
    /// Completes every NBL of `chain` with `status` (sends refused while paused or after removal).
    public func completeSends(_ chain: consuming NetBufferListChain, status: NDISStatus) {
        chain.forEach { $0.status = status }
        sendComplete(chain)
    }
}
