/* Fuzz the VMDK driver: sparse headers, footers, grain directories and
 * tables, stream markers and descriptors (embedded, or descriptor files
 * whose extents stay closed). */
#define FUZZ_FORMAT "vmdk"
#include "fuzz-readback.inc"
