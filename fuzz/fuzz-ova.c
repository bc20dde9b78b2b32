/* Fuzz the OVA driver: the tar member list (headers, checksums, names,
 * sizes, member types) and the VMDK disk read in place through a window
 * on the archive. OVA archives are read-only: the read-write half of the
 * target is refused at open. */
#define FUZZ_FORMAT "ova"
#define FUZZ_NAME "fuzz.ova"
#include "fuzz-format.inc"
