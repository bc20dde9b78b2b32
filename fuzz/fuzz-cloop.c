/* Fuzz the cloop driver (header, offsets table, zlib blocks) read-only;
 * the read-write half checks that a writable open is refused. */
#define FUZZ_FORMAT "cloop"
#define FUZZ_NAME "fuzz.cloop"
#include "fuzz-format.inc"
