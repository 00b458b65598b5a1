#ifndef MINIPORT_CLIBPCI_SHIM_H
#define MINIPORT_CLIBPCI_SHIM_H
#include <pci/pci.h>
#include <stdlib.h>
#include <string.h>

/* pci_lookup_name is variadic; Swift cannot call it. Fixed-argument wrappers. */
static inline char *miniport_pci_lookup_vendor(struct pci_access *a, char *buf, int size, unsigned vendor) {
    return pci_lookup_name(a, buf, size, PCI_LOOKUP_VENDOR, vendor);
}
static inline char *miniport_pci_lookup_device(struct pci_access *a, char *buf, int size, unsigned vendor, unsigned device) {
    return pci_lookup_name(a, buf, size, PCI_LOOKUP_DEVICE, vendor, device);
}
static inline char *miniport_pci_lookup_class(struct pci_access *a, char *buf, int size, unsigned cls) {
    return pci_lookup_name(a, buf, size, PCI_LOOKUP_CLASS, cls);
}
static inline char *miniport_pci_lookup_subsystem(struct pci_access *a, char *buf, int size, unsigned vendor, unsigned device, unsigned sv, unsigned sd) {
    return pci_lookup_name(a, buf, size, PCI_LOOKUP_SUBSYSTEM | PCI_LOOKUP_DEVICE, vendor, device, sv, sd);
}

/* The same lookups with extra PCI_LOOKUP_* flags (NO_NUMBERS: NULL when unknown; NO_HWDB: only the ids file). */
static inline char *miniport_pci_lookup_vendor_flags(struct pci_access *a, char *buf, int size, int flags, unsigned vendor) {
    return pci_lookup_name(a, buf, size, PCI_LOOKUP_VENDOR | flags, vendor);
}
static inline char *miniport_pci_lookup_device_flags(struct pci_access *a, char *buf, int size, int flags, unsigned vendor, unsigned device) {
    return pci_lookup_name(a, buf, size, PCI_LOOKUP_DEVICE | flags, vendor, device);
}
static inline char *miniport_pci_lookup_class_flags(struct pci_access *a, char *buf, int size, int flags, unsigned cls) {
    return pci_lookup_name(a, buf, size, PCI_LOOKUP_CLASS | flags, cls);
}
static inline char *miniport_pci_lookup_subsystem_flags(struct pci_access *a, char *buf, int size, int flags, unsigned vendor, unsigned device, unsigned sv, unsigned sd) {
    return pci_lookup_name(a, buf, size, PCI_LOOKUP_SUBSYSTEM | PCI_LOOKUP_DEVICE | flags, vendor, device, sv, sd);
}

/* pci_set_param takes `char *` (it copies the value); Swift passes `const char *`. */
static inline int miniport_pci_set_param(struct pci_access *a, const char *param, const char *value) {
    return pci_set_param(a, (char *)param, (char *)value);
}
/* libpci keeps the pointer and frees it at pci_cleanup (to_be_freed = 1), so hand it a copy. */
static inline void miniport_pci_set_ids_file(struct pci_access *a, const char *path) {
    pci_set_name_list_path(a, strdup(path), 1);
}
static const int MINIPORT_PCI_ACCESS_SYS_BUS_PCI = PCI_ACCESS_SYS_BUS_PCI;
#endif
