/* Fuzz the qcow (version 1) driver: header, backing name, L1 and L2
 * tables, plain and compressed clusters. */
#define FUZZ_FORMAT "qcow"
#include "fuzz-readback.inc"
