#include "wire/loop.h"

#include <errno.h>
#include <signal.h>

#include <event2/event.h>

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    struct loop *l = arg;
    if (l->stops++ == 0 && l->on_stop)
        l->on_stop(l->arg);
    else
        event_base_loopexit(l->base, NULL);
}

static void on_hup_signal(evutil_socket_t sig, short what, void *arg)
{
    struct loop *l = arg;
    l->on_hup(l->arg);
}

int loop_init(struct loop *l, struct event_base *base, loop_signal_cb on_stop,
              loop_signal_cb on_hup, void *arg)
{
    *l = (struct loop){.base = base, .on_stop = on_stop, .on_hup = on_hup, .arg = arg};
    l->sigint = evsignal_new(base, SIGINT, on_stop_signal, l);
    l->sigterm = evsignal_new(base, SIGTERM, on_stop_signal, l);
    if (on_hup)
        l->sighup = evsignal_new(base, SIGHUP, on_hup_signal, l);
    if (!l->sigint || !l->sigterm || (on_hup && !l->sighup) || evsignal_add(l->sigint, NULL) < 0 ||
        evsignal_add(l->sigterm, NULL) < 0 || (l->sighup && evsignal_add(l->sighup, NULL) < 0))
        return -ENOMEM;
    return 0;
}

int loop_run(struct loop *l)
{
    return event_base_dispatch(l->base) < 0 ? -EIO : 0;
}

void loop_finish(struct loop *l)
{
    if (l->sigint)
        event_free(l->sigint);
    if (l->sigterm)
        event_free(l->sigterm);
    if (l->sighup)
        event_free(l->sighup);
    l->sigint = l->sigterm = l->sighup = NULL;
}
