import Synchronization

/// The process-wide VFIO container and its DMA allocator: every device a process opens attaches its
/// group to the same container, so memory mapped once (VFIO_IOMMU_MAP_DMA) is reachable by every
/// device, and one IOVA allocator hands out addresses for all of them. A received buffer of NIC A
/// can then be sent by NIC B without a copy.
///
/// Reference-counted: each `VFIODevice` holds the domain from open to close; the last close frees
/// the DMA memory and closes the container. There is one domain per /dev/vfio directory and IOMMU
/// kind (no-IOMMU groups cannot share a type-1 container).
public final class VFIODMADomain: @unchecked Sendable {
    public let container: VFIOContainer
    public let allocator: VFIODMAAllocator
    /// Identity to compare: adapters whose memory comes from one domain forward zero-copy.
    public var identity: ObjectIdentifier { ObjectIdentifier(allocator) }
    let key: String
    /// Devices holding the domain (guarded by `registry`).
    var references = 0

    struct Registry: @unchecked Sendable { var domains: [String: VFIODMADomain] = [:] }
    static let registry = Mutex(Registry())

    init(key: String, container: VFIOContainer, allocator: VFIODMAAllocator) {
        self.key = key
        self.container = container
        self.allocator = allocator
    }

    /// Devices (of this process) currently sharing the domain.
    public var deviceCount: Int { Self.registry.withLock { _ in references } }

    /// The domain for `environment` (made on first use), with one more reference.
    /// - Throws: the container's errors (no /dev/vfio/vfio, no type-1 IOMMU, no permission).
    static func acquire(environment: VFIOEnvironment, noIOMMU: Bool, options: VFIOOptions) throws(VFIOError) -> VFIODMADomain {
        let key = environment.paths.devVFIO + (noIOMMU ? "#noiommu" : "")
        let result: Result<VFIODMADomain, VFIOError> = registry.withLock { r in
            if let d = r.domains[key] {
                d.references += 1
                return .success(d)
            }
            do throws(VFIOError) {
                let container = try VFIOContainer(environment: environment, noIOMMU: noIOMMU)
                let allocator = VFIODMAAllocator(mapper: container, environment: environment, hugepages: options.hugepages, iova: options.iova)
                let d = VFIODMADomain(key: key, container: container, allocator: allocator)
                d.references = 1
                r.domains[key] = d
                return .success(d)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Drops one reference; the last one frees every DMA region and closes the container.
    /// - Parameter detach: closes the releasing device's group (detaching it from the container). It
    ///   runs after the DMA memory is unmapped when this is the last reference, so the unmap happens
    ///   while the container still has an IOMMU; otherwise it runs at once.
    /// - Returns: the first error the allocator met while freeing.
    func release(detachingGroup detach: () -> Void) -> VFIOError? {
        let last: Bool = Self.registry.withLock { r in
            references -= 1
            guard references <= 0 else { return false }
            r.domains.removeValue(forKey: key)
            return true
        }
        guard last else {
            detach()
            return nil
        }
        let error = allocator.close()
        detach()
        container.close()
        return error
    }

    /// The domain `environment`'s devices share now, if any device holds it.
    public static func current(environment: VFIOEnvironment = .system, noIOMMU: Bool = false) -> VFIODMADomain? {
        let key = environment.paths.devVFIO + (noIOMMU ? "#noiommu" : "")
        return registry.withLock { $0.domains[key] }
    }
}
