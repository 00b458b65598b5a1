#ifndef MINIPORT_CSHIM_H
#define MINIPORT_CSHIM_H
#include <linux/vfio.h>
#include <sys/ioctl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <linux/mman.h>

/* VFIO ioctl request numbers are function-like macros; export them as constants. */
static const unsigned long MINIPORT_VFIO_GET_API_VERSION = VFIO_GET_API_VERSION;
static const unsigned long MINIPORT_VFIO_CHECK_EXTENSION = VFIO_CHECK_EXTENSION;
static const unsigned long MINIPORT_VFIO_SET_IOMMU = VFIO_SET_IOMMU;
static const unsigned long MINIPORT_VFIO_GROUP_GET_STATUS = VFIO_GROUP_GET_STATUS;
static const unsigned long MINIPORT_VFIO_GROUP_SET_CONTAINER = VFIO_GROUP_SET_CONTAINER;
static const unsigned long MINIPORT_VFIO_GROUP_UNSET_CONTAINER = VFIO_GROUP_UNSET_CONTAINER;
static const unsigned long MINIPORT_VFIO_GROUP_GET_DEVICE_FD = VFIO_GROUP_GET_DEVICE_FD;
static const unsigned long MINIPORT_VFIO_DEVICE_GET_INFO = VFIO_DEVICE_GET_INFO;
static const unsigned long MINIPORT_VFIO_DEVICE_GET_REGION_INFO = VFIO_DEVICE_GET_REGION_INFO;
static const unsigned long MINIPORT_VFIO_DEVICE_GET_IRQ_INFO = VFIO_DEVICE_GET_IRQ_INFO;
static const unsigned long MINIPORT_VFIO_DEVICE_SET_IRQS = VFIO_DEVICE_SET_IRQS;
static const unsigned long MINIPORT_VFIO_DEVICE_RESET = VFIO_DEVICE_RESET;
static const unsigned long MINIPORT_VFIO_IOMMU_GET_INFO = VFIO_IOMMU_GET_INFO;
static const unsigned long MINIPORT_VFIO_IOMMU_MAP_DMA = VFIO_IOMMU_MAP_DMA;
static const unsigned long MINIPORT_VFIO_IOMMU_UNMAP_DMA = VFIO_IOMMU_UNMAP_DMA;

/* ioctl with a pointer argument (glibc's is variadic). */
static inline int miniport_ioctl_ptr(int fd, unsigned long request, void *arg) { return ioctl(fd, request, arg); }
/* ioctl with an integer argument. */
static inline int miniport_ioctl_int(int fd, unsigned long request, unsigned long arg) { return ioctl(fd, request, arg); }
/* eventfd(2) is not exported by Swift's Glibc module. */
static inline int miniport_eventfd(unsigned int initval, int flags) { return eventfd(initval, flags); }
/* mmap flags for 2 MiB hugepages (MAP_HUGE_2MB is a shifted macro Swift does not import). */
static const int MINIPORT_MAP_HUGETLB = MAP_HUGETLB;
static const int MINIPORT_MAP_HUGE_2MB = MAP_HUGE_2MB;
static const int MINIPORT_MAP_POPULATE = MAP_POPULATE;
/* RLIMIT_MEMLOCK is an enum constant behind a macro in glibc. */
#include <sys/resource.h>
static const int MINIPORT_RLIMIT_MEMLOCK = RLIMIT_MEMLOCK;

/* Sizes of VFIO structures that end in a flexible array (Swift drops the array member). */
static const unsigned int MINIPORT_VFIO_IRQ_SET_HEADER_SIZE = sizeof(struct vfio_irq_set);
static const unsigned int MINIPORT_VFIO_IOMMU_INFO_SIZE = sizeof(struct vfio_iommu_type1_info);

static const int MINIPORT_EFD_CLOEXEC = EFD_CLOEXEC;
static const int MINIPORT_EFD_NONBLOCK = EFD_NONBLOCK;

/* Relaxed atomic adds and pointer swaps on plain memory: the NDIS datapath keeps its counters as
   plain integers (one thread) and switches to these when per-queue workers share them. */
static inline void miniport_atomic_add_long(long *p, long v) { __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
static inline void miniport_atomic_add_u64(unsigned long long *p, unsigned long long v) { __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
static inline void miniport_atomic_add_int(int *p, int v) { __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
static inline long miniport_atomic_load_long(const long *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
/* Multi-producer stack of linked records: push a run [first … last] whose `last->next` is at *last_next. */
static inline void miniport_atomic_push(void **head, void *first, void **last_next) {
    void *old = __atomic_load_n(head, __ATOMIC_RELAXED);
    do { *last_next = old; } while (!__atomic_compare_exchange_n(head, &old, first, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}
/* Takes the whole stack (the single consumer). */
static inline void *miniport_atomic_take_all(void **head) { return __atomic_exchange_n(head, (void *)0, __ATOMIC_ACQUIRE); }
static inline void *miniport_atomic_peek(void **head) { return __atomic_load_n(head, __ATOMIC_RELAXED); }
#endif
