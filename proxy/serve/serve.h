/* serve: `tokentap serve` — options, the config file, and the wiring of
 * server, proxy and admin on one event loop, with graceful drain. */
#ifndef TOKENTAP_SERVE_H
#define TOKENTAP_SERVE_H

int serve_main(int argc, char **argv);

#endif
