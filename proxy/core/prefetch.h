/* prefetch: asks the CPU for memory that is about to be used. In a burst
 * a loop pass serves hundreds of streams whose state went cold while the
 * sim and the client ran; read one after another, each stream's lines
 * are a wait on memory. Asked for a few streams ahead, the waits overlap.
 * Hints only: nothing changes if the CPU ignores them. */
#ifndef TOKENTAP_PREFETCH_H
#define TOKENTAP_PREFETCH_H

#include <stddef.h>
#include <stdint.h>

#define PREFETCH_LINE 64

/* Every cache line of p[0, len), for writing (the callers update what
 * they read). */
static inline void prefetch_range(const void *p, size_t len)
{
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)(PREFETCH_LINE - 1);
    uintptr_t end = (uintptr_t)p + len;
    for (; a < end; a += PREFETCH_LINE)
        __builtin_prefetch((const void *)a, 1, 3);
}

#endif
