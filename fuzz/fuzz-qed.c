/* Fuzz the QED driver: header, backing name, L1 and L2 tables, zero
 * clusters, allocation at the end of the file, check and its repair. */
#define FUZZ_FORMAT "qed"
#include "fuzz-readback.inc"
