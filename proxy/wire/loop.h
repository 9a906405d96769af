/* loop: a command's event loop and the signal rules every command shares.
 * The first SIGINT or SIGTERM calls the command's on_stop, which starts an
 * orderly stop (drain the streams, abort the load, keep what was measured)
 * and ends the loop when that is done; a second one ends the loop at once.
 * Without an on_stop the first one ends it. SIGHUP calls on_hup when there
 * is one and is left alone otherwise. */
#ifndef TOKENTAP_LOOP_H
#define TOKENTAP_LOOP_H

struct event;
struct event_base;

typedef void (*loop_signal_cb)(void *arg);

struct loop {
    struct event_base *base;                 /* borrowed */
    struct event *sigint, *sigterm, *sighup; /* owned */
    loop_signal_cb on_stop;                  /* NULL: the first signal ends the loop */
    loop_signal_cb on_hup;                   /* NULL: SIGHUP is not handled */
    void *arg;                               /* borrowed: the callbacks' argument */
    unsigned stops;                          /* SIGINT/SIGTERM seen */
};

/* Installs the handlers on base. They stay until loop_finish, so a signal
 * while the command writes its results after the loop is caught, not
 * fatal. 0 or -ENOMEM (l is then safe to loop_finish). */
int loop_init(struct loop *l, struct event_base *base, loop_signal_cb on_stop,
              loop_signal_cb on_hup, void *arg);

/* Runs the loop until no event is left or it was ended. 0 or -EIO. */
int loop_run(struct loop *l);

/* Removes the handlers; a zeroed struct loop is fine. */
void loop_finish(struct loop *l);

#endif
