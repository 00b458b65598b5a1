/// The subjects `miniport bench` knows.
public enum BenchSubjectKind: String, CaseIterable, Sendable {
    /// The IGB miniport on the 82576 hardware model: the real driver.
    case igb
    /// The NDIS core with a null miniport: the framework's own share.
    case ndis
    /// The NDIS LoopbackMiniport (a test miniport).
    case loopback
    /// The NDIS core with a null miniport and a C protocol driver through the C API (miniport.h).
    case capi
    /// The virtio-net miniport on the virtio-net model.
    case virtioNet = "virtio-net"

    /// What `miniport bench --model` runs unless told otherwise.
    public static let defaultForModel: BenchSubjectKind = .igb

    public func make() -> any BenchSubject {
        switch self {
        case .igb: IGBSubject()
        case .ndis: NDISSubject()
        case .loopback: LoopbackSubject()
        case .capi: CAPISubject()
        case .virtioNet: VirtioNetSubject()
        }
    }
}
