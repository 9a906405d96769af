/* tapq: response bytes that a stream tap will read later, in arrival
 * order. A proxy forwards every byte at once, but in a burst (many
 * streams' tokens in one loop pass) reading each event (SSE, JSON,
 * metrics, the dashboard) before forwarding the next stream's event makes
 * the last stream of the burst wait for all of it. Queued here, the taps
 * read after the burst went out, each piece with the time it was read, so
 * every measurement is the same. Bounded: a full queue says so and the
 * caller flushes it. Pure: bytes and times in, tap_body calls out. */
#ifndef TOKENTAP_TAPQ_H
#define TOKENTAP_TAPQ_H

#include <stdbool.h>
#include <stddef.h>

#include "core/clock.h"

struct tap;

struct tapq_piece {
    struct tap *tap; /* borrowed: fed at flush; the owner flushes before freeing it */
    usec_t t;
    size_t off, len; /* in bytes */
};

struct tapq {
    char *bytes;               /* owned, max_bytes */
    struct tapq_piece *pieces; /* owned, max_pieces */
    size_t n_bytes, max_bytes;
    size_t n_pieces, max_pieces;
};

/* An empty queue holding at most max_bytes in max_pieces pieces. 0 or
 * -ENOMEM (q is then safe to tapq_finish). */
int tapq_init(struct tapq *q, size_t max_bytes, size_t max_pieces);
/* Frees the buffers; what is queued is dropped (flush first). */
void tapq_finish(struct tapq *q);

/* Queues data[0, len) read at t for tap. False when it does not fit (the
 * caller flushes and feeds it directly): nothing was queued then. */
bool tapq_push(struct tapq *q, struct tap *tap, const char *data, size_t len, usec_t t);

/* Feeds every queued piece to its tap (tap_body), in the order queued,
 * and empties the queue. */
void tapq_flush(struct tapq *q);

static inline bool tapq_empty(const struct tapq *q)
{
    return q->n_pieces == 0;
}

#endif
