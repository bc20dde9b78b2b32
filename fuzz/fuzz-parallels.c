/* Fuzz the Parallels driver (header, BAT, cluster allocation, check and
 * its repairs). Corpus images use small clusters; inputs also run padded
 * with 1 MiB of zeros, so that a header cut before its clusters still
 * describes a whole image. */
#define FUZZ_FORMAT "parallels"
#define FUZZ_NAME "fuzz.hdd"
#define FUZZ_PAD (1u << 20)
#include "fuzz-format.inc"
