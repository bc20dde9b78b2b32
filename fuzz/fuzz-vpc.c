/* Fuzz the VHD driver (footer, dynamic header, BAT, block allocation). */
#define FUZZ_FORMAT "vpc"
#define FUZZ_NAME "fuzz.vhd"
#include "fuzz-format.inc"
