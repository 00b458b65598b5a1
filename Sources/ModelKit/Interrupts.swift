import DeviceAccess

/// MSI-X for a model's PCI function: one eventfd per vector, `count` of at most `available`.
/// - Throws: `ModelError.tooManyVectors` when the function has fewer vectors.
public func makeInterruptEvents(count: Int, available: Int) throws -> [InterruptEvent] {
    guard count > 0, count <= available else { throw ModelError.tooManyVectors(requested: count, available: available) }
    var events: [InterruptEvent] = []
    for _ in 0..<count { events.append(try InterruptEvent.make()) }
    return events
}
