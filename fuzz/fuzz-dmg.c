/* Fuzz the DMG driver (koly trailer, property list and resource fork
 * parsers, mish blocks, chunk table, zlib and bzip2 chunks) read-only;
 * the read-write half checks that a writable open is refused. */
#define FUZZ_FORMAT "dmg"
#define FUZZ_NAME "fuzz.dmg"
#include "fuzz-format.inc"
