import CBenchSupport
import CMiniportHeader
import MiniportC
import NDIS

/// The C API's own share: the NDIS subject's null miniport, with a protocol driver written in C
/// against miniport.h (Sources/CBenchSupport/capi_bench.c) instead of Swift. Its figures minus the
/// `ndis` subject's are what a C stack pays for the C API per packet.
public final class CAPISubject: BenchSubject {
    public let name = "capi"
    public let summary = "NDIS core with a null miniport and a C protocol driver through miniport.h: the C API's per-packet cost over the ndis subject"
    public let hasDevice = false
    let ringSize: Int

    public init(ringSize: Int = 512) { self.ringSize = ringSize }

    public func makeWorkload(mode: BenchMode, batch: Int, part: BenchPart) throws(BenchError) -> any BenchWorkload {
        switch mode {
        case .receive: return try CAPIWorkload(batch: batch, ringSize: ringSize, transmit: false)
        case .transmit: return try CAPIWorkload(batch: batch, ringSize: ringSize, transmit: true)
        case .forward: throw .setup("the capi subject measures receive and transmit; forward through the C API is two of those")
        }
    }
}

final class CAPIWorkload: BenchWorkload {
    let adapter: OpaquePointer
    let miniport: NullMiniport
    let counters: UnsafeMutablePointer<capi_bench_counters>
    var binding: OpaquePointer?
    var pool: OpaquePointer?
    let batch: Int
    let transmit: Bool
    private(set) var submitted: UInt64 = 0

    init(batch: Int, ringSize: Int, transmit: Bool) throws(BenchError) {
        self.batch = batch
        self.transmit = transmit
        let (a, m) = try NDISSubject.makeAdapter(transmit ? "capi-tx" : "capi-rx", ringSize: ringSize)
        miniport = m
        adapter = mpAdapterWrapping(a)
        counters = .allocate(capacity: 1)
        counters.initialize(to: capi_bench_counters(received: 0, completed: 0, failed: 0))
        var cb = capi_bench_callbacks(counters)
        guard mpBindingOpen(adapter, &cb, nil, 0, &binding) == MP_OK else { throw .setup("mp_binding_open: \(String(cString: mp_last_error()))") }
        if transmit {
            guard mpSendPoolCreate(binding, UInt32(ringSize), 2048, &pool) == MP_OK else {
                throw .setup("mp_send_pool_create: \(String(cString: mp_last_error()))")
            }
            // Fill every NBL once with the frame; sends then reuse them as they are.
            var taken: UInt32 = 0
            let all = mpSendPoolAlloc(pool, UInt32(ringSize), &taken)
            var p = all
            while let n = p {
                var cap: UInt32 = 0
                let buffer = mpNBLSendBuffer(n, &cap)
                NDISSubject.frame.withUnsafeBytes { buffer?.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                _ = mpNBLSetLength(n, UInt32(NDISSubject.frame.count))
                p = mpNBLNext(n)
            }
            mpSendPoolFree(binding, all)
        } else {
            m.arrivalsPerPoll = batch
        }
    }

    deinit { counters.deallocate() }

    func runBatch() -> Int {
        if transmit {
            var taken: UInt32 = 0
            let chain = mpSendPoolAlloc(pool, UInt32(batch), &taken)
            mpSend(binding, chain, 0)
            _ = mpAdapterPoll(adapter, Int32(batch))
            submitted &+= UInt64(taken)
            return Int(taken)
        }
        return Int(mpAdapterPoll(adapter, Int32(batch)))
    }

    func finish() throws(BenchError) {
        let c = counters.pointee
        if transmit {
            guard c.completed == submitted, c.failed == 0 else { throw .setup("capi transmit: \(submitted) sent, \(c.completed) completed, \(c.failed) failed") }
        } else {
            guard c.received == miniport.received else { throw .setup("capi receive: \(miniport.received) indicated, \(c.received) reached the C protocol") }
        }
        _ = mpBindingClose(binding)
        var report = mp_halt_report()
        guard mpAdapterClose(adapter, &report) == MP_OK else { throw .setup("capi halted unclean: \(String(cString: mp_last_error()))") }
    }
}
