/* tls: TLS on OpenSSL for the listener and the upstream client. It owns
 * the contexts (a client one per upstream target, verifying against the
 * system store or a CA file and keeping the last session to resume; a
 * server one that a reload swaps) and makes the connections: libevent
 * OpenSSL bufferevents, which do the handshake and carry the directions
 * that are not the token path. The token path (response bytes read from
 * an upstream, written to a client) calls OpenSSL itself through tls_read
 * and tls_write, as the plain path calls recv() and send(): no copy into
 * a bufferevent and no loop pass per token. OpenSSL types stay in tls.c. */
#ifndef TOKENTAP_TLS_H
#define TOKENTAP_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct bufferevent;
struct config_err;
struct event_base;
struct tls_client;
struct tls_server;

/* --- the client side: https upstreams --- */

struct tls_client_options {
    const char *host; /* borrowed: the name the certificate must carry (SNI too): DNS name or IP */
    const char
        *ca_file;  /* borrowed: PEM CAs to trust instead of the system store; NULL: the system's */
    bool insecure; /* no certificate verification at all */
};

/* A client context for one target (TLS 1.2 or later). 0, or -EINVAL with
 * a one-line reason in err (an unreadable CA file), or -ENOMEM. */
int tls_client_new(const struct tls_client_options *o, struct tls_client **ret,
                   struct config_err *err);
void tls_client_free(struct tls_client *c);

/* Starts TLS on fd, a connected socket, resuming the target's last
 * session when there is one. The bufferevent owns fd and reports
 * BEV_EVENT_CONNECTED when the handshake is done, BEV_EVENT_ERROR when it
 * failed (tls_failure says why). NULL on allocation failure (fd stays open). */
struct bufferevent *tls_client_bufferevent(struct tls_client *c, struct event_base *base, int fd);

/* Why a handshake failed, as far as the client can tell. */
enum tls_failure {
    TLS_FAILURE_OTHER,     /* an alert, an unexpected close, ... */
    TLS_FAILURE_UNTRUSTED, /* no trusted CA signed the certificate */
    TLS_FAILURE_HOSTNAME,  /* the certificate is for another name */
    TLS_FAILURE_EXPIRED,   /* the certificate has expired or is not valid yet */
    TLS_FAILURE_NOT_TLS,   /* the peer answered without TLS (plain HTTP) */
};

/* After BEV_EVENT_ERROR on a handshake: the cause. Takes the errors the
 * bufferevent kept. */
enum tls_failure tls_failure(struct bufferevent *bev);

/* True when the finished handshake resumed an earlier session. */
bool tls_resumed(struct bufferevent *bev);

/* --- the listening side --- */

/* A server context from a PEM certificate chain and its key (TLS 1.2 or
 * later). 0, or -EINVAL with a one-line reason in err, or -ENOMEM. */
int tls_server_new(const char *cert_file, const char *key_file, struct tls_server **ret,
                   struct config_err *err);

/* Reads the same files again; connections accepted from now on use them,
 * open ones keep theirs. On failure (0 or -EINVAL with err) the old
 * certificate stays in use. */
int tls_server_reload(struct tls_server *s, struct config_err *err);
void tls_server_free(struct tls_server *s);

/* Accepts TLS on fd (owned by the bufferevent from now on, closed if this
 * fails). BEV_EVENT_CONNECTED when the handshake is done. NULL on failure. */
struct bufferevent *tls_server_bufferevent(struct tls_server *s, struct event_base *base, int fd);

/* After a failed accept: why, in buf (for a debug log). True when the
 * client sent plain HTTP, so that a plain answer saying "use https" can
 * go to the socket. */
bool tls_accept_failure(struct bufferevent *bev, char *buf, size_t len);

/* --- the token path, on a bufferevent from this module, after its
 * handshake. These and the bufferevent's own writing share one TLS
 * stream: write directly only while the bufferevent's writing is off
 * (tls_write_output) or its output is empty (tls_write), and hand what is
 * left to it by adding it to the output in one piece and turning writing
 * on; it finishes an interrupted record. --- */

/* Reads the decrypted bytes that can be had without waiting, up to len:
 * >0, 0 at the end of the stream, -EAGAIN when nothing can be read now,
 * -EPROTO on a TLS error. */
ssize_t tls_read(struct bufferevent *bev, void *buf, size_t len);

/* True when bytes are buffered inside TLS: no readiness event will come
 * for them, so read again before waiting. */
bool tls_read_pending(struct bufferevent *bev);

/* Writes data now: returns how many bytes were taken (all of them unless
 * the socket is full; 0 too after an error, which the bufferevent reports
 * when it writes the rest). */
size_t tls_write(struct bufferevent *bev, const void *data, size_t len);

/* Writes the bufferevent's output now, as much as the socket takes. */
void tls_write_output(struct bufferevent *bev);

/* The connection has nothing to do for now (between requests): its read
 * and write buffers (about 35 KiB) are freed unless bytes wait in them,
 * and come back with the next bytes. OpenSSL's SSL_MODE_RELEASE_BUFFERS
 * (nginx's choice) would free them after every record instead: a malloc
 * and free of 17 KiB per token event, each way (4.3 instead of 3.6 µs of
 * CPU per event at full speed, docs/performance.md). */
void tls_idle(struct bufferevent *bev);

/* Sends close_notify (best effort) before the connection is freed. */
void tls_close_notify(struct bufferevent *bev);

#endif
