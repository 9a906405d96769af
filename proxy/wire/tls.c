#include "wire/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/config.h"

/* One SSL_write at most one record's worth: when it cannot finish, the
 * bufferevent retries it from the front of its output, in pieces of up
 * to 16 KiB, and a retry must not be shorter than what was tried. */
#define WRITE_PIECE 16384

struct tls_client {
    SSL_CTX *ctx; /* owned */
    char host[256];
    bool host_is_ip;
    bool insecure;
    SSL_SESSION *session; /* owned: the last one the server gave, NULL before */
};

struct tls_server {
    SSL_CTX *ctx;               /* owned: for connections accepted from now on */
    char *cert_file, *key_file; /* owned */
};

/* The last queued OpenSSL error as a phrase, and the queue cleared. */
static const char *ssl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r ? r : "unknown error";
}

/* Settings both sides share. Renegotiation is off: the token path and the
 * bufferevent share one stream, and a renegotiation would need reads and
 * writes in the middle of either. A peer that closes without close_notify
 * ends the stream like a plain close: HTTP's framing tells a cut response. */
static void ctx_common(SSL_CTX *ctx)
{
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
}

/* --- client --- */

static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    struct tls_client *c = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    if (c->session)
        SSL_SESSION_free(c->session);
    c->session = sess;
    return 1; /* the reference is ours now */
}

int tls_client_new(const struct tls_client_options *o, struct tls_client **ret,
                   struct config_err *err)
{
    struct tls_client *c = calloc(1, sizeof(*c));
    int r = -ENOMEM;
    if (!c)
        return config_err_set(err, "out of memory"), -ENOMEM;
    if (strlen(o->host) >= sizeof(c->host)) {
        r = config_err_set(err, "host name too long for TLS: '%s'", o->host);
        goto fail;
    }
    snprintf(c->host, sizeof(c->host), "%s", o->host);
    unsigned char ip[16];
    c->host_is_ip = inet_pton(AF_INET, c->host, ip) == 1 || inet_pton(AF_INET6, c->host, ip) == 1;
    c->insecure = o->insecure;
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (!c->ctx) {
        config_err_set(err, "cannot create a TLS context: %s", ssl_reason());
        goto fail;
    }
    ctx_common(c->ctx);
    /* One read takes what the socket holds, not a record header and then
     * its body: half the syscalls per token event. Only where tls_read
     * reads: a bufferevent's reading would leave records read ahead
     * waiting for the next readiness event. */
    SSL_CTX_set_read_ahead(c->ctx, 1);
    SSL_CTX_set_app_data(c->ctx, c);
    /* Sessions are kept here, one per target, not in OpenSSL's cache. */
    SSL_CTX_set_session_cache_mode(c->ctx,
                                   SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(c->ctx, on_new_session);
    if (o->insecure) {
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
    } else {
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
        if (o->ca_file) {
            if (access(o->ca_file, R_OK) < 0) {
                r = config_err_set(err, "ca_file '%s': %s", o->ca_file, strerror(errno));
                goto fail;
            }
            if (SSL_CTX_load_verify_locations(c->ctx, o->ca_file, NULL) != 1) {
                r = config_err_set(err, "ca_file '%s': no CA certificate read (%s); expected PEM",
                                   o->ca_file, ssl_reason());
                goto fail;
            }
        } else if (SSL_CTX_set_default_verify_paths(c->ctx) != 1) {
            r = config_err_set(err,
                               "cannot use the system's CA store (%s): install "
                               "ca-certificates or give ca_file",
                               ssl_reason());
            goto fail;
        }
    }
    *ret = c;
    return 0;
fail:
    tls_client_free(c);
    return r;
}

void tls_client_free(struct tls_client *c)
{
    if (!c)
        return;
    if (c->session)
        SSL_SESSION_free(c->session);
    SSL_CTX_free(c->ctx);
    free(c);
}

struct bufferevent *tls_client_bufferevent(struct tls_client *c, struct event_base *base, int fd)
{
    SSL *ssl = SSL_new(c->ctx);
    if (!ssl)
        goto fail;
    if (!c->insecure) {
        /* The name is checked against the certificate's subject names (IP
         * addresses against its IP entries); SNI only for DNS names. */
        X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
        if (c->host_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, c->host) != 1
                          : SSL_set1_host(ssl, c->host) != 1)
            goto fail;
    }
    if (!c->host_is_ip && SSL_set_tlsext_host_name(ssl, c->host) != 1)
        goto fail;
    if (c->session && SSL_SESSION_is_resumable(c->session))
        SSL_set_session(ssl, c->session);
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, fd, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    if (!bev)
        goto fail;
    return bev;
fail:
    ERR_clear_error();
    SSL_free(ssl);
    return NULL;
}

/* Records that come back when TLS speaks to plain HTTP: "HTTP/1.1 400"
 * read as a record header. */
static bool not_tls_reason(int reason)
{
    return reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_UNKNOWN_PROTOCOL ||
           reason == SSL_R_PACKET_LENGTH_TOO_LONG || reason == SSL_R_HTTP_REQUEST;
}

enum tls_failure tls_failure(struct bufferevent *bev)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    enum tls_failure f = TLS_FAILURE_OTHER;
    if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH)
        f = TLS_FAILURE_HOSTNAME;
    else if (v == X509_V_ERR_CERT_HAS_EXPIRED || v == X509_V_ERR_CERT_NOT_YET_VALID)
        f = TLS_FAILURE_EXPIRED;
    else if (v != X509_V_OK)
        f = TLS_FAILURE_UNTRUSTED;
    unsigned long e;
    while ((e = bufferevent_get_openssl_error(bev)) != 0)
        if (f == TLS_FAILURE_OTHER && ERR_GET_LIB(e) == ERR_LIB_SSL &&
            not_tls_reason(ERR_GET_REASON(e)))
            f = TLS_FAILURE_NOT_TLS;
    return f;
}

bool tls_resumed(struct bufferevent *bev)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    return ssl && SSL_session_reused(ssl);
}

/* --- server --- */

static SSL_CTX *server_ctx(const char *cert_file, const char *key_file, struct config_err *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        config_err_set(err, "cannot create a TLS context: %s", ssl_reason());
        return NULL;
    }
    ctx_common(ctx);
    if (access(cert_file, R_OK) < 0) {
        config_err_set(err, "TLS certificate '%s': %s", cert_file, strerror(errno));
        goto fail;
    }
    if (access(key_file, R_OK) < 0) {
        config_err_set(err, "TLS key '%s': %s", key_file, strerror(errno));
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        config_err_set(err, "TLS certificate '%s': %s; expected a PEM certificate (chain)",
                       cert_file, ssl_reason());
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        config_err_set(err, "TLS key '%s': %s; expected a PEM private key without a passphrase",
                       key_file, ssl_reason());
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        config_err_set(err, "TLS key '%s' does not belong to the certificate '%s'", key_file,
                       cert_file);
        ERR_clear_error();
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

int tls_server_new(const char *cert_file, const char *key_file, struct tls_server **ret,
                   struct config_err *err)
{
    struct tls_server *s = calloc(1, sizeof(*s));
    if (!s || !(s->cert_file = strdup(cert_file)) || !(s->key_file = strdup(key_file))) {
        tls_server_free(s);
        return config_err_set(err, "out of memory"), -ENOMEM;
    }
    s->ctx = server_ctx(cert_file, key_file, err);
    if (!s->ctx) {
        tls_server_free(s);
        return -EINVAL;
    }
    *ret = s;
    return 0;
}

int tls_server_reload(struct tls_server *s, struct config_err *err)
{
    SSL_CTX *ctx = server_ctx(s->cert_file, s->key_file, err);
    if (!ctx)
        return -EINVAL;
    /* Open connections hold a reference of their own. */
    SSL_CTX_free(s->ctx);
    s->ctx = ctx;
    return 0;
}

void tls_server_free(struct tls_server *s)
{
    if (!s)
        return;
    SSL_CTX_free(s->ctx);
    free(s->cert_file);
    free(s->key_file);
    free(s);
}

struct bufferevent *tls_server_bufferevent(struct tls_server *s, struct event_base *base, int fd)
{
    SSL *ssl = SSL_new(s->ctx);
    struct bufferevent *bev = NULL;
    if (ssl)
        bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                             BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        SSL_free(ssl);
        close(fd);
    }
    return bev;
}

bool tls_accept_failure(struct bufferevent *bev, char *buf, size_t len)
{
    bool plain = false;
    unsigned long e, last = 0;
    while ((e = bufferevent_get_openssl_error(bev)) != 0) {
        if (ERR_GET_LIB(e) != ERR_LIB_SSL)
            continue;
        last = e;
        plain = plain || ERR_GET_REASON(e) == SSL_R_HTTP_REQUEST;
    }
    const char *r = last ? ERR_reason_error_string(last) : NULL;
    snprintf(buf, len, "%s", r ? r : "the connection ended during the handshake");
    return plain;
}

/* --- the token path --- */

ssize_t tls_read(struct bufferevent *bev, void *buf, size_t len)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    size_t got = 0;
    /* One SSL_read returns one record, and a token event is a record of
     * its own: take every record already read (like one recv() of what
     * the socket holds), so that a burst is forwarded in one write. */
    while (got < len) {
        size_t want = len - got > INT32_MAX ? INT32_MAX : len - got;
        ERR_clear_error();
        int n = SSL_read(ssl, (char *)buf + got, (int)want);
        if (n > 0) {
            got += (size_t)n;
            if (!SSL_has_pending(ssl))
                break; /* the socket is read again when it has more */
            continue;
        }
        int e = SSL_get_error(ssl, n);
        ERR_clear_error();
        if (got > 0)
            break; /* the end or the error comes with the next call */
        switch (e) {
        case SSL_ERROR_ZERO_RETURN:
            return 0;
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE:
            /* WANT_WRITE needs a renegotiation, which is off, or a key
             * update answer behind a full socket: the next read goes on. */
            return -EAGAIN;
        default:
            return -EPROTO;
        }
    }
    return (ssize_t)got;
}

bool tls_read_pending(struct bufferevent *bev)
{
    return SSL_has_pending(bufferevent_openssl_get_ssl(bev)) == 1;
}

size_t tls_write(struct bufferevent *bev, const void *data, size_t len)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    size_t done = 0;
    while (done < len) {
        int piece = len - done > WRITE_PIECE ? WRITE_PIECE : (int)(len - done);
        ERR_clear_error();
        int n = SSL_write(ssl, (const char *)data + done, piece);
        if (n <= 0) {
            ERR_clear_error();
            break;
        }
        done += (size_t)n;
    }
    return done;
}

void tls_write_output(struct bufferevent *bev)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    struct evbuffer *out = bufferevent_get_output(bev);
    for (;;) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(out, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
            return;
        int piece = v.iov_len > WRITE_PIECE ? WRITE_PIECE : (int)v.iov_len;
        ERR_clear_error();
        int n = SSL_write(ssl, v.iov_base, piece);
        if (n <= 0) {
            ERR_clear_error();
            return;
        }
        evbuffer_drain(out, (size_t)n);
    }
}

void tls_idle(struct bufferevent *bev)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    if (ssl && SSL_is_init_finished(ssl) && SSL_free_buffers(ssl) != 1)
        ERR_clear_error(); /* bytes still wait in them: they stay */
}

void tls_close_notify(struct bufferevent *bev)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    if (ssl && SSL_is_init_finished(ssl))
        SSL_shutdown(ssl);
    ERR_clear_error();
}
