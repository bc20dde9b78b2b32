/* Fuzz the VDI driver (header, block map, block allocation, check). Its
 * blocks are 1 MiB, so inputs also run padded with 2 MiB of zeros. */
#define FUZZ_FORMAT "vdi"
#define FUZZ_NAME "fuzz.vdi"
#define FUZZ_PAD (2u << 20)
#include "fuzz-format.inc"
