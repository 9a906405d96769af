/* itest: helpers for integration tests that run real tokentap processes on
 * 127.0.0.1 and talk to them over blocking sockets: spawn/stop, and a small
 * HTTP/1.1 client that stamps every read (our own client, using the http
 * module to parse responses). */
#ifndef TOKENTAP_ITEST_H
#define TOKENTAP_ITEST_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "core/clock.h"

struct cJSON;

struct itest_proc {
    pid_t pid;
    int port;       /* from "listening on 127.0.0.1:PORT" */
    int out_fd;     /* rest of the child's stdout */
};

/* Starts the tokentap binary ($TOKENTAP) with args (NULL-terminated, not
 * including the program) and waits up to 10 s for its listening line.
 * Aborts the test on failure. */
void itest_spawn(struct itest_proc *p, const char *const *args);

/* Reads p's stdout (after its listening line) until a line starting with
 * prefix, and its rest (an address) into buf; false after 10 s. */
bool itest_read_line_after(struct itest_proc *p, const char *prefix, char *buf, size_t len);

/* SIGTERM, then waits up to 10 s (SIGKILL after); returns the exit status
 * (or 128+signal). */
int itest_stop(struct itest_proc *p);

#define ITEST_MAX_EVENTS 8192

struct itest_resp {
    int status;
    char head[8192];        /* status line and headers as received */
    size_t head_len;
    char *raw;              /* owned: every byte after the head, as received */
    size_t raw_len;
    char *body;             /* owned: de-chunked body */
    size_t body_len;
    usec_t t_sent;          /* request fully written */
    usec_t t_first_byte;    /* first response byte */
    usec_t t_end;           /* response complete (or connection closed) */
    bool complete;          /* the message ended properly */
    bool closed;            /* the server closed the connection */
    size_t n_events;        /* SSE events ("\n\n"-terminated) in the body */
    usec_t event_time[ITEST_MAX_EVENTS]; /* arrival of the read completing each event */
    size_t n_reads;         /* socket reads that carried body bytes */
};

/* One request on a new connection; extra_headers are "Name: value\r\n"
 * lines (may be NULL). Reads until the response ends or 30 s pass. */
void itest_request(int port, const char *method, const char *path, const char *extra_headers,
                   const char *body, size_t body_len, struct itest_resp *r);

/* The same on an open connection (fd from itest_connect); returns false if
 * the connection failed. */
bool itest_request_fd(int fd, const char *method, const char *path, const char *extra_headers,
                      const char *body, size_t body_len, struct itest_resp *r);

int itest_connect(int port);

/* Milliseconds to wait after sending a request before reading the
 * response (a slow client, for backpressure tests; its connections get a
 * 32 KiB receive buffer); 0 by default. */
extern unsigned itest_read_delay_ms;

/* TLS (tests of HTTPS listeners). A TLS connection to 127.0.0.1:port that
 * checks the server's certificate against ca_file (NULL: no check) for
 * host, a name or an IP address; NULL with the reason in err when the
 * handshake failed. */
struct itest_tls;
struct itest_tls *itest_tls_connect(int port, const char *ca_file, const char *host, char *err,
                                    size_t errlen);
/* One request on it, as itest_request_fd. */
bool itest_tls_request(struct itest_tls *t, const char *method, const char *path,
                       const char *extra_headers, const char *body, size_t body_len,
                       struct itest_resp *r);
/* The common name of the certificate the server showed. */
const char *itest_tls_peer_cn(struct itest_tls *t, char *buf, size_t len);
/* "TLSv1.3", ... */
const char *itest_tls_version(struct itest_tls *t);
void itest_tls_close(struct itest_tls *t);
/* One request on a new TLS connection checked against ca_file for
 * 127.0.0.1; false (and a closed, empty response) when the handshake failed. */
bool itest_request_tls(int port, const char *ca_file, const char *method, const char *path,
                       const char *extra_headers, const char *body, size_t body_len,
                       struct itest_resp *r);

/* Sends raw bytes on a new connection and reads the reply until the
 * server closes it or 5 s pass; returns malloc'd bytes. */
char *itest_raw(int port, const char *data, size_t len, size_t *ret_len);

/* Runs `$TOKENTAP args` through the shell (args may quote) to its end and
 * returns its exit status (124 after 20 s, 128+signal when killed); out gets the first
 * outlen - 1 bytes of its stdout and stderr. */
int itest_run(char *out, size_t outlen, const char *args);

/* itest_run with the arguments fmt makes. */
int itest_runf(char *out, size_t outlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* itest_runf for the long runs of bench: in tests/ (the fixtures'
 * scenarios name files beside them), ended after 300 s; the output goes
 * to stderr too when the exit status is not 0. */
int itest_runf_bench(char *out, size_t outlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void itest_resp_free(struct itest_resp *r);

/* Value of a response header (case-insensitive) copied into buf, or NULL. */
const char *itest_header(const struct itest_resp *r, const char *name, char *buf, size_t len);

/* Reads a whole file (aborts on failure); *ret_len gets its size. */
char *itest_read_file(const char *path, size_t *ret_len);

/* A JSON file parsed, or NULL when it is not JSON (aborts when it cannot
 * be read). */
struct cJSON *itest_read_json(const char *path);

/* The number at a dotted path of objects ("a.b.c"; a plain key is a
 * path of one), or -1 when there is none. */
double itest_json_num(const struct cJSON *j, const char *path);
/* The string at key, or "" when there is none. */
const char *itest_json_str(const struct cJSON *j, const char *key);

/* Path of a file in ../shared/llama-server or tests/fixtures ($FIXTURES). */
const char *itest_fixture(const char *name, char *buf, size_t len);

/* Resident memory of a process in KiB (from /proc), or -1. */
long itest_rss_kb(pid_t pid);

/* A scripted raw TCP peer standing in for a misbehaving upstream: for
 * each request head it reads, it waits delay_ms (from the request after
 * the first delay_after ones on), writes `response`, then after
 * body_delay_ms `body` body_repeat times (for big bodies), then after
 * tail_delay_ms `tail`
 * (a head split over two writes), and closes if close_after. */
struct itest_peer {
    int listen_fd;
    int port;
    const char *response;
    size_t response_len;
    const char *body;
    size_t body_len;
    size_t body_repeat;
    const char *tail;
    size_t tail_len;
    unsigned tail_delay_ms;
    unsigned delay_ms;
    unsigned delay_after;    /* requests answered without delay_ms first */
    unsigned body_delay_ms;  /* wait between `response` and `body` */
    bool close_after;
    int accepted;            /* connections accepted so far */
    volatile int requests;   /* request heads read so far */
    volatile int stop;
    void *thread;            /* owned: pthread_t */
};
void itest_peer_start(struct itest_peer *p);
void itest_peer_stop(struct itest_peer *p);

/* Runs a test function unless $ITEST_ONLY names another one. */
#define ITEST_RUN(fn)                                                                              \
    do {                                                                                           \
        const char *itest_only_ = getenv("ITEST_ONLY");                                            \
        if (!itest_only_ || strcmp(itest_only_, #fn) == 0)                                         \
            fn();                                                                                  \
    } while (0)

/* Sleeps ms milliseconds. */
void itest_sleep_ms(unsigned ms);

#endif
