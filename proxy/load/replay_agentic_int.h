/* The insides of an agentic replay, shared by replay_agentic.c (loading,
 * calibration, keeping --users runs going) and replay_agentic_summary.c
 * (the report). Not for other modules. */
#ifndef TOKENTAP_REPLAY_AGENTIC_INT_H
#define TOKENTAP_REPLAY_AGENTIC_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "load/agentic_driver.h"
#include "load/replay_int.h"

struct agentic_run {
    struct agentic_driver_traces traces; /* owned */
    struct agentic_driver *d;     /* owned: sends them (NULL until calibration) */
    struct agentic_driver_run **inst; /* owned: every run started, in order */
    size_t n_inst, cap_inst;
    unsigned users;               /* runs going at once */
    unsigned active;              /* runs started, with requests, not ended */
    size_t next_trace;            /* the trace the next run runs */
    unsigned round;
    bool closed;                  /* --duration or --requests reached: nothing more starts */
};

#endif
