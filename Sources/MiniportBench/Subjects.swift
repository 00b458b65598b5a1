/// The subjects `miniport bench` knows.
public enum BenchSubjectKind: String, CaseIterable, Sendable {
    /// The NDIS core with a null miniport: the framework's own share.
    case ndis
    /// The NDIS LoopbackMiniport (a test miniport).
    case loopback

    /// What `miniport bench --model` runs unless told otherwise.
    public static let defaultForModel: BenchSubjectKind = .ndis

    public func make() -> any BenchSubject {
        switch self {
        case .ndis: NDISSubject()
        case .loopback: LoopbackSubject()
        }
    }
}
