#ifndef MINIPORT_CLIBPCI_SHIM_H
#define MINIPORT_CLIBPCI_SHIM_H
#include <pci/pci.h>

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
#endif
