/* replay's insides, shared by its two halves: replay.c runs a trace
 * (sessions, timing modes, sending), replay_cmd.c is the command around
 * it (options, target, summary). Not for other modules. */
#ifndef TOKENTAP_REPLAY_INT_H
#define TOKENTAP_REPLAY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"
#include "core/hist.h"
#include "load/replay.h"
#include "tap/trace.h"
#include "wire/loop.h"

struct event;
struct event_base;
struct loadgen;
struct metrics;
struct reqlog;
struct ui;

enum replay_item_state {
    REPLAY_ITEM_PENDING,
    REPLAY_ITEM_WAITING,   /* due, but its session's previous turn is still running */
    REPLAY_ITEM_IN_FLIGHT,
    REPLAY_ITEM_DONE,
};

struct replay_item {
    struct trace_entry e;        /* owned */
    size_t session;              /* index into sessions, SIZE_MAX for none */
    size_t turn;                 /* its place in the session */
    usec_t due;                  /* µs after start */
    usec_t recorded_duration;    /* from the recorded events, 0 unknown */
    enum replay_item_state state;
};

struct replay_session {
    char *id;                    /* owned */
    size_t *items;               /* owned: item indexes in turn order */
    size_t n, cap;
    bool busy;
    usec_t last_done;            /* when its last turn finished (monotonic) */
    char **answers;              /* owned: live answers, one per finished turn */
    size_t n_answers;
};

struct replay_run {
    struct replay_options o;
    struct event_base *base;     /* owned */
    struct sim *sim;             /* owned: the embedded simulator, if any */
    struct loadgen *lg;          /* owned */
    struct metrics *metrics;     /* owned */
    struct reqlog *log;          /* owned */
    struct ui *ui;               /* owned: --ui, NULL without */
    struct rewrite_rules *rules; /* owned, NULL: requests go as recorded */
    struct replay_item *items;   /* owned */
    size_t n_items;
    size_t *order;               /* owned: items by due time */
    size_t next;                 /* next in order to dispatch */
    struct replay_session *sessions; /* owned */
    size_t n_sessions;
    char target_url[300];
    usec_t start;
    uint64_t total;              /* requests this run will send */
    uint64_t sent, finished;
    struct hist send_lag;        /* t_sent - intended */
    struct hist ttft_uncorrected;/* first token - actual send */
    struct event *timer, *progress; /* owned */
    struct loop loop;            /* the signal rules while the trace runs */
    bool interrupted, stopping;
    bool failed;                 /* stopped early: a request could not be sent (no memory) */
    bool tty;
    unsigned skipped_lines;
};

/* Reads run->o.trace into items and sessions, ordered by start; errors
 * are printed. 0, -EINVAL/-EBADMSG (a bad trace), -ENOMEM or -EIO. */
int replay_load_trace(struct replay_run *run);

/* Sends the trace as run->o says and runs the event loop until every
 * request finished or a signal stopped it. run->lg, metrics and base are
 * set up. 0 or -ENOMEM. */
int replay_run_loop(struct replay_run *run);

/* Frees everything run owns (not run itself). */
void replay_run_free(struct replay_run *run);

#endif
