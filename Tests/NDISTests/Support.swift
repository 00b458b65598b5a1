import NDIS

/// A protocol module for tests: records every indication and either returns at once or holds.
final class Recorder: ProtocolDriver {
    struct Indication { let queue: ReceiveQueueID; let count: Int; let flags: ReceiveFlags; let frames: [[UInt8]]; let queueIDs: [UInt16] }
    var indications: [Indication] = []
    var borrowed: [Indication] = []
    var coIndications: [(VirtualConnectionHandle, Int)] = []
    var statuses: [StatusIndication] = []
    var sendCompletions: [NDISStatus] = []
    var held = NetBufferListChain()
    var hold = false
    var copiesResources = false
    var binding: Binding?

    var handlesResourcesIndications: Bool { copiesResources }

    func bindingOpened(_ binding: Binding) { self.binding = binding }

    func receiveNetBufferLists(_ chain: consuming NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
        var frames: [[UInt8]] = []
        var ids: [UInt16] = []
        chain.forEach { frames.append($0.dataBytes()); ids.append($0.info.receiveQueueID) }
        indications.append(Indication(queue: queue, count: count, flags: flags, frames: frames, queueIDs: ids))
        if hold { held.append(chain) } else { binding.returnNetBufferLists(chain) }
    }

    func receiveNetBufferListsWithResources(_ chain: borrowing NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
        var frames: [[UInt8]] = []
        chain.forEach { frames.append($0.dataBytes()) }
        borrowed.append(Indication(queue: queue, count: count, flags: flags, frames: frames, queueIDs: []))
    }

    func coReceiveNetBufferLists(_ chain: consuming NetBufferListChain, vc: VirtualConnection, count: Int, flags: ReceiveFlags) {
        coIndications.append((vc.handle, count))
        chain.forEach { precondition($0.sourceHandle == vc.sourceHandle) }
        if hold { held.append(chain) } else { vc.binding.returnNetBufferLists(chain) }
    }

    func sendNetBufferListsComplete(_ chain: consuming NetBufferListChain, binding: Binding) {
        chain.forEach { sendCompletions.append($0.status) }
        binding.freeSendNetBufferLists(chain)
    }

    func status(_ indication: StatusIndication, binding: Binding) { statuses.append(indication) }

    var allFrames: [[UInt8]] { indications.flatMap(\.frames) }

    func returnHeld() {
        guard let binding else { return }
        let chain = held.removeAll { _ in true }
        binding.returnNetBufferLists(chain)
    }
}

/// An Ethernet frame: destination, source, optional VLAN tag, EtherType, payload (padded to 60).
func frame(to dst: MACAddress, from src: MACAddress = MACAddress(0x02, 0, 0, 0, 0, 0x99), vlan: UInt16? = nil,
           etherType: UInt16 = 0x0800, payload: [UInt8] = Array(repeating: 0xab, count: 46), tag: UInt8 = 0) -> [UInt8] {
    var f = dst.array + src.array
    if let vlan { f += [0x81, 0x00, UInt8(vlan >> 8), UInt8(vlan & 0xff)] }
    f += [UInt8(etherType >> 8), UInt8(etherType & 0xff)]
    var p = payload
    if !p.isEmpty { p[0] = tag }
    f += p
    while f.count < 60 { f.append(0) }
    return f
}

let macA = MACAddress(0x52, 0x54, 0, 0xaa, 0, 1)
let macB = MACAddress(0x52, 0x54, 0, 0xaa, 0, 2)
let macOther = MACAddress(0x52, 0x54, 0, 0xaa, 0, 9)

/// An adapter on the loopback miniport, initialized and running, with one recorder bound.
struct Rig {
    let provider = HostMemoryProvider()
    let miniport: LoopbackMiniport
    let adapter: Adapter
    let recorder = Recorder()
    let binding: Binding

    init(_ configure: (inout LoopbackMiniport.Configuration) -> Void = { _ in }) throws {
        var c = LoopbackMiniport.Configuration()
        configure(&c)
        miniport = LoopbackMiniport(c)
        adapter = Adapter(name: "lo0", miniport: miniport, sharedMemory: provider)
        try adapter.initialize()
        binding = try adapter.openBinding(recorder)
        try adapter.restart()
    }

    /// Allocates a queue, completes it, and sets one filter on it.
    func queue(_ tests: [FieldTest], flags: ReceiveFilterFlags = [], params: ReceiveQueueParameters = ReceiveQueueParameters(numberOfBuffers: 16)) throws -> (ReceiveQueueID, ReceiveFilterID) {
        guard case let .queueAllocated(q) = try binding.request(.allocateQueue(params)) else { throw NDISError.invalidState("no queue") }
        _ = try binding.request(.queueAllocationComplete([q]))
        guard case let .filterSet(f) = try binding.request(.setFilter(ReceiveFilterParameters(queue: q, tests: tests, flags: flags))) else {
            throw NDISError.invalidState("no filter")
        }
        return (q, f)
    }

    func run(_ frames: [[UInt8]]) {
        for f in frames { miniport.inject(f) }
        while adapter.poll(budget: 64) > 0 {}
    }
}
