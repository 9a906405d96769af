/* Unit tests for live: lanes through their states, ticks sent once per
 * cursor, lanes that linger then go, hidden requests when every lane is in
 * flight, the 1-second figures, sessions, and a reader far behind getting
 * one bounded frame. Frames are read back with cJSON. */
#include <stdlib.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>

#include "check.h"
#include "tap/live.h"
#include "tap/record.h"

#define T0 (1000 * USEC_PER_SEC)
#define MS (USEC_PER_MSEC)

static cJSON *frame(struct live *l, struct live_cursor *c, usec_t now, size_t *ret_len)
{
    struct evbuffer *b = evbuffer_new();
    live_frame_json(l, c, b, now);
    size_t len = evbuffer_get_length(b);
    if (ret_len)
        *ret_len = len;
    cJSON *j = cJSON_ParseWithLength((const char *)evbuffer_pullup(b, -1), len);
    evbuffer_free(b);
    CHECK(j != NULL);
    return j;
}

static const cJSON *item(const cJSON *j, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(j, k);
}

static double num(const cJSON *j, const char *k)
{
    const cJSON *v = item(j, k);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* The lane or request whose record id ("rid") is id. */
static const cJSON *find_id(const cJSON *arr, uint64_t id)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        if ((uint64_t)num(e, "rid") == id)
            return e;
    }
    return NULL;
}

static void start(struct live *l, struct record *r, uint64_t id, const char *session, usec_t t)
{
    static const char path[] = "/v1/chat/completions";
    record_begin(r, id, "POST", path, sizeof(path) - 1, t);
    r->t_start = t;
    snprintf(r->upstream, sizeof(r->upstream), "up");
    snprintf(r->model, sizeof(r->model), "m");
    if (session)
        snprintf(r->session, sizeof(r->session), "%s", session);
    live_begin(l, r, "127.0.0.1", t);
}

static void head(struct live *l, struct record *r, usec_t t)
{
    r->t_response_head = t;
    r->stream = true;
    live_head(l, r, t);
}

static void token(struct live *l, struct record *r, usec_t t)
{
    static const uint64_t one[DIALECT_TOKEN_KINDS] = {1};
    record_token(r, t, one);
    live_token(l, r, t);
}

static void finish(struct live *l, struct record *r, enum record_outcome o, usec_t t)
{
    r->outcome = o;
    r->t_end = t;
    live_end(l, r, t);
}

static void lanes(void)
{
    struct live_options o;
    live_options_default(&o);
    struct live *l;
    CHECK_INT(live_new(&o, T0, &l), 0);
    struct live_cursor c = {0};
    struct record a;
    start(l, &a, 7, "sess-a", T0 + 10 * MS);
    CHECK(live_changed(l, &c, T0 + 20 * MS));

    cJSON *j = frame(l, &c, T0 + 20 * MS, NULL);
    const cJSON *ln = find_id(item(j, "lanes"), 7);
    CHECK(ln != NULL);
    CHECK_STR(cJSON_GetStringValue(item(ln, "st")), "wait");
    CHECK_STR(cJSON_GetStringValue(item(ln, "g")), "sess-a");
    CHECK_INT(num(ln, "t0"), 10);
    CHECK_INT(num(j, "queued"), 1);
    CHECK_INT(num(j, "in_flight"), 1);
    cJSON_Delete(j);
    CHECK(!live_changed(l, &c, T0 + 30 * MS));

    head(l, &a, T0 + 40 * MS);
    token(l, &a, T0 + 50 * MS);
    token(l, &a, T0 + 60 * MS);
    j = frame(l, &c, T0 + 70 * MS, NULL);
    ln = find_id(item(j, "lanes"), 7);
    CHECK_STR(cJSON_GetStringValue(item(ln, "st")), "gen");
    CHECK(item(ln, "g") == NULL); /* known to this reader: no metadata again */
    CHECK_INT(num(ln, "h"), 40);
    CHECK_INT(num(ln, "f"), 50);
    CHECK_INT(num(ln, "n"), 2);
    CHECK_INT(cJSON_GetArraySize(item(ln, "k")), 2);
    CHECK_INT(num(j, "queued"), 0);
    cJSON_Delete(j);

    /* Only the tick since the last frame; a new reader gets them all. */
    token(l, &a, T0 + 80 * MS);
    j = frame(l, &c, T0 + 90 * MS, NULL);
    ln = find_id(item(j, "lanes"), 7);
    CHECK_INT(cJSON_GetArraySize(item(ln, "k")), 1);
    CHECK_INT(cJSON_GetArrayItem(item(ln, "k"), 0)->valuedouble, 80);
    cJSON_Delete(j);
    struct live_cursor fresh = {0};
    j = frame(l, &fresh, T0 + 90 * MS, NULL);
    CHECK_INT(cJSON_GetArraySize(item(find_id(item(j, "lanes"), 7), "k")), 3);
    cJSON_Delete(j);

    /* The end: the lane stays, done, for the linger time, and the request
     * is in done and in its session. */
    finish(l, &a, RECORD_OK, T0 + 100 * MS);
    j = frame(l, &c, T0 + 110 * MS, NULL);
    ln = find_id(item(j, "lanes"), 7);
    CHECK_STR(cJSON_GetStringValue(item(ln, "st")), "done");
    CHECK_STR(cJSON_GetStringValue(item(ln, "o")), "ok");
    const cJSON *d = find_id(item(j, "done"), 7);
    CHECK(d != NULL);
    CHECK_NEAR(num(d, "ttft"), 40.0, 1e-9);
    CHECK_NEAR(num(d, "slot_wait"), 30.0, 1e-9);
    CHECK_NEAR(num(d, "prefill"), 10.0, 1e-9);
    CHECK_INT(num(d, "tokens"), 3);
    /* Gaps of 10 and 20 ms: the buckets < 16 ms and < 32 ms. */
    CHECK_INT(cJSON_GetArrayItem(item(d, "gaps"), 4)->valueint, 1);
    CHECK_INT(cJSON_GetArrayItem(item(d, "gaps"), 5)->valueint, 1);
    const cJSON *s = cJSON_GetArrayItem(item(j, "sessions"), 0);
    CHECK_STR(cJSON_GetStringValue(item(s, "g")), "sess-a");
    CHECK_INT(num(s, "requests"), 1);
    CHECK_INT(num(s, "in_flight"), 0);
    CHECK_NEAR(num(s, "ttft_max"), 40.0, 1e-9);
    CHECK_NEAR(num(s, "ttft_p50"), 40.0, 1e-9); /* one value: the sketch is clamped to it */
    cJSON_Delete(j);
    j = frame(l, &c, T0 + 100 * MS + o.linger + MS, NULL);
    CHECK(find_id(item(j, "lanes"), 7) == NULL);
    CHECK(find_id(item(j, "done"), 7) == NULL); /* this reader had it already */
    cJSON_Delete(j);
    struct live_cursor late = {0};
    j = frame(l, &late, T0 + 100 * MS + o.linger + MS, NULL);
    CHECK(find_id(item(j, "done"), 7) != NULL);
    cJSON_Delete(j);

    /* A request that is not generation is not shown. */
    struct record other;
    record_begin(&other, 9, "GET", "/health", 7, T0);
    live_begin(l, &other, NULL, T0 + 6 * USEC_PER_SEC);
    CHECK_INT(other.live_lane, 0);
    record_finish(&other);
    record_finish(&a);
    live_free(l);
}

/* Every lane in flight: the next request is counted, not shown; a
 * finished lane makes room at once. */
static void hidden(void)
{
    struct live_options o;
    live_options_default(&o);
    o.max_lanes = 2;
    struct live *l;
    CHECK_INT(live_new(&o, T0, &l), 0);
    struct record r[4];
    for (int i = 0; i < 3; i++)
        start(l, &r[i], (uint64_t)i + 1, NULL, T0 + MS);
    struct live_cursor c = {0};
    cJSON *j = frame(l, &c, T0 + 2 * MS, NULL);
    CHECK_INT(num(j, "hidden"), 1);
    CHECK_INT(num(j, "in_flight"), 3);
    CHECK_INT(cJSON_GetArraySize(item(j, "lanes")), 2);
    /* No session header: grouped by the address the caller gave. */
    CHECK_STR(cJSON_GetStringValue(item(cJSON_GetArrayItem(item(j, "lanes"), 0), "g")), "127.0.0.1");
    cJSON_Delete(j);
    head(l, &r[2], T0 + 3 * MS); /* a lane-less request leaves the queue too */
    finish(l, &r[2], RECORD_OK, T0 + 4 * MS);
    finish(l, &r[0], RECORD_TRUNCATED, T0 + 4 * MS);
    start(l, &r[3], 4, NULL, T0 + 5 * MS);
    j = frame(l, &c, T0 + 6 * MS, NULL);
    CHECK_INT(num(j, "hidden"), 0);
    CHECK_INT(num(j, "in_flight"), 2);
    CHECK_INT(num(j, "queued"), 2);
    CHECK(find_id(item(j, "lanes"), 4) != NULL);
    CHECK(find_id(item(j, "done"), 3) != NULL);
    cJSON_Delete(j);
    for (int i = 0; i < 4; i++)
        record_finish(&r[i]);
    live_free(l);
}

/* The 1-second figures: tokens, starts, errors, TTFT and ITL
 * percentiles per second; whole seconds only, each sent once. */
static void seconds(void)
{
    struct live_options o;
    live_options_default(&o);
    struct live *l;
    CHECK_INT(live_new(&o, T0, &l), 0);
    struct record r[10];
    for (int i = 0; i < 10; i++)
        start(l, &r[i], (uint64_t)i + 1, "s", T0 + 100 * MS);
    for (int i = 0; i < 10; i++) {
        head(l, &r[i], T0 + 110 * MS);
        /* TTFT 10..100 ms: p50 50, p90 90. */
        token(l, &r[i], T0 + 100 * MS + (usec_t)(i + 1) * 10 * MS);
        token(l, &r[i], T0 + 100 * MS + (usec_t)(i + 1) * 10 * MS + 5 * MS);
    }
    for (int i = 0; i < 10; i++)
        finish(l, &r[i], i == 0 ? RECORD_TIMEOUT : RECORD_OK, T0 + 500 * MS);
    struct live_cursor c = {0};
    cJSON *j = frame(l, &c, T0 + 900 * MS, NULL);
    CHECK_INT(cJSON_GetArraySize(item(j, "seconds")), 0); /* second 1 is not over */
    cJSON_Delete(j);
    j = frame(l, &c, T0 + 3500 * MS, NULL);
    const cJSON *sec = item(j, "seconds");
    CHECK_INT(cJSON_GetArraySize(sec), 3); /* seconds 1, 2, 3; one upstream: the total only */
    const cJSON *s1 = cJSON_GetArrayItem(sec, 0);
    CHECK_INT(cJSON_GetArrayItem(s1, 1)->valueint, 1);   /* second */
    CHECK_INT(cJSON_GetArrayItem(s1, 2)->valueint, 10);  /* started */
    CHECK_INT(cJSON_GetArrayItem(s1, 3)->valueint, 10);  /* finished */
    CHECK_INT(cJSON_GetArrayItem(s1, 4)->valueint, 1);   /* errors */
    CHECK_INT(cJSON_GetArrayItem(s1, 5)->valueint, 20);  /* token events */
    CHECK_INT(cJSON_GetArrayItem(s1, 6)->valueint, 10);  /* most in flight */
    CHECK_INT(cJSON_GetArrayItem(s1, 7)->valueint, 10);  /* most queued */
    CHECK_NEAR(cJSON_GetArrayItem(s1, 8)->valuedouble, 50, 0.07);  /* TTFT p50, within the sketch's error */
    CHECK_NEAR(cJSON_GetArrayItem(s1, 9)->valuedouble, 90, 0.07);  /* p90 */
    CHECK_NEAR(cJSON_GetArrayItem(s1, 11)->valuedouble, 5, 0.07);  /* ITL p50 */
    const cJSON *s3 = cJSON_GetArrayItem(sec, 2);
    CHECK_INT(cJSON_GetArrayItem(s3, 5)->valueint, 0);
    CHECK_INT(cJSON_GetArrayItem(s3, 6)->valueint, 0);
    CHECK(cJSON_IsNull(cJSON_GetArrayItem(s3, 8)));
    cJSON_Delete(j);
    /* A reader 20 minutes behind gets the last 15 minutes, once. */
    struct live_cursor old = c;
    size_t len;
    j = frame(l, &old, T0 + 1200 * USEC_PER_SEC, &len);
    CHECK_INT(cJSON_GetArraySize(item(j, "seconds")), LIVE_SECONDS);
    CHECK(len < 100000);
    cJSON_Delete(j);
    j = frame(l, &old, T0 + 1200 * USEC_PER_SEC + 500 * MS, NULL);
    CHECK_INT(cJSON_GetArraySize(item(j, "seconds")), 0);
    cJSON_Delete(j);
    for (int i = 0; i < 10; i++)
        record_finish(&r[i]);
    live_free(l);
}

/* A frame for a new reader with every lane full of ticks, every done
 * slot and every session used stays within its bound. */
static void bounded(void)
{
    struct live_options o;
    live_options_default(&o);
    struct live *l;
    CHECK_INT(live_new(&o, T0, &l), 0);
    static struct record r[600];
    char sess[32];
    for (int i = 0; i < 600; i++) {
        snprintf(sess, sizeof(sess), "session-%d", i);
        start(l, &r[i], (uint64_t)i + 1, sess, T0 + MS);
        head(l, &r[i], T0 + 2 * MS);
        for (int k = 0; k < 100; k++)
            token(l, &r[i], T0 + 3 * MS + (usec_t)k * MS);
        if (i >= 550)
            finish(l, &r[i], RECORD_OK, T0 + 200 * MS);
    }
    struct live_cursor c = {0};
    size_t len;
    cJSON *j = frame(l, &c, T0 + 300 * MS, &len);
    CHECK_INT(cJSON_GetArraySize(item(j, "lanes")), 512);
    CHECK_INT(num(j, "hidden"), 550 - 512);
    CHECK_INT(cJSON_GetArraySize(item(j, "sessions")), 256);
    CHECK_INT(cJSON_GetArraySize(item(cJSON_GetArrayItem(item(j, "lanes"), 0), "k")), LIVE_TICKS);
    CHECK(len < 2 * 1024 * 1024);
    cJSON_Delete(j);
    for (int i = 0; i < 600; i++)
        record_finish(&r[i]);
    live_free(l);
}

/* Two load generators number their requests alike: live's ids differ. */
static void same_record_id(void)
{
    struct live_options o;
    live_options_default(&o);
    struct live *l;
    CHECK_INT(live_new(&o, T0, &l), 0);
    struct record a, b;
    start(l, &a, 1, "x", T0 + MS);
    start(l, &b, 1, "y", T0 + MS);
    finish(l, &a, RECORD_OK, T0 + 2 * MS);
    finish(l, &b, RECORD_OK, T0 + 2 * MS);
    struct live_cursor c = {0};
    cJSON *j = frame(l, &c, T0 + 3 * MS, NULL);
    const cJSON *d = item(j, "done");
    CHECK_INT(cJSON_GetArraySize(d), 2);
    CHECK(num(cJSON_GetArrayItem(d, 0), "id") != num(cJSON_GetArrayItem(d, 1), "id"));
    CHECK_INT(num(cJSON_GetArrayItem(d, 1), "rid"), 1);
    cJSON_Delete(j);
    record_finish(&a);
    record_finish(&b);
    live_free(l);
}

int main(void)
{
    same_record_id();
    lanes();
    hidden();
    seconds();
    bounded();
    return check_done("test_live");
}
