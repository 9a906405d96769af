#include "tap/tapq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tap/tap.h"

int tapq_init(struct tapq *q, size_t max_bytes, size_t max_pieces)
{
    *q = (struct tapq){.max_bytes = max_bytes, .max_pieces = max_pieces};
    q->bytes = malloc(max_bytes ? max_bytes : 1);
    q->pieces = malloc((max_pieces ? max_pieces : 1) * sizeof(*q->pieces));
    if (!q->bytes || !q->pieces)
        return -ENOMEM;
    return 0;
}

void tapq_finish(struct tapq *q)
{
    free(q->bytes);
    free(q->pieces);
    *q = (struct tapq){0};
}

bool tapq_push(struct tapq *q, struct tap *tap, const char *data, size_t len, usec_t t)
{
    if (len > q->max_bytes - q->n_bytes)
        return false;
    struct tapq_piece *last = q->n_pieces ? &q->pieces[q->n_pieces - 1] : NULL;
    /* Bytes of the same read (a parser hands a read on in views) are one
     * piece. */
    if (last && last->tap == tap && last->t == t && last->off + last->len == q->n_bytes) {
        last->len += len;
    } else {
        if (q->n_pieces == q->max_pieces)
            return false;
        q->pieces[q->n_pieces++] = (struct tapq_piece){tap, t, q->n_bytes, len};
    }
    memcpy(q->bytes + q->n_bytes, data, len);
    q->n_bytes += len;
    return true;
}

/* How many pieces ahead a tap's lines are asked for; its record's lines
 * come half as far ahead, once the tap's own (holding the pointer) are in. */
#define TAPQ_AHEAD 8

void tapq_flush(struct tapq *q)
{
    /* Tap callbacks (metrics, the dashboard, the recorder) never queue
     * more, so the pieces stay put while they are fed. */
    for (size_t i = 0; i < TAPQ_AHEAD && i < q->n_pieces; i++)
        tap_prefetch(q->pieces[i].tap);
    for (size_t i = 0; i < q->n_pieces; i++) {
        const struct tapq_piece *pc = &q->pieces[i];
        if (i + TAPQ_AHEAD < q->n_pieces)
            tap_prefetch(q->pieces[i + TAPQ_AHEAD].tap);
        if (i + TAPQ_AHEAD / 2 < q->n_pieces)
            tap_prefetch_record(q->pieces[i + TAPQ_AHEAD / 2].tap);
        tap_body(pc->tap, q->bytes + pc->off, pc->len, pc->t);
    }
    q->n_pieces = 0;
    q->n_bytes = 0;
}
