import NDIS

/// Bring-up and tear-down shared by the benchmark subjects.
enum BenchAdapters {
    /// An adapter on `miniport` with host memory, initialized and running.
    static func start(_ name: String, miniport: any MiniportDriver) throws(BenchError) -> Adapter {
        let adapter = Adapter(name: name, miniport: miniport, sharedMemory: HostMemoryProvider())
        do {
            try adapter.initialize()
            try adapter.restart()
        } catch { throw .setup("\(name): \(error)") }
        return adapter
    }

    /// Halts every adapter; a halt that is not clean is an error (the figures would hide a leak).
    static func haltClean(_ adapters: [Adapter]) throws(BenchError) {
        for a in adapters {
            let report = a.halt()
            guard report.isClean else { throw .setup("\(a.name) halted unclean: \(report)") }
        }
    }
}
