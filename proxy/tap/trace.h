/* trace: the trace format (versioned JSONL, docs/trace-format.md), a
 * writer for the proxy's event loop and a reader for replay and import.
 *
 * Writer: trace_writer_add() formats one line in the caller's thread and
 * queues it (bounded in bytes) for a writer thread, which appends it with
 * one write() to a file opened O_APPEND and rotates files by size. A full
 * queue drops the line and counts it: the caller never waits for the disk.
 * Secret header values are replaced by TRACE_REDACTED before formatting.
 *
 * Reader: one entry per line, from three line formats detected per line:
 * our v1 lines, simple request lines ({"messages":...} or {"prompt":...})
 * and length-only lines ({"input_length":N,"output_length":M}, Mooncake
 * style), the last two turned into streamed requests (see trace_reader_next).
 * Neither side logs; errors come back as values. */
#ifndef TOKENTAP_TRACE_H
#define TOKENTAP_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"

#define TRACE_FORMAT_VERSION 1
#define TRACE_DEFAULT_PREFIX "trace"
#define TRACE_DEFAULT_MAX_FILE_BYTES (256ull * 1024 * 1024)
#define TRACE_DEFAULT_QUEUE_BYTES (64ull * 1024 * 1024)
/* The longest line the writer writes and the reader reads by default:
 * every line the writer accepts can be read back. */
#define TRACE_MAX_LINE (64u * 1024 * 1024)
/* Length-only lines: the largest input_length and output_length accepted
 * (a synthesized prompt is 4 bytes per token). */
#define TRACE_MAX_SYNTH_TOKENS 4000000
#define TRACE_REDACTED "<redacted>"

/* Where a reader entry came from. */
enum trace_source {
    TRACE_SOURCE_V1,      /* a line written by trace_writer */
    TRACE_SOURCE_REQUEST, /* {"messages":...} or {"prompt":...} */
    TRACE_SOURCE_LENGTHS, /* {"input_length":N,"output_length":M} */
};

struct trace_header {
    char *name;  /* owned by reader entries, borrowed in writer input */
    char *value; /* likewise */
};

/* One response SSE event: its data field (data lines joined by \n). */
struct trace_event {
    usec_t offset_us; /* arrival - the request's start (t_mono_us) */
    char *data;       /* owned by reader entries (NUL after len), borrowed in writer input */
    size_t len;
};

/* One request and what its response said. For trace_writer_add every
 * pointer is borrowed and only read during the call; NULL text fields
 * mean "none". Entries returned by trace_reader_next own every pointer
 * (trace_entry_finish frees them); text fields there are never NULL except
 * session, client, finish_reason, usage and timings. Byte fields (body,
 * response texts, event data) may hold NUL bytes: use the lengths. */
struct trace_entry {
    uint64_t id;
    usec_t t_wall_us;     /* wall clock at the request's start (labels only) */
    usec_t t_mono_us;     /* monotonic clock at the request's start (t_start) */
    char *session;        /* NULL = none */
    char *client;         /* e.g. the User-Agent; NULL = none */
    char *method;         /* required by the writer */
    char *path;           /* required by the writer: path with query */
    struct trace_header *headers; /* n_headers, as received (the writer redacts) */
    size_t n_headers;
    char *body;           /* the request body exactly as forwarded */
    size_t body_len;
    int status;           /* response status; 0 = no response */
    char *content;        /* response text: content, reasoning, tool-call arguments */
    size_t content_len;
    char *reasoning;
    size_t reasoning_len;
    char *tools;
    size_t tools_len;
    char *finish_reason;  /* NULL = none */
    char *usage;          /* raw JSON text of the response's usage object, NULL = none */
    char *timings;        /* raw JSON text of llama-server's timings, NULL = none */
    struct trace_event *events; /* written only with trace_writer_options.events */
    size_t n_events;

    /* Reader only (the writer ignores them). */
    enum trace_source source;
    uint64_t line;        /* 1-based line number in the file */
    /* Start relative to the file's first entry: t_mono_us - first t_mono_us.
     * Negative when the file is not in start order (the proxy writes an
     * entry when its response ends): sort by it before replaying. */
    int64_t offset_us;
    int64_t max_tokens;   /* length-only lines: output_length; else -1 */
};

/* Zeroes e (max_tokens -1): a valid empty entry to fill or to finish. */
void trace_entry_init(struct trace_entry *e);

/* Frees what a reader entry owns and re-inits it. Never call it on writer
 * input that borrows its pointers. */
void trace_entry_finish(struct trace_entry *e);

struct trace_writer_options {
    const char *dir;        /* borrowed: created (mode 0700, parents too) if missing */
    const char *prefix;     /* borrowed: file name prefix, no '/'; NULL = "trace" */
    uint64_t max_file_bytes; /* rotate before a line would pass it; 0 = default */
    uint64_t queue_bytes;   /* lines waiting for the disk, in bytes; 0 = default */
    /* borrowed: extra header names to redact (case-insensitive), besides
     * authorization, proxy-authorization, x-api-key, api-key,
     * x-goog-api-key and cookie; copied by open. */
    const char *const *redact_headers;
    size_t n_redact_headers;
    bool events;            /* record the response's SSE events */
};

struct trace_writer_stats {
    uint64_t lines_added;    /* trace_writer_add calls */
    uint64_t lines_written;  /* whole lines on disk */
    uint64_t lines_dropped;  /* not queued: queue full, too long, invalid entry, no memory */
    uint64_t dropped_queue_full; /* ...of which the queue was full */
    uint64_t bytes_written;
    uint64_t files;          /* files opened */
    uint64_t write_errors;   /* queued lines lost to a failed write */
    uint64_t rotate_errors;  /* new files that could not be opened (the old one went on) */
    int last_write_error;    /* negative errno of the last failed write, 0 when none */
    uint64_t queued_lines, queued_bytes; /* waiting now */
};
/* After close: lines_added == lines_written + lines_dropped + write_errors. */

struct trace_writer;

/* Creates the directory, opens the first file (so that a bad directory
 * fails here) and starts the writer thread. 0 or a negative errno
 * (-EINVAL for bad options). */
int trace_writer_open(const struct trace_writer_options *o, struct trace_writer **ret);

/* Formats e as one line and queues it; never blocks on the disk (it takes
 * a mutex the writer thread holds only to pop the queue). Returns 0 when
 * queued; else the line is dropped and counted: -ENOBUFS (queue full),
 * -EMSGSIZE (line over TRACE_MAX_LINE), -EINVAL (method or path missing,
 * or usage/timings not valid JSON), -ENOMEM. Safe from any thread. */
int trace_writer_add(struct trace_writer *w, const struct trace_entry *e);

/* A consistent snapshot of the counters; safe from any thread. */
void trace_writer_stats(struct trace_writer *w, struct trace_writer_stats *ret);

/* The file being written now (for status output): copies at most len - 1
 * bytes and a NUL into buf. */
void trace_writer_current_file(struct trace_writer *w, char *buf, size_t len);

/* Writes everything queued, stops the thread and closes the file; stats
 * are final in *ret_stats if non-NULL. NULL is a no-op. */
void trace_writer_close(struct trace_writer *w, struct trace_writer_stats *ret_stats);

/* "path:line: message". */
struct trace_error {
    char msg[512];
};

struct trace_reader;

/* Opens path for reading. 0, or a negative errno with err filled. */
int trace_reader_open(const char *path, struct trace_reader **ret, struct trace_error *err);

/* Lines longer than max (bytes, newline excluded) are errors; default
 * TRACE_MAX_LINE. */
void trace_reader_set_max_line(struct trace_reader *r, size_t max);

/* Reads the next entry into *ret (overwritten whole: finish the previous
 * one first). Returns 1 with an entry, 0 at the end, or a negative errno
 * with err = "path:line: message" for a line that cannot be used
 * (-EBADMSG bad or torn line, -EMSGSIZE too long, -ENOMEM, or read(2)'s
 * errno); after a bad line the next call goes on with the next line.
 * Blank lines are skipped.
 *
 * Simple request lines become POST /v1/chat/completions ("messages") or
 * /v1/completions ("prompt") with the line as the body minus its
 * "timestamp" (ms: sets t_mono_us) and "session" members, plus
 * "stream":true when "stream" is absent (tokentap measures streams).
 * Length-only lines become POST /v1/chat/completions with a synthesized
 * user message that the simulator counts as exactly input_length prompt
 * tokens (input_length >= 18, the template's own size), max_tokens
 * output_length, "ignore_eos":true, "stream":true, thinking off. Both get
 * a Content-Type: application/json header. */
int trace_reader_next(struct trace_reader *r, struct trace_entry *ret, struct trace_error *err);

/* Closes the file; NULL is a no-op. */
void trace_reader_close(struct trace_reader *r);

#endif
