// VFIO container, group, device and DMA memory (issue 3).
