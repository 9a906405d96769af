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

struct agentic_run;
struct event;
struct event_base;
struct evbuffer;
struct loadgen;
struct loadgen_header;
struct metrics;
struct record;
struct reqlog;
struct rewrite_result;
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
    struct agentic_run *ag;      /* owned: an agentic trace's run (replay_agentic.c), NULL for JSONL */
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

/* For replay_agentic.c, from replay.c: */
/* Counts a finished request in run (finished, send lag, uncorrected TTFT). */
void replay_count_done(struct replay_run *run, const struct record *r);
/* Stops the run after an error that is not the request's (-ENOMEM). */
void replay_fail(struct replay_run *run, int err);
/* Wakes the dispatcher at `at` (monotonic). */
void replay_arm(struct replay_run *run, usec_t at);
/* Runs the rewrite rules (and --thinking) on a request: see replay.c. */
int replay_apply_rules(struct replay_run *run, const char *method, const char *path,
                       struct loadgen_header *hdrs, size_t *nh, size_t cap, const char *body,
                       size_t body_len, struct rewrite_result *res);

/* replay_agentic.c: agentic traces (one file, or a directory of them). */
/* Whether path is an agentic trace or a directory (of them). 0 or -errno (printed). */
int replay_agentic_detect(const char *path, bool *ret);
/* Reads the trace(s) into run->ag; errors are printed. 0, -EINVAL or -ENOMEM. */
int replay_agentic_load(struct replay_run *run);
/* Asks the target for its tokenizer and template (run->lg and the target
 * are up). 0 or -ENOMEM; a target that cannot tell makes an estimate. */
int replay_agentic_calibrate(struct replay_run *run);
/* Starts runs as --users says; ends the loop when all is done. */
void replay_agentic_dispatch(struct replay_run *run);
/* Nothing more is sent (before aborting what is in flight); a no-op for a JSONL trace. */
void replay_agentic_stop(struct replay_run *run);
/* Appends the agentic parts of the summary JSON (",\"agentic\":...") to b. */
void replay_agentic_summary(struct replay_run *run, struct evbuffer *b);
void replay_agentic_free(struct agentic_run *ag);

#endif
