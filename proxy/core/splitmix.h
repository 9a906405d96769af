/* splitmix: the splitmix64 generator (Steele, Lea and Flood, 2014), the
 * one source of made-up randomness: the sim's answer text, the agentic
 * prompt blocks, the stats bootstrap, and hashes of token and block ids.
 * Fast, seedable, the same everywhere; not for cryptography. */
#ifndef TOKENTAP_SPLITMIX_H
#define TOKENTAP_SPLITMIX_H

#include <stdint.h>

/* Advances *state and returns its next value. */
static inline uint64_t splitmix_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A hash of x that is never 0 (0 marks an empty slot in hash tables). */
static inline uint64_t splitmix_hash(uint64_t x)
{
    uint64_t h = splitmix_next(&x);
    return h ? h : 1;
}

#endif
