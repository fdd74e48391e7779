/* siphash.h — SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012),
 * and the keyed string hash of hash tables whose keys come from input: under a key drawn once
 * per process, nobody can precompute keys that collide (NOTES.md, "Files and memory"). */
#ifndef SMDLM_SIPHASH_H
#define SMDLM_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* SipHash-2-4 of data[0..n) under the 128-bit key k0 ‖ k1 (the key's bytes 0-7 and 8-15,
 * little-endian). */
uint64_t siphash24(uint64_t k0, uint64_t k1, const void *data, size_t n);

/* SipHash-2-4 of the string s under this process's random key (getrandom, drawn on first
 * use; thread-safe). */
uint64_t sm_keyed_hash(const char *s);

#endif
