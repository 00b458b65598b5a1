import NDIS
@testable import Protocols

/// An adapter on the loopback miniport with host memory, initialized and running.
final class LoopbackBed {
    let memory = HostMemoryProvider()
    let miniport: LoopbackMiniport
    let adapter: Adapter

    init(name: String = "lo0", mac: MACAddress = MACAddress(0x02, 0, 0, 0, 0, 1), hardwareQueues: Int = 4, buffers: Int = 64) throws {
        var c = LoopbackMiniport.Configuration()
        c.macAddress = mac
        c.hardwareQueues = hardwareQueues
        c.buffersPerQueue = buffers
        c.lookaheadSplit = false
        miniport = LoopbackMiniport(c)
        adapter = Adapter(name: name, miniport: miniport, sharedMemory: memory)
        try adapter.initialize()
        try adapter.restart()
    }

    /// Polls until the miniport has nothing left.
    func pump() {
        while adapter.poll(budget: 64) > 0 {}
    }

    func halt() -> HaltReport { adapter.halt() }
}

/// A pool NBL over host memory holding `frame`, for tests of per-NBL code (VLAN info set by hand).
final class HandMadeNBL {
    let pool = NetBufferListPool(capacity: 1, name: "hand-made")
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 64)
    var chain: NetBufferListChain

    init(_ frame: [UInt8], vlan: UInt16? = nil, priority: UInt8 = 0, split: Int? = nil) {
        chain = pool.allocate(count: 1)
        let nbl = chain.first!
        frame.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: frame.count) }
        if let split {
            nbl.setLayout(segment0: BufferSegment(address: buffer, iova: 0, length: UInt32(split), capacity: UInt32(split)),
                          dataOffset: 0, dataLength: frame.count, sharedMemoryInfoValid: false)
            nbl.appendSegment(BufferSegment(address: buffer + split, iova: 0, length: UInt32(frame.count - split), capacity: 2048))
        } else {
            nbl.setLayout(segment0: BufferSegment(address: buffer, iova: 0, length: UInt32(frame.count), capacity: 4096),
                          dataOffset: 0, dataLength: frame.count, sharedMemoryInfoValid: false)
        }
        if let vlan {
            var info = NetBufferListInfo()
            info.vlanPresent = true
            info.vlanID = vlan
            info.userPriority = priority
            nbl.info = info
        }
    }

    var nbl: NetBufferList { chain.first! }

    deinit {
        pool.free(chain.removeAll { _ in true })
        buffer.deallocate()
    }
}

enum Addr {
    static let mac1 = MACAddress("52:54:00:aa:00:01")!
    static let mac2 = MACAddress("52:54:00:aa:00:02")!
    static let mac3 = MACAddress("52:54:00:aa:00:03")!
    static let peer = MACAddress("52:54:00:bb:00:99")!
    static let other = MACAddress("52:54:00:cc:00:42")!
}
