/* Fuzz the qcow (version 1) driver: header, backing name, L1 and L2
 * tables, plain, compressed and AES-encrypted clusters (the key's secret
 * is "fuzz"). */
#define FUZZ_FORMAT "qcow"
#define FUZZ_KEY_OPTION "encrypt.key-secret"
#include "fuzz-readback.inc"
