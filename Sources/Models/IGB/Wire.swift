import Glibc
import ModelKit

extension IGBModel {
    /// Puts a frame (destination MAC first, no FCS) on this NIC's wire; ``step()`` receives it.
    /// The bytes are copied. A full FIFO (or an overlong frame) counts as missed.
    public func inject(_ frame: some Collection<UInt8>) {
        let done: Void? = frame.withContiguousStorageIfAvailable { acceptFromWire(UnsafeRawBufferPointer($0)) }
        if done == nil {
            let copy = Array(frame)
            copy.withUnsafeBytes { acceptFromWire($0) }
        }
    }

    /// A frame arriving from the cable (inject, or the peer's transmitter).
    /// Takes only the FIFO's own lock, so a peer's thread may call it while holding its model lock;
    /// refused frames are counted (MPC) by the next step.
    func acceptFromWire(_ bytes: UnsafeRawBufferPointer) {
        _ = fifo.push(bytes)
    }

    /// Frames transmitted since the last call (oldest first), when no peer is connected.
    public func takeTransmitted() -> [[UInt8]] {
        let locked = lockIfThreaded()
        defer { unlock(locked) }
        let frames = transmitted
        transmitted.removeAll(keepingCapacity: true)
        return frames
    }

    /// Frames waiting in the receive FIFO.
    public var framesWaiting: Int { fifo.count }

    /// Connects two models back to back: what one transmits, the other receives.
    public static func connect(_ a: IGBModel, _ b: IGBModel) {
        WirePort.connect(a.port, b.port)
    }

    /// Disconnects this model (and its peer) from the wire.
    public func disconnect() {
        port.disconnect()
    }

    /// Puts a finished frame on the wire.
    func emit(_ p: UnsafeRawPointer, _ length: Int) {
        wireCounters.transmitted += 1
        if port.isConnected {
            _ = port.send(UnsafeRawBufferPointer(start: p, count: length))
        } else if configuration.keepTransmittedFrames {
            transmitted.append(Array(UnsafeRawBufferPointer(start: p, count: length)))
        }
    }

    // MARK: free-running mode

    /// Starts the model's own thread: model time follows the monotonic clock and work is done
    /// continuously. Register accesses are locked from now on. Call from the thread that drives the
    /// model, while it is not accessing registers.
    public func start() {
        guard thread == nil else { return }
        threaded.store(true, ordering: .sequentiallyConsistent)
        port.setFreeRunning(true)
        wallOrigin = Self.monotonicNanoseconds()
        modelOrigin = now
        keepRunning.store(true, ordering: .sequentiallyConsistent)
        var tid = pthread_t()
        let context = Unmanaged.passUnretained(self).toOpaque()
        pthread_create(&tid, nil, { raw in
            // Safety: the model outlives its thread; stop() (also run by deinit) joins it first.
            let model = Unmanaged<IGBModel>.fromOpaque(raw!).takeUnretainedValue()
            model.run()
            return nil
        }, context)
        thread = tid
    }

    /// Stops the thread and returns to stepped mode.
    public func stop() {
        guard let tid = thread else { return }
        keepRunning.store(false, ordering: .sequentiallyConsistent)
        pthread_join(tid, nil)
        thread = nil
        threaded.store(false, ordering: .sequentiallyConsistent)
        port.setFreeRunning(false)
    }

    /// True while the free-running thread runs.
    public var isRunning: Bool { thread != nil }

    private func run() {
        while keepRunning.load(ordering: .relaxed) {
            pthread_mutex_lock(mutex)
            let target = modelOrigin &+ (Self.monotonicNanoseconds() &- wallOrigin)
            advanceUnlocked(to: target)
            stepUnlocked()
            pthread_mutex_unlock(mutex)
            var pause = timespec(tv_sec: 0, tv_nsec: 20_000)
            nanosleep(&pause, nil)
        }
    }

    static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    // MARK: benchmark hook

    /// Benchmark mode: every ``step()`` fills all free descriptors of `queue` with a copy of `frame`
    /// (one-buffer write-back with DD|EOP and the length, no filtering, no parsing). Pass nil to stop.
    public func setBenchmarkReceive(frame: [UInt8]?, queue: Int = 0) {
        let locked = lockIfThreaded()
        defer { unlock(locked) }
        benchmarkFrame?.deallocate()
        benchmarkFrame = nil
        guard let frame, !frame.isEmpty else { return }
        let p = UnsafeMutableRawPointer.allocate(byteCount: frame.count, alignment: 64)
        frame.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: frame.count) }
        benchmarkFrame = p
        benchmarkLength = frame.count
        benchmarkQueue = queue
    }
}
