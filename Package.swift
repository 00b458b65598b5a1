// swift-tools-version:6.1
import PackageDescription

// MINIPORT_FUZZ=1 adds the libFuzzer executable (Tests/Fuzz/run, Docs/TESTBED.md): it has no main
// of its own (libFuzzer's), so it only links with -sanitize=fuzzer and stays out of normal builds.
let fuzzBuild = Context.environment["MINIPORT_FUZZ"] == "1"

let package = Package(
    name: "Miniport",
    products: [
        .executable(name: "miniport", targets: ["miniport"]),
        .library(name: "NDIS", targets: ["NDIS"]),
        .library(name: "DriverKit", targets: ["DriverKit"]),
        .library(name: "IGB", targets: ["IGB"]),
        .library(name: "MiniportRegistry", targets: ["MiniportRegistry"]),
        .library(name: "ModelKit", targets: ["ModelKit"]),
        .library(name: "IGBModel", targets: ["IGBModel"]),
        .library(name: "VirtioNet", targets: ["VirtioNet"]),
        .library(name: "VirtioNetModel", targets: ["VirtioNetModel"]),
        .library(name: "Protocols", targets: ["Protocols"]),
        // The C API (Docs/C-API.md): libMiniportCAPI.so, installed as lib/libminiport.so with
        // include/miniport/miniport.h and pkg-config's miniport.pc by udev/install.
        .library(name: "MiniportCAPI", type: .dynamic, targets: ["MiniportC"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        // --metrics: swift-metrics counters, exported by swift-prometheus over a swift-nio listener.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.65.0"),
    ],
    targets: [
        // libpci through pkg-config (Debian: libpci-dev).
        .systemLibrary(
            name: "CLibPCI",
            pkgConfig: "libpci",
            providers: [.apt(["libpci-dev"])]
        ),
        // C macros and variadic calls Swift cannot import: VFIO ioctl numbers, ioctl and eventfd wrappers.
        .target(name: "CShim"),
        // Register access (volatile MMIO), DMA memory and the PCI-function contract shared by
        // the VFIO backend, the hardware model and every miniport.
        .target(
            name: "DeviceAccess",
            dependencies: ["CShim"],
            swiftSettings: [.enableExperimentalFeature("Volatile")]
        ),
        .target(name: "PCI", dependencies: ["CLibPCI", "DeviceAccess"]),
        .target(name: "VFIO", dependencies: ["CShim", "PCI", "DeviceAccess"]),
        .target(name: "NDIS", dependencies: ["DeviceAccess", "CShim"]),
        // What every hardware model builds on (Docs/MODEL.md): the emulated IOMMU, the wire and its
        // ports, frame parsing, checksums, CRC and Toeplitz.
        .target(name: "ModelKit", dependencies: ["DeviceAccess"]),
        .target(name: "IGBModel", dependencies: ["DeviceAccess", "ModelKit"], path: "Sources/Models/IGB"),
        .target(name: "VirtioNetModel", dependencies: ["DeviceAccess", "ModelKit"], path: "Sources/Models/VirtioNet"),
        // What every miniport builds on (Docs/ARCHITECTURE.md): the family protocol the registry lists, ...
        .target(name: "DriverKit", dependencies: ["NDIS", "DeviceAccess", "CShim"]),
        .target(name: "IGB", dependencies: ["NDIS", "DriverKit", "DeviceAccess"], path: "Sources/Drivers/IGB"),
        .target(name: "VirtioNet", dependencies: ["NDIS", "DriverKit", "DeviceAccess"], path: "Sources/Drivers/VirtioNet"),
        // The driver registry and adapter opening (device by PCI address or model NIC), shared by
        // the CLI and the C API.
        .target(
            name: "MiniportRegistry",
            dependencies: [
                "PCI", "VFIO", "NDIS", "DeviceAccess", "DriverKit", "IGB", "IGBModel", "VirtioNet", "VirtioNetModel", "CShim",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "Protocols", dependencies: ["NDIS"]),
        // miniport.h, the C API's only public header (no Swift type in it).
        .target(name: "CMiniportHeader"),
        // The C API's implementation: @_cdecl functions over MiniportRegistry and NDIS.
        .target(name: "MiniportC", dependencies: ["CMiniportHeader", "MiniportRegistry", "NDIS",
                                                  .product(name: "Logging", package: "swift-log")]),
        // lwIP 2.1.3 through pkg-config (Debian: liblwip-dev).
        .systemLibrary(name: "CLwIP", pkgConfig: "lwip", providers: [.apt(["liblwip-dev"])]),
        // lwIP on Miniport: the netif and servers of `miniport stack`, in C against miniport.h only.
        .target(name: "LwIPStack", dependencies: ["CMiniportHeader", "CLwIP"]),
        // Benchmarks (Docs/BENCHMARKS.md): rdtsc, the malloc interposer, retain hooks, callgrind requests.
        .target(name: "CBenchSupport", dependencies: ["CMiniportHeader"]),
        .target(
            name: "MiniportBench",
            dependencies: ["NDIS", "IGB", "IGBModel", "VirtioNet", "VirtioNetModel", "ModelKit", "DeviceAccess", "CBenchSupport", "MiniportC", "CMiniportHeader"]
        ),
        // `--metrics HOST:PORT` of the long-running commands (Docs/PROTOCOLS.md): adapter and queue
        // counters sampled into swift-metrics, served in the Prometheus text format by a swift-nio
        // HTTP/1.1 listener. Its own target so NDIS and the drivers never see swift-nio.
        .target(
            name: "MiniportMetrics",
            dependencies: [
                "NDIS",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // What `miniport bench --instructions` runs under callgrind (no async main: valgrind-safe).
        .executableTarget(name: "miniport-bench-profile", dependencies: ["MiniportBench"], path: "Sources/MiniportBenchProfile"),
        .executableTarget(
            name: "miniport",
            dependencies: [
                "PCI", "VFIO", "NDIS", "IGB", "IGBModel", "Protocols", "MiniportBench", "MiniportRegistry",
                "MiniportC", "LwIPStack", "MiniportMetrics",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Scenarios the VM test bed runs inside the guest against QEMU's NICs bound to vfio-pci.
        .executableTarget(
            name: "VMScenarios",
            dependencies: [
                "PCI", "VFIO", "NDIS", "IGB", "IGBModel", "Protocols", "DeviceAccess",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Tests/VM/Scenarios"
        ),
        // The fuzz targets as a library: the libFuzzer executable and the corpus replay test use it.
        .target(name: "FuzzTargets", dependencies: ["NDIS", "IGB", "IGBModel", "Protocols", "PCI", "DeviceAccess"]),
        .testTarget(name: "FuzzTests", dependencies: ["FuzzTargets"]),
        .testTarget(name: "PCITests", dependencies: ["PCI"], resources: [.copy("Fixtures")]),
        .testTarget(name: "VFIOTests", dependencies: ["VFIO", "PCI", "DeviceAccess"]),
        .testTarget(name: "NDISTests", dependencies: ["NDIS", "DeviceAccess"]),
        .testTarget(name: "IGBModelTests", dependencies: ["IGBModel", "DeviceAccess"]),
        .testTarget(name: "IGBTests", dependencies: ["IGB", "IGBModel", "NDIS", "DeviceAccess"]),
        .testTarget(name: "ProtocolsTests", dependencies: ["Protocols", "NDIS", "IGB", "IGBModel"]),
        // The conformance suite: every (miniport, model) pair of the registry (Docs/WRITING-A-MINIPORT.md).
        .testTarget(name: "ConformanceTests", dependencies: ["MiniportRegistry", "NDIS", "Protocols"]),
        .testTarget(name: "VirtioNetTests", dependencies: ["VirtioNet", "VirtioNetModel", "NDIS", "DeviceAccess", "DriverKit"]),
        .testTarget(name: "MiniportRegistryTests", dependencies: ["MiniportRegistry", "DriverKit", "IGB", "PCI", "NDIS"]),
        .testTarget(name: "MiniportCTests", dependencies: ["MiniportC", "CMiniportHeader", "MiniportRegistry", "NDIS"]),
        .testTarget(name: "MiniportMetricsTests", dependencies: ["MiniportMetrics", "MiniportRegistry", "NDIS", "Protocols"]),
        .testTarget(name: "MiniportBenchTests", dependencies: ["MiniportBench", "NDIS", "CBenchSupport"]),
    ]
)

if fuzzBuild {
    package.products.append(.executable(name: "miniport-fuzz", targets: ["MiniportFuzz"]))
    package.targets.append(.executableTarget(name: "MiniportFuzz", dependencies: ["FuzzTargets"]))
}
