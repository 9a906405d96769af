/* replay: `tokentap replay TRACE` — sends a recorded (or imported) trace
 * to a target with original timing, fixed concurrency or an open-loop
 * rate, keeps sessions in order, optionally rebuilds conversations from
 * the live answers, and reports through the shared metrics. */
#ifndef TOKENTAP_REPLAY_H
#define TOKENTAP_REPLAY_H

int replay_main(int argc, char **argv);

#endif
