/* Fuzz the Bochs driver (header, catalog, extent bitmaps) read-only; the
 * read-write half checks that a writable open is refused. */
#define FUZZ_FORMAT "bochs"
#define FUZZ_NAME "fuzz.bochs"
#include "fuzz-format.inc"
