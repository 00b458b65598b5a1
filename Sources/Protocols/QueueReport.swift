import NDIS

/// Per-queue figures of a run (capture, demo, counter), in the shape scripts read:
/// `{"queues": [{"id": 0, "default": true, "filters": [{"mac": "…"} or {"vlan": 100}], "frames": …, "bytes": …}], "drops": …}`.
public struct QueueReport: Sendable, Equatable {
    public struct Queue: Sendable, Equatable {
        public var id: UInt16
        public var isDefault: Bool
        public var filters: [QueueFilterSpec]
        public var frames: UInt64
        public var bytes: UInt64
        public init(id: UInt16, isDefault: Bool, filters: [QueueFilterSpec], frames: UInt64, bytes: UInt64) {
            self.id = id
            self.isDefault = isDefault
            self.filters = filters
            self.frames = frames
            self.bytes = bytes
        }
    }

    public var queues: [Queue]
    /// Frames lost: dropped by the hardware, by the framework, or not written.
    public var drops: UInt64

    public init(queues: [Queue], drops: UInt64) {
        self.queues = queues
        self.drops = drops
    }

    /// The figures of `counters` for `queues`, in queue id order.
    public init(queues: [QueueDescriptor], counters: QueueCounters, drops: UInt64) {
        self.queues = queues.sorted { $0.id < $1.id }.map {
            Queue(id: $0.id.rawValue, isDefault: $0.isDefault, filters: $0.filters,
                  frames: counters.frames(queue: $0.id), bytes: counters.bytes(queue: $0.id))
        }
        self.drops = drops
    }

    public var totalFrames: UInt64 { queues.reduce(0) { $0 + $1.frames } }
    public var totalBytes: UInt64 { queues.reduce(0) { $0 + $1.bytes } }

    /// One-line JSON, keys in the documented order.
    public var json: String {
        let qs = queues.map { q -> String in
            let filters = q.filters.map { f -> String in
                switch f {
                case let .mac(m): "{\"mac\": \"\(m)\"}"
                case let .vlan(v): "{\"vlan\": \(v)}"
                }
            }.joined(separator: ", ")
            return "{\"id\": \(q.id), \"default\": \(q.isDefault), \"filters\": [\(filters)], \"frames\": \(q.frames), \"bytes\": \(q.bytes)}"
        }.joined(separator: ", ")
        return "{\"queues\": [\(qs)], \"drops\": \(drops)}"
    }

    /// A table for people: one row per queue, then the totals and drops.
    public var table: String {
        var rows: [[String]] = [["queue", "filters", "frames", "bytes"]]
        for q in queues {
            let filters = q.isDefault ? "default" : q.filters.map(\.description).joined(separator: ", ")
            rows.append(["rxq\(q.id)", filters, String(q.frames), String(q.bytes)])
        }
        rows.append(["total", "", String(totalFrames), String(totalBytes)])
        var widths = [Int](repeating: 0, count: 4)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
        func pad(_ s: String, _ w: Int, right: Bool) -> String {
            let fill = String(repeating: " ", count: max(0, w - s.count))
            return right ? fill + s : s + fill
        }
        var out = rows.map { r in
            [pad(r[0], widths[0], right: false), pad(r[1], widths[1], right: false),
             pad(r[2], widths[2], right: true), pad(r[3], widths[3], right: true)].joined(separator: "  ")
        }
        out.insert(String(repeating: "-", count: widths.reduce(6, +)), at: 1)
        out.append("drops: \(drops)")
        return out.joined(separator: "\n")
    }

    /// A one-line progress text: `rxq0 12/1.5K  rxq1 3/180 …`.
    public static func progressLine(queues: [QueueDescriptor], counters: QueueCounters) -> String {
        queues.map { "rxq\($0.id.rawValue) \(counters.frames(queue: $0.id)) fr" }.joined(separator: "  ")
    }
}
