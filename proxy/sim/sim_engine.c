#include "sim/sim_engine.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "sim/sim_text.h"

enum task_state {
    TASK_QUEUED,
    TASK_PREFILL,
    TASK_DECODE,
};

struct sim_task {
    struct sim_engine *e; /* borrowed */
    struct sim_task *next; /* queue link */
    struct sim_task *pf_prev, *pf_next; /* prefill list links, while in TASK_PREFILL */
    struct sim_task_params p;
    char *prompt;         /* owned copy */
    struct sim_task_cb cb;
    void *ctx;            /* borrowed */
    uint64_t id;
    enum task_state state;
    int slot;             /* -1 while queued */
    size_t produced;
    usec_t start, first, due; /* start of prefill, first token, next due time */
    double remaining;     /* prefill: prompt tokens still to process */
    double rate;          /* prefill: tokens/s since last_update */
    usec_t last_update;
    struct sim_timings t;
    bool in_callback, cancelled;
};

struct slot {
    struct sim_task *task; /* borrowed from the engine's ownership */
    struct event *timer;   /* owned */
    char *cache;           /* owned: last prompt + output */
    size_t cache_len;
    usec_t last_used;
    struct sim_slot_info info;
};

struct sim_engine {
    struct event_base *base; /* borrowed */
    struct sim_engine_options o;
    struct slot *slots;      /* owned, o.slots entries */
    struct sim_task *queue_head, *queue_tail; /* owned */
    unsigned busy;
    unsigned prefilling;      /* slots in prefill, sharing prefill_tps */
    struct sim_task *prefill_head; /* borrowed: the tasks in prefill, a list */
    struct event *prefill_timer;   /* owned: the end of the earliest prefill */
    usec_t prefill_due;            /* when prefill_timer fires */
    uint64_t rng;             /* jitter draws */
    uint64_t next_task_id;
    struct sim_metrics m;
};

static void slot_timer_cb(evutil_socket_t fd, short what, void *arg);
static void prefill_timer_cb(evutil_socket_t fd, short what, void *arg);

int sim_engine_new(struct event_base *base, const struct sim_engine_options *opts,
                   struct sim_engine **ret)
{
    struct sim_engine *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->base = base;
    e->o = *opts;
    e->rng = opts->seed * 0x9e3779b97f4a7c15ull + 1;
    e->prefill_timer = evtimer_new(base, prefill_timer_cb, e);
    e->slots = calloc(opts->slots, sizeof(*e->slots));
    if (!e->prefill_timer || !e->slots)
        goto fail;
    for (unsigned i = 0; i < opts->slots; i++) {
        e->slots[i].info.id = i;
        e->slots[i].timer = evtimer_new(base, slot_timer_cb, &e->slots[i]);
        if (!e->slots[i].timer)
            goto fail;
    }
    *ret = e;
    return 0;
fail:
    sim_engine_free(e);
    return -ENOMEM;
}

static void task_free(struct sim_task *t)
{
    if (!t)
        return;
    free(t->prompt);
    free(t);
}

void sim_engine_free(struct sim_engine *e)
{
    if (!e)
        return;
    if (e->slots) {
        for (unsigned i = 0; i < e->o.slots; i++) {
            if (e->slots[i].timer)
                event_free(e->slots[i].timer);
            free(e->slots[i].cache);
            task_free(e->slots[i].task);
        }
        free(e->slots);
    }
    while (e->queue_head) {
        struct sim_task *t = e->queue_head;
        e->queue_head = t->next;
        task_free(t);
    }
    if (e->prefill_timer)
        event_free(e->prefill_timer);
    free(e);
}

/* Step time multiplier with `busy` slots working together. */
static double batch_factor(const struct sim_engine *e)
{
    unsigned others = e->busy > 0 ? e->busy - 1 : 0;
    return 1.0 + e->o.batch_slowdown * (double)others;
}

/* A noise factor around 1 with relative SD jitter (a normal draw by
 * Box-Muller, clipped to 3 SD and to at least 0.1): real servers' steps
 * vary, and a benchmark's confidence intervals should see it. */
static double noise(struct sim_engine *e)
{
    if (e->o.jitter <= 0)
        return 1.0;
    double u[2];
    for (int i = 0; i < 2; i++) {
        e->rng ^= e->rng >> 12;
        e->rng ^= e->rng << 25;
        e->rng ^= e->rng >> 27;
        u[i] = ((double)((e->rng * 0x2545f4914f6cdd1dull) >> 11) + 1.0) / 9007199254740993.0;
    }
    double z = sqrt(-2.0 * log(u[0])) * cos(6.283185307179586 * u[1]);
    if (z > 3)
        z = 3;
    if (z < -3)
        z = -3;
    double f = 1.0 + e->o.jitter * z;
    return f < 0.1 ? 0.1 : f;
}

static usec_t decode_step(struct sim_engine *e)
{
    return (usec_t)llround(1e6 / e->o.decode_tps * batch_factor(e) * noise(e));
}

static void arm(struct event *timer, usec_t due)
{
    usec_t now = clock_now();
    usec_t wait = due > now ? due - now : 0;
    struct timeval tv = {.tv_sec = (time_t)(wait / USEC_PER_SEC),
                         .tv_usec = (suseconds_t)(wait % USEC_PER_SEC)};
    evtimer_add(timer, &tv);
}

/* Prompt processing is one shared resource, as in llama.cpp's batches:
 * slots in prefill split prefill_tps between them (each also slowed by
 * the batch factor). Whenever the set of busy or prefilling slots
 * changes, every prefill's progress is brought up to date and its end
 * recomputed at the new rate. One timer waits for the earliest end, so a
 * change costs a walk of the prefill list, not a timer per prefill (with
 * thousands of requests arriving at once, that was quadratic in timers). */
static void reschedule_prefills(struct sim_engine *e, usec_t now)
{
    double rate = e->prefilling ? e->o.prefill_tps / e->prefilling / batch_factor(e) : 0;
    usec_t first = 0;
    for (struct sim_task *t = e->prefill_head; t; t = t->pf_next) {
        t->remaining -= t->rate * (double)clock_diff(now, t->last_update) / 1e6;
        if (t->remaining < 0)
            t->remaining = 0;
        t->last_update = now;
        t->rate = rate;
        t->due = now + (usec_t)llround(t->remaining / rate * 1e6);
        if (t == e->prefill_head || t->due < first)
            first = t->due;
    }
    if (!e->prefill_head) {
        evtimer_del(e->prefill_timer);
        return;
    }
    e->prefill_due = first;
    arm(e->prefill_timer, first);
}

static void prefill_link(struct sim_engine *e, struct sim_task *t)
{
    t->pf_prev = NULL;
    t->pf_next = e->prefill_head;
    if (e->prefill_head)
        e->prefill_head->pf_prev = t;
    e->prefill_head = t;
    e->prefilling++;
}

static void prefill_unlink(struct sim_engine *e, struct sim_task *t)
{
    assert(t->state == TASK_PREFILL && e->prefilling > 0);
    if (t->pf_prev)
        t->pf_prev->pf_next = t->pf_next;
    else
        e->prefill_head = t->pf_next;
    if (t->pf_next)
        t->pf_next->pf_prev = t->pf_prev;
    t->pf_prev = t->pf_next = NULL;
    e->prefilling--;
}

/* When a task whose prefill ended at `ready` sends its first token. A
 * benchmark's stream asks for a fixed phase (first_token_at): its ticks
 * then fall where its client meant them to, however long the request took
 * to get here through a proxy, so every path is measured under the same
 * tick times. */
static usec_t first_token_due(const struct sim_engine *e, const struct sim_task *t, usec_t ready)
{
    usec_t at = t->p.first_token_at;
    if (at == 0)
        return ready;
    if (ready <= at)
        return at;
    usec_t step = (usec_t)llround(1e6 / e->o.decode_tps);
    if (step == 0)
        return ready;
    return at + (ready - at + step - 1) / step * step;
}

/* The prefills due by now end together; each slot's first token follows
 * from its own timer, at the prefill's end. */
static void prefill_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sim_engine *e = arg;
    usec_t now_due = e->prefill_due;
    struct sim_task *t = e->prefill_head;
    while (t) {
        struct sim_task *next = t->pf_next;
        if (t->due <= now_due) {
            prefill_unlink(e, t);
            t->t.prompt_us = t->due - t->start;
            e->m.prompt_tokens_total += t->t.prompt_n;
            e->m.prompt_seconds_total += (double)t->t.prompt_us / 1e6;
            if (t->t.prompt_tokens > e->m.n_tokens_max)
                e->m.n_tokens_max = t->t.prompt_tokens;
            t->state = TASK_DECODE;
            t->due = first_token_due(e, t, t->due);
            t->first = t->due;
            arm(e->slots[t->slot].timer, t->due);
        }
        t = next;
    }
    reschedule_prefills(e, now_due);
}

/* Eight bytes at a time: a slot pick compares the prompt with every free
 * slot's cache, and a sim with thousands of slots picks thousands of times. */
static size_t common_prefix(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen, i = 0;
    while (i + 8 <= n) {
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        if (x != y)
            break;
        i += 8;
    }
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

/* llama-server picks the free slot whose cache shares the longest prefix
 * with the prompt (if over 10% of it), else the least recently used. */
static int pick_slot(const struct sim_engine *e, const struct sim_task *t)
{
    int best = -1, lru = -1;
    size_t best_lcp = 0;
    for (unsigned i = 0; i < e->o.slots; i++) {
        const struct slot *s = &e->slots[i];
        if (s->task)
            continue;
        if (lru < 0 || s->last_used < e->slots[lru].last_used)
            lru = (int)i;
        size_t lcp = common_prefix(s->cache, s->cache_len, t->prompt, t->p.prompt_len);
        if (lcp > best_lcp) {
            best_lcp = lcp;
            best = (int)i;
        }
    }
    if (best >= 0 && (double)best_lcp > 0.1 * (double)t->p.prompt_len)
        return best;
    return lru;
}

static void start_task(struct sim_engine *e, struct sim_task *t, int slot_index)
{
    struct slot *s = &e->slots[slot_index];
    assert(!s->task && t->state == TASK_QUEUED); /* pick_slot gives free slots only */
    s->task = t;
    t->slot = slot_index;
    t->state = TASK_PREFILL;
    t->start = clock_now();
    e->busy++;

    uint32_t total = sim_text_count_tokens(t->p.prompt_len);
    uint32_t cached = 0;
    if (t->p.cache_prompt)
        cached = (uint32_t)(common_prefix(s->cache, s->cache_len, t->prompt, t->p.prompt_len) / 4);
    /* At least one prompt token is always evaluated, as llama-server does. */
    if (cached >= total)
        cached = total - 1;
    t->t.prompt_tokens = total;
    t->t.cache_n = cached;
    t->t.prompt_n = total - cached;

    /* The slot's cache now starts with this prompt. */
    free(s->cache);
    s->cache = t->prompt;
    s->cache_len = t->p.prompt_len;
    t->prompt = NULL;

    s->info = (struct sim_slot_info){
        .id = (unsigned)slot_index,
        .processing = true,
        .used = true,
        .id_task = t->id,
        .n_prompt_tokens = total,
        .n_prompt_tokens_processed = t->t.prompt_n,
        .n_prompt_tokens_cache = cached,
        .n_remain = (int64_t)t->p.n_tokens,
        .seed = t->p.seed,
        .n_predict = t->p.n_predict,
        .stream = t->p.stream,
    };
    e->m.requests_processing = e->busy;

    /* The noise of a prefill: how fast this prompt goes. */
    t->remaining = t->t.prompt_n * noise(e);
    t->rate = 0;
    t->last_update = t->start;
    prefill_link(e, t);
    reschedule_prefills(e, t->start);
    if (t->cb.on_start)
        t->cb.on_start(t->ctx, (unsigned)slot_index, &t->t);
}

static void dequeue(struct sim_engine *e)
{
    while (e->queue_head) {
        struct sim_task *t = e->queue_head;
        int slot = pick_slot(e, t);
        if (slot < 0)
            return;
        e->queue_head = t->next;
        if (!e->queue_head)
            e->queue_tail = NULL;
        t->next = NULL;
        assert(e->m.requests_deferred > 0);
        e->m.requests_deferred--;
        start_task(e, t, slot);
    }
}

/* Frees the task's slot; appends output to the cache when finished. */
static void release_slot(struct sim_engine *e, struct sim_task *t, bool finished)
{
    assert(t->slot >= 0 && e->slots[t->slot].task == t && e->busy > 0);
    struct slot *s = &e->slots[t->slot];
    evtimer_del(s->timer);
    if (finished && t->p.output_len) {
        char *c = realloc(s->cache, s->cache_len + t->p.output_len);
        if (c) {
            memcpy(c + s->cache_len, t->p.output, t->p.output_len);
            s->cache = c;
            s->cache_len += t->p.output_len;
        }
    }
    if (t->state == TASK_PREFILL)
        prefill_unlink(e, t);
    s->task = NULL;
    s->last_used = clock_now();
    s->info.processing = false;
    e->busy--;
    e->m.requests_processing = e->busy;
    reschedule_prefills(e, clock_now());
}

static void slot_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct slot *s = arg;
    struct sim_task *t = s->task;
    /* Armed when the prefill ends, deleted when the slot is released. */
    assert(t && t->state == TASK_DECODE);
    struct sim_engine *e = t->e;
    usec_t now_due = t->due;

    if (t->produced < t->p.n_tokens) {
        size_t index = t->produced++;
        s->info.n_decoded = (uint32_t)t->produced;
        s->info.n_remain = (int64_t)(t->p.n_tokens - t->produced);
        e->m.n_decode_total++;
        e->m.busy_slots_sum += e->busy;
        t->in_callback = true;
        t->cb.on_token(t->ctx, index);
        t->in_callback = false;
        if (t->cancelled) {
            task_free(t);
            dequeue(e);
            return;
        }
    }

    if (t->produced >= t->p.n_tokens) {
        t->t.predicted_n = (uint32_t)t->produced;
        t->t.predicted_us = now_due - t->first;
        e->m.tokens_predicted_total += t->t.predicted_n;
        e->m.tokens_predicted_seconds_total += (double)t->t.predicted_us / 1e6;
        release_slot(e, t, true);
        struct sim_timings timings = t->t;
        t->in_callback = true;
        t->cancelled = true; /* a cancel from on_done is a no-op */
        t->cb.on_done(t->ctx, &timings);
        task_free(t);
        dequeue(e);
        return;
    }

    t->due = now_due + decode_step(e);
    if (t->p.stall_us && t->produced == t->p.stall_after)
        t->due += t->p.stall_us;
    arm(s->timer, t->due);
}

int sim_engine_submit(struct sim_engine *e, const struct sim_task_params *p,
                      const struct sim_task_cb *cb, void *ctx, struct sim_task **ret)
{
    struct sim_task *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->prompt = malloc(p->prompt_len ? p->prompt_len : 1);
    if (!t->prompt) {
        free(t);
        return -ENOMEM;
    }
    memcpy(t->prompt, p->prompt, p->prompt_len);
    t->e = e;
    t->p = *p;
    t->p.prompt = NULL;
    t->cb = *cb;
    t->ctx = ctx;
    t->id = e->next_task_id++;
    t->slot = -1;
    t->state = TASK_QUEUED;
    if (e->queue_tail)
        e->queue_tail->next = t;
    else
        e->queue_head = t;
    e->queue_tail = t;
    e->m.requests_deferred++;
    *ret = t;
    dequeue(e);
    return 0;
}

void sim_engine_cancel(struct sim_engine *e, struct sim_task *t)
{
    if (t->state == TASK_QUEUED) {
        struct sim_task **pp = &e->queue_head, *prev = NULL;
        while (*pp && *pp != t) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        if (*pp) {
            *pp = t->next;
            if (e->queue_tail == t)
                e->queue_tail = prev;
            e->m.requests_deferred--;
        }
        task_free(t);
        return;
    }
    if (t->cancelled)
        return;
    release_slot(e, t, false);
    if (t->in_callback) {
        /* The timer callback frees it when the callback returns. */
        t->cancelled = true;
        return;
    }
    task_free(t);
    dequeue(e);
}

unsigned sim_engine_slots(const struct sim_engine *e)
{
    return e->o.slots;
}

unsigned sim_engine_free_slots(const struct sim_engine *e)
{
    return e->o.slots - e->busy;
}

uint32_t sim_engine_n_ctx(const struct sim_engine *e)
{
    return e->o.n_ctx;
}

void sim_engine_slot_info(const struct sim_engine *e, unsigned i, struct sim_slot_info *ret)
{
    *ret = e->slots[i].info;
}

void sim_engine_metrics(const struct sim_engine *e, struct sim_metrics *ret)
{
    *ret = e->m;
}
