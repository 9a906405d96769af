/* net: socket address parsing and socket options shared by the listener
 * and the upstream client. */
#ifndef TOKENTAP_NET_H
#define TOKENTAP_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct net_addr {
    struct sockaddr_storage ss;
    socklen_t len;
};

/* Parses "HOST:PORT" or "[V6]:PORT" with a numeric host (or "localhost")
 * into *ret. 0 or -EINVAL. */
int net_parse_hostport(const char *s, struct net_addr *ret);

/* Formats an address as "HOST:PORT" into buf. */
void net_format(const struct net_addr *a, char *buf, size_t len);

/* Formats only the host part ("127.0.0.1"). */
void net_format_host(const struct net_addr *a, char *buf, size_t len);

/* Port of an address, host byte order. */
unsigned net_port(const struct net_addr *a);

/* Sets TCP_NODELAY: tokens are small writes that must leave at once. */
int net_set_nodelay(int fd);

struct event_base;

/* A libevent loop. NET_LOOP_PRECISE: timers on a precise clock (a
 * timerfd with epoll), for the simulator's token pacing and the load
 * generator's send times; the default clock is coarse (jiffies: timers may
 * fire up to ~4 ms early) but costs no timerfd_settime call per loop pass,
 * which a proxy whose timers are all timeouts does not need.
 * NET_LOOP_PRIORITIES: the priorities below. NULL on failure. */
enum { NET_LOOP_PRECISE = 1, NET_LOOP_PRIORITIES = 2 };
struct event_base *net_event_base_new(unsigned flags);

/* Event priorities of a loop made with NET_LOOP_PRIORITIES, most
 * urgent first. Each pass of the loop runs only the most urgent ones that
 * are ready, and at most NET_PRIO_BATCH callbacks of the others before it
 * looks for new readiness: bytes of streams in progress go before new
 * connections and requests, and both before work that can wait. Events that set none are NET_PRIO_NEW. Setting one on a
 * loop without priorities does nothing (it stays at the only one). */
enum net_prio {
    NET_PRIO_IO = 0,    /* a stream's bytes: upstream reads, writes */
    NET_PRIO_NEW = 1,   /* new connections, request heads, timers */
    NET_PRIO_LATER = 2, /* deferred work */
    NET_PRIOS = 3,
};
#define NET_PRIO_BATCH 16

/* Raises the soft open-file limit to the hard one: many streams need many
 * descriptors. Best effort (the limit stays as it was on failure). */
void net_raise_fd_limit(void);

struct bufferevent;

/* Writes what a socket bufferevent's output holds now, as much as the
 * socket takes, instead of on the loop's next pass. The output's front is
 * frozen for anyone but libevent's own writer, so it is thawed around the
 * write. Returns the bytes written or -1 (errno; the bytes stay queued). */
int net_write_bufferevent_output(struct bufferevent *bev);

/* The local address a socket is bound to. */
int net_sockname(int fd, struct net_addr *ret);

/* An address block: "127.0.0.0/8", "::1/128", or one address ("10.1.2.3"
 * is /32, "::1" /128). */
struct net_cidr {
    int family;            /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    unsigned prefix;       /* bits */
};

/* Parses s into *ret: 0 or -EINVAL. */
int net_parse_cidr(const char *s, struct net_cidr *ret);

/* True when the numeric address ip ("127.0.0.1", "::1", an IPv4-mapped
 * "::ffff:10.0.0.1") lies in c. */
bool net_cidr_contains(const struct net_cidr *c, const char *ip);

#endif
