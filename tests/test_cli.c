/* Unit tests for the command kit: the option parser and its value
 * parsers (exact error lines), the shared loop's signal rules, and every
 * command's settings parser on good and bad command lines. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "check.h"
#include "core/cli.h"
#include "core/config.h"
#include "load/replay.h"
#include "load/trace_export.h"
#include "report/report.h"
#include "study/bench.h"
#include "rewrite/rewrite.h"
#include "serve/serve.h"
#include "sim/sim_cmd.h"
#include "wire/loop.h"
#include "wire/net.h"

/* argv for a parser, and its count: ARGV("sim", "--slots", "2"), ARGC(the same). */
#define ARGV(...) ((char *[]){__VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)))
/* A command's settings parser on a command line. */
#define PARSE(fn, settings, err, ...) fn(settings, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), err)

/* --- the option parser --- */

enum { OPT_NUM = 1, OPT_FLAG, OPT_NAME };

static const struct cli_option kit_options[] = {
    {"num", 'n', "N", "a number", OPT_NUM},
    {"flag", 'f', NULL, "a flag", OPT_FLAG},
    {"name", 0, "NAME", "a name", OPT_NAME},
    {NULL, 0, NULL, NULL, 0},
};

static const struct cli_command kit_command = {
    .name = "kit",
    .usage = "tokentap kit [OPTIONS]",
    .summary = "A command for the tests.",
    .options = kit_options,
};

/* Runs cli_next over argv and returns the ids, ';'-separated, with the
 * values: "1=5;2;-3=x;0". Stops after an error. */
static const char *walk(int argc, char **argv, struct config_err *err)
{
    static char out[512];
    struct cli_parser p;
    const char *v;
    int id;
    size_t used = 0;
    cli_init(&p, &kit_command, argc, argv, err);
    out[0] = '\0';
    do {
        v = NULL;
        id = cli_next(&p, &v);
        used += (size_t)snprintf(out + used, sizeof(out) - used, "%s%d%s%s", used ? ";" : "", id,
                                 v ? "=" : "", v ? v : "");
    } while (id != CLI_END && id != CLI_ERROR && id != CLI_HELP && used < sizeof(out));
    return out;
}

#define WALK(err, ...) walk(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), err)

static void test_next(void)
{
    struct config_err err = {""};
    CHECK_STR(WALK(&err, "kit", "-n", "5", "--flag", "x", "--name=a=b", "-f"),
              "1=5;2;-3=x;3=a=b;2;0");
    /* "-" alone and everything after "--" are positionals. */
    CHECK_STR(WALK(&err, "kit", "-", "--", "--flag", "-n"), "-3=-;-3=--flag;-3=-n;0");
    CHECK_STR(WALK(&err, "kit", "--num", "1", "-h", "--bogus"), "1=1;-1");
    CHECK_STR(WALK(&err, "kit", "--help"), "-1");

    CHECK_STR(WALK(&err, "kit", "--bogus"), "-2");
    CHECK_STR(err.msg, "tokentap kit: unknown option '--bogus'; try 'tokentap kit --help'");
    CHECK_STR(WALK(&err, "kit", "-x"), "-2");
    CHECK_STR(err.msg, "tokentap kit: unknown option '-x'; try 'tokentap kit --help'");
    CHECK_STR(WALK(&err, "kit", "-nf"), "-2");
    CHECK_STR(err.msg, "tokentap kit: unknown option '-nf'; try 'tokentap kit --help'");
    CHECK_STR(WALK(&err, "kit", "--flag=yes"), "-2");
    CHECK_STR(err.msg, "tokentap kit: option '--flag' takes no value; try 'tokentap kit --help'");
    CHECK_STR(WALK(&err, "kit", "--num"), "-2");
    CHECK_STR(err.msg, "tokentap kit: option '--num' needs a value (N); try 'tokentap kit --help'");
    CHECK_STR(WALK(&err, "kit", "--nu", "3"), "-2");
}

/* Feeds one value to a value parser as the value of --num. */
static struct cli_parser parser_at_num(struct config_err *err)
{
    static char *argv[] = {"kit", "--num", "0", NULL};
    struct cli_parser p;
    const char *v;
    cli_init(&p, &kit_command, 3, argv, err);
    cli_next(&p, &v);
    return p;
}

static void test_values(void)
{
    struct config_err err = {""};
    struct cli_parser p = parser_at_num(&err);
    uint64_t u = 7;
    unsigned un = 7;
    double d = 7;
    bool b = false;
    usec_t t = 7;
    enum log_level level = LOG_LEVEL_ERROR;

    CHECK_INT(cli_u64(&p, "42", 1, 100, &u), 0);
    CHECK_INT(u, 42);
    CHECK_INT(cli_u64(&p, "0", 1, 100, &u), -EINVAL);
    CHECK_STR(err.msg, "tokentap kit: --num: expected an integer from 1 to 100, got '0'; try "
                       "'tokentap kit --help'");
    CHECK_INT(u, 42); /* untouched on error */
    CHECK_INT(cli_u64(&p, "-1", 0, 100, &u), -EINVAL);
    CHECK_INT(cli_u64(&p, "", 0, 100, &u), -EINVAL);
    CHECK_INT(cli_u64(&p, "5x", 0, 100, &u), -EINVAL);
    CHECK_INT(cli_u64(&p, "99999999999999999999", 0, UINT64_MAX, &u), -EINVAL);
    CHECK_INT(cli_unsigned(&p, "65536", 1, 65536, &un), 0);
    CHECK_INT(un, 65536);
    CHECK_INT(cli_unsigned(&p, "65537", 1, 65536, &un), -EINVAL);
    CHECK_STR(err.msg, "tokentap kit: --num: expected an integer from 1 to 65536, got '65537'; try "
                       "'tokentap kit --help'");

    CHECK_INT(cli_double(&p, "0.5", 0, 1, &d), 0);
    CHECK(d == 0.5);
    CHECK_INT(cli_double(&p, "2", 0, 1, &d), -EINVAL);
    CHECK_STR(
        err.msg,
        "tokentap kit: --num: expected a number from 0 to 1, got '2'; try 'tokentap kit --help'");
    CHECK_INT(cli_double(&p, "nan", 0, 1, &d), -EINVAL);
    CHECK_INT(cli_double(&p, "0.5s", 0, 1, &d), -EINVAL);
    CHECK(d == 0.5);

    CHECK_INT(cli_onoff(&p, "on", &b), 0);
    CHECK(b);
    CHECK_INT(cli_onoff(&p, "false", &b), 0);
    CHECK(!b);
    CHECK_INT(cli_onoff(&p, "maybe", &b), -EINVAL);
    CHECK_STR(
        err.msg,
        "tokentap kit: --num: expected 'on' or 'off', got 'maybe'; try 'tokentap kit --help'");

    static const struct {
        const char *s;
        usec_t us;
    } durations[] = {{"2", 2000000},    {"1.5s", 1500000},     {"10ms", 10000}, {"500us", 500},
                     {"3m", 180000000}, {"1h", 3600000000ull}, {"0", 0}};
    for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
        CHECK_INT(cli_duration(&p, durations[i].s, &t), 0);
        CHECK_INT(t, durations[i].us);
    }
    CHECK_INT(cli_duration(&p, "forever", &t), -EINVAL);
    CHECK_STR(err.msg, "tokentap kit: --num: expected a duration like 500ms, 2s or 1m, got "
                       "'forever'; try 'tokentap kit --help'");
    CHECK_INT(cli_duration(&p, "-1s", &t), -EINVAL);
    CHECK_INT(cli_duration(&p, "5d", &t), -EINVAL);

    static const struct {
        const char *s;
        uint64_t bytes;
    } sizes[] = {{"100", 100},       {"512K", 524288}, {"8MiB", 8388608},
                 {"1G", 1073741824}, {"2k", 2048},     {"1.5M", 1572864}};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        CHECK_INT(cli_size(&p, sizes[i].s, &u), 0);
        CHECK_INT(u, sizes[i].bytes);
    }
    CHECK_INT(cli_size(&p, "12Q", &u), -EINVAL);
    CHECK_STR(err.msg, "tokentap kit: --num: expected a size like 512K, 64M or 1G, got '12Q'; try "
                       "'tokentap kit --help'");

    CHECK_INT(cli_log_level(&p, "debug", &level), 0);
    CHECK_INT(level, LOG_LEVEL_DEBUG);
    CHECK_INT(cli_log_level(&p, "loud", &level), -EINVAL);
    CHECK_STR(err.msg, "tokentap kit: --num: expected error, warn, info or debug, got 'loud'; try "
                       "'tokentap kit --help'");
    CHECK_INT(level, LOG_LEVEL_DEBUG);

    CHECK_INT(cli_usage(&p, "which %s?", "file"), -EINVAL);
    CHECK_STR(err.msg, "tokentap kit: which file?; try 'tokentap kit --help'");
    CHECK_INT(cli_error(&p, "%s:3: bad", "x.yaml"), -EINVAL);
    CHECK_STR(err.msg, "tokentap kit: x.yaml:3: bad");
}

static void test_exit(void)
{
    struct config_err err = {"tokentap kit: a usage error (printed by the test)"};
    CHECK_INT(cli_exit(&kit_command, -EINVAL, &err), 2);
    CHECK_INT(cli_exit(&kit_command, -ENOMEM, &err), 1);
}

/* --- the loop's signal rules --- */

struct stopper {
    struct event_base *base;
    int stops, hups;
    bool end_on_stop;
};

static void count_stop(void *arg)
{
    struct stopper *s = arg;
    s->stops++;
    if (s->end_on_stop)
        event_base_loopexit(s->base, NULL);
}

static void count_hup(void *arg)
{
    struct stopper *s = arg;
    s->hups++;
}

static void raise_cb(evutil_socket_t fd, short what, void *arg)
{
    raise(*(int *)arg);
}

/* Raises each of sigs from the loop, 10 ms apart; returns loop_run's
 * result. A watchdog timer ends a loop that would not end. */
static int run_signals(struct loop *l, struct event_base *base, const int *sigs, size_t n,
                       bool *ret_watchdog)
{
    struct event *ev[8];
    for (size_t i = 0; i < n; i++) {
        ev[i] = evtimer_new(base, raise_cb, (void *)&sigs[i]);
        struct timeval tv = {0, 10000 * (long)(i + 1)};
        evtimer_add(ev[i], &tv);
    }
    struct timeval watchdog = {2, 0};
    event_base_loopexit(base, &watchdog);
    struct timeval t0, t1;
    evutil_gettimeofday(&t0, NULL);
    int r = loop_run(l);
    evutil_gettimeofday(&t1, NULL);
    *ret_watchdog = t1.tv_sec - t0.tv_sec >= 2;
    for (size_t i = 0; i < n; i++)
        event_free(ev[i]);
    return r;
}

static void test_loop(void)
{
    bool watchdog;
    /* No on_stop: the first SIGTERM ends the loop. */
    struct event_base *base = event_base_new();
    struct loop l;
    CHECK_INT(loop_init(&l, base, NULL, NULL, NULL), 0);
    static const int term[] = {SIGTERM};
    CHECK_INT(run_signals(&l, base, term, 1, &watchdog), 0);
    CHECK(!watchdog);
    loop_finish(&l);
    loop_finish(&l); /* twice is fine */
    event_base_free(base);

    /* on_stop runs on the first; the second ends the loop; SIGHUP goes to on_hup. */
    base = event_base_new();
    struct stopper s = {.base = base};
    CHECK_INT(loop_init(&l, base, count_stop, count_hup, &s), 0);
    static const int sigs[] = {SIGHUP, SIGINT, SIGHUP, SIGTERM};
    CHECK_INT(run_signals(&l, base, sigs, 4, &watchdog), 0);
    CHECK(!watchdog);
    CHECK_INT(s.stops, 1);
    CHECK_INT(s.hups, 2);
    CHECK_INT(l.stops, 2);
    loop_finish(&l);

    /* An on_stop that ends the loop itself. */
    s = (struct stopper){.base = base, .end_on_stop = true};
    CHECK_INT(loop_init(&l, base, count_stop, NULL, &s), 0);
    CHECK_INT(run_signals(&l, base, term, 1, &watchdog), 0);
    CHECK(!watchdog);
    CHECK_INT(s.stops, 1);
    loop_finish(&l);
    event_base_free(base);
}

/* --- the commands' settings --- */

/* A bad command line: the parser's result and its one error line. */
#define CHECK_BAD(parse, settings, want, ...)                                                      \
    do {                                                                                           \
        struct config_err bad_err_ = {""};                                                         \
        CHECK_INT(PARSE(parse, settings, &bad_err_, __VA_ARGS__), -EINVAL);                        \
        CHECK_STR(bad_err_.msg, want);                                                             \
    } while (0)

static void test_sim(void)
{
    struct sim_settings s;
    struct config_err err;
    CHECK_INT(PARSE(sim_settings_parse, &s, &err, "sim"), 0);
    CHECK_STR(s.sim.listen, "127.0.0.1:8080");
    CHECK_INT(s.sim.slots, 3);
    CHECK(s.sim.decode_tps == 50 && s.sim.prefill_tps == 1500 && s.sim.batch_slowdown == 0.05);
    CHECK_INT(s.sim.n_ctx, 131072);
    CHECK_STR(s.sim.model, "tokentap-sim");
    CHECK_INT(s.sim.seed, 42);
    CHECK_INT(s.sim.max_body, 64 << 20);
    CHECK_INT(s.log_level, LOG_LEVEL_INFO);

    CHECK_INT(PARSE(sim_settings_parse, &s, &err, "sim", "-l", "127.0.0.1:0", "--slots", "65536",
                    "--prefill-tps", "100", "--decode-tps", "20", "--batch-slowdown", "0",
                    "--jitter", "0.1", "-c", "4096", "-m", "m", "--seed", "7", "--thinking", "on",
                    "-r", "f.yaml", "--fault", "disconnect:after=5", "--max-body", "1M",
                    "--created", "1700000000", "--stamp", "--stamp-log", "s.jsonl", "--log-level",
                    "debug"),
              0);
    CHECK_STR(s.sim.listen, "127.0.0.1:0");
    CHECK_INT(s.sim.slots, 65536);
    CHECK(s.sim.prefill_tps == 100 && s.sim.decode_tps == 20 && s.sim.batch_slowdown == 0);
    CHECK(s.sim.jitter == 0.1);
    CHECK_INT(s.sim.n_ctx, 4096);
    CHECK_STR(s.sim.model, "m");
    CHECK_INT(s.sim.seed, 7);
    CHECK(s.sim.thinking);
    CHECK_STR(s.sim.responses_file, "f.yaml");
    CHECK_INT(s.sim.fault.disconnect_after, 5);
    CHECK_INT(s.sim.max_body, 1 << 20);
    CHECK_INT(s.sim.created, 1700000000);
    CHECK(s.sim.stamp);
    CHECK_STR(s.sim.stamp_log, "s.jsonl");
    CHECK_INT(s.log_level, LOG_LEVEL_DEBUG);
    CHECK(!s.ssl_cert && !s.ssl_key);
    CHECK_INT(PARSE(sim_settings_parse, &s, &err, "sim", "--slots", "2", "--help"), CLI_RUN_HELP);
    /* HTTPS with llama-server's flags, both or neither (contents are read
     * when the sim starts). */
    CHECK_INT(PARSE(sim_settings_parse, &s, &err, "sim", "--ssl-cert-file", "/dev/null",
                    "--ssl-key-file", "/dev/null"),
              0);
    CHECK_STR(s.ssl_cert, "/dev/null");
    CHECK_STR(s.ssl_key, "/dev/null");
    CHECK_BAD(sim_settings_parse, &s,
              "tokentap sim: HTTPS needs both --ssl-cert-file and --ssl-key-file; try 'tokentap "
              "sim --help'",
              "sim", "--ssl-cert-file", "/dev/null");
    CHECK_BAD(sim_settings_parse, &s,
              "tokentap sim: --ssl-key-file: cannot read '/no/key.pem': No such file or "
              "directory; try 'tokentap sim --help'",
              "sim", "--ssl-cert-file", "/dev/null", "--ssl-key-file", "/no/key.pem");

    CHECK_BAD(sim_settings_parse, &s,
              "tokentap sim: --slots: expected an integer from 1 to 65536, got '0'; try 'tokentap "
              "sim --help'",
              "sim", "--slots", "0");
    CHECK_BAD(sim_settings_parse, &s,
              "tokentap sim: --listen: expected HOST:PORT like 127.0.0.1:8080, got 'bad'; try "
              "'tokentap sim --help'",
              "sim", "--listen", "bad");
    CHECK_BAD(sim_settings_parse, &s,
              "tokentap sim: --fault: cannot parse 'nope' (e.g. disconnect:after=5); try 'tokentap "
              "sim --help'",
              "sim", "--fault", "nope");
    CHECK_BAD(sim_settings_parse, &s,
              "tokentap sim: unexpected argument 'x' (files are for --calibrate); try 'tokentap "
              "sim --help'",
              "sim", "x");
    CHECK_BAD(
        sim_settings_parse, &s,
        "tokentap sim: --thinking: expected 'on' or 'off', got 'maybe'; try 'tokentap sim --help'",
        "sim", "--thinking", "maybe");
    CHECK_BAD(sim_settings_parse, &s,
              "tokentap sim: --ctx-size: expected an integer from 16 to 1073741824, got '8'; try "
              "'tokentap sim --help'",
              "sim", "-c", "8");
    CHECK_BAD(sim_settings_parse, &s,
              "tokentap sim: --log-level: expected error, warn, info or debug, got 'x'; try "
              "'tokentap sim --help'",
              "sim", "--log-level", "x");

    /* --calibrate: files, levels, the target, the slots when given. */
    CHECK_INT(PARSE(sim_settings_parse, &s, &err, "sim"), 0);
    CHECK(!s.calibrate.on);
    CHECK_INT(s.calibrate.slots, 0);
    CHECK_INT(PARSE(sim_settings_parse, &s, &err, "sim", "--calibrate", "a.json", "b.jsonl",
                    "--levels", "1,2", "--target", "q4", "-o", "p.yaml"),
              0);
    CHECK(s.calibrate.on);
    CHECK_INT(s.calibrate.n_files, 2);
    CHECK_STR(s.calibrate.files[1], "b.jsonl");
    CHECK_STR(s.calibrate.levels, "1,2");
    CHECK_STR(s.calibrate.target, "q4");
    CHECK_STR(s.calibrate.out, "p.yaml");
    CHECK_INT(s.calibrate.slots, 0);
    CHECK_INT(PARSE(sim_settings_parse, &s, &err, "sim", "--calibrate", "a.json", "--slots", "4"),
              0);
    CHECK_INT(s.calibrate.slots, 4);
    CHECK_BAD(sim_settings_parse, &s,
              "tokentap sim: --calibrate needs the measured files, e.g. tokentap sim --calibrate "
              "results/run/results.json; try 'tokentap sim --help'",
              "sim", "--calibrate");
    CHECK_BAD(sim_settings_parse, &s,
              "tokentap sim: --levels is an option of --calibrate; try 'tokentap sim --help'",
              "sim", "--levels", "1");
}

static char tmp[64];

/* Writes text to tmp/name; returns the path (static, one at a time). */
static const char *write_file(const char *name, const char *text)
{
    static char path[128];
    snprintf(path, sizeof(path), "%s/%s", tmp, name);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    return path;
}

static void test_serve_defaults(void)
{
    struct serve_settings s;
    struct config_err err;
    CHECK_INT(PARSE(serve_settings_parse, &s, &err, "serve"), 0);
    CHECK_STR(s.listen, "127.0.0.1:8080");
    CHECK_INT(s.n_ups, 1);
    CHECK_STR(s.ups[0].name, "default");
    CHECK_STR(s.ups[0].url, "http://127.0.0.1:7080");
    CHECK(s.ups[0].is_default);
    CHECK(!s.reject_unknown);
    CHECK_INT(s.max_body, 64 << 20);
    CHECK_INT(s.max_header, 64 << 10);
    CHECK_INT(s.max_connections, 4096);
    CHECK_INT(s.upstream_connections, 0);
    CHECK_INT(s.upstream_min_idle, 0);
    CHECK_INT(s.ups[0].min_idle, -1);
    CHECK_INT(s.connect_timeout, 5 * USEC_PER_SEC);
    CHECK_INT(s.response_timeout, 600 * USEC_PER_SEC);
    CHECK_INT(s.stream_timeout, 300 * USEC_PER_SEC);
    CHECK_INT(s.client_idle_timeout, 60 * USEC_PER_SEC);
    CHECK_INT(s.drain_timeout, 30 * USEC_PER_SEC);
    CHECK_INT(s.concurrency_buckets, 16);
    CHECK(!s.log_path && !s.record_dir && !s.session_header && !s.doc);
    CHECK(s.rules != NULL);
    CHECK_INT(rewrite_rules_count(s.rules), 0);
    CHECK_INT(s.log_level, LOG_LEVEL_INFO);
    serve_settings_finish(&s);

    CHECK_INT(PARSE(serve_settings_parse, &s, &err, "serve", "-l", "127.0.0.1:0", "-u",
                    "http://127.0.0.1:9/v1", "--reject-unknown-models", "--max-body", "1M",
                    "--max-header", "8K", "--max-connections", "10", "--upstream-connections", "3",
                    "--upstream-min-idle", "2", "--connect-timeout", "1s", "--response-timeout", "2s", "--stream-timeout", "3s",
                    "--idle-timeout", "4s", "--drain-timeout", "500ms", "--log", "r.jsonl",
                    "--log-gaps", "--session-header", "X-A", "--concurrency-buckets", "4",
                    "--record", "rec", "--record-events", "--record-max-file", "1G", "--redact",
                    "x-a", "--redact", "x-b", "--log-level", "warn"),
              0);
    CHECK_STR(s.listen, "127.0.0.1:0");
    CHECK_INT(s.n_ups, 1);
    CHECK_STR(s.ups[0].url, "http://127.0.0.1:9/v1");
    CHECK(s.reject_unknown);
    CHECK_INT(s.max_body, 1 << 20);
    CHECK_INT(s.max_header, 8 << 10);
    CHECK_INT(s.max_connections, 10);
    CHECK_INT(s.upstream_connections, 3);
    CHECK_INT(s.upstream_min_idle, 2);
    CHECK_INT(s.connect_timeout, USEC_PER_SEC);
    CHECK_INT(s.response_timeout, 2 * USEC_PER_SEC);
    CHECK_INT(s.stream_timeout, 3 * USEC_PER_SEC);
    CHECK_INT(s.client_idle_timeout, 4 * USEC_PER_SEC);
    CHECK_INT(s.drain_timeout, USEC_PER_SEC / 2);
    CHECK_STR(s.log_path, "r.jsonl");
    CHECK(s.log_gaps && s.record_events);
    CHECK_STR(s.session_header, "X-A");
    CHECK_INT(s.concurrency_buckets, 4);
    CHECK_STR(s.record_dir, "rec");
    CHECK_INT(s.record_max_file, 1 << 30);
    CHECK_INT(s.n_redact, 2);
    CHECK_STR(s.redact[1], "x-b");
    CHECK_INT(s.log_level, LOG_LEVEL_WARN);
    serve_settings_finish(&s);
}

/* The config file, and the flags over it. */
static void test_serve_file(void)
{
    struct serve_settings s;
    struct config_err err;
    char path[128];
    snprintf(path, sizeof(path), "%s",
             write_file("serve.yaml", "listen: 127.0.0.1:9000\n"
                                      "upstreams:\n"
                                      "  - {name: a, url: http://127.0.0.1:7080, models: [m1]}\n"
                                      "  - {name: b, url: http://127.0.0.1:7081, default: true,\n"
                                      "     models: [m2, m3], max_connections: 4, min_idle: 0}\n"
                                      "routing: {unknown_model: reject}\n"
                                      "limits: {max_body: 2M, upstream_connections: 7, upstream_min_idle: 3}\n"
                                      "timeouts: {drain: 1s, client_header: 2s, client_body: 3s}\n"
                                      "record: {dir: rec, redact: [x-k]}\n"
                                      "rewrite:\n"
                                      "  rules:\n"
                                      "    - {name: t, thinking: off}\n"));
    CHECK_INT(PARSE(serve_settings_parse, &s, &err, "serve", "-c", path), 0);
    CHECK_STR(s.listen, "127.0.0.1:9000");
    CHECK_INT(s.n_ups, 2);
    CHECK_STR(s.ups[1].name, "b");
    CHECK(s.ups[1].is_default && !s.ups[0].is_default);
    CHECK_INT(s.ups[1].n_models, 2);
    CHECK_STR(s.ups[1].models[1], "m3");
    CHECK_INT(s.ups[1].max_connections, 4);
    CHECK_INT(s.ups[0].min_idle, -1); /* the file's limit, 3 */
    CHECK_INT(s.ups[1].min_idle, 0);  /* its own: none */
    CHECK_INT(s.upstream_min_idle, 3);
    CHECK(s.reject_unknown);
    CHECK_INT(s.max_body, 2 << 20);
    CHECK_INT(s.upstream_connections, 7);
    CHECK_INT(s.drain_timeout, USEC_PER_SEC);
    CHECK_INT(s.header_timeout, 2 * USEC_PER_SEC);
    CHECK_INT(s.body_timeout, 3 * USEC_PER_SEC);
    CHECK_STR(s.record_dir, "rec");
    CHECK_INT(s.n_redact, 1);
    CHECK_INT(rewrite_rules_count(s.rules), 1);
    serve_settings_finish(&s);

    /* Flags win wherever they stand; --upstream replaces the default's URL. */
    CHECK_INT(PARSE(serve_settings_parse, &s, &err, "serve", "--listen", "127.0.0.1:1", "--upstream",
                    "http://127.0.0.1:5", "-c", path, "--max-body", "3M", "--redact", "x-l"),
              0);
    CHECK_STR(s.listen, "127.0.0.1:1");
    CHECK_INT(s.n_ups, 2);
    CHECK_STR(s.ups[0].url, "http://127.0.0.1:7080");
    CHECK_STR(s.ups[1].url, "http://127.0.0.1:5");
    CHECK_INT(s.max_body, 3 << 20);
    CHECK_INT(s.n_redact, 2);
    serve_settings_finish(&s);

    /* --help wins over a file that is not there. */
    CHECK_INT(PARSE(serve_settings_parse, &s, &err, "serve", "-c", "/nonexistent.yaml", "--help"),
              CLI_RUN_HELP);
    serve_settings_finish(&s);
}

/* One bad serve command line; the settings are finished either way. */
static void serve_bad(const char *want, int argc, char **argv)
{
    struct serve_settings s;
    struct config_err err = {""};
    CHECK_INT(serve_settings_parse(&s, argc, argv, &err), -EINVAL);
    CHECK_STR(err.msg, want);
    serve_settings_finish(&s);
}

#define SERVE_BAD(want, ...) serve_bad(want, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))

static void test_serve_bad(void)
{
    SERVE_BAD("tokentap serve: unknown option '--bogus'; try 'tokentap serve --help'", "serve",
              "--bogus");
    SERVE_BAD("tokentap serve: unexpected argument 'extra'; try 'tokentap serve --help'", "serve",
              "extra");
    SERVE_BAD("tokentap serve: --max-body: expected a size like 512K, 64M or 1G, got '12Q'; try "
              "'tokentap serve --help'",
              "serve", "--max-body", "12Q");
    SERVE_BAD("tokentap serve: --max-connections: expected an integer from 1 to 1000000, got '0'; "
              "try 'tokentap serve --help'",
              "serve", "--max-connections", "0");
    SERVE_BAD("tokentap serve: --drain-timeout: expected a duration like 500ms, 2s or 1m, got "
              "'soon'; try 'tokentap serve --help'",
              "serve", "--drain-timeout", "soon");
    SERVE_BAD("tokentap serve: --listen: expected HOST:PORT like 127.0.0.1:8080, got 'nothing'; "
              "try 'tokentap serve --help'",
              "serve", "--listen", "nothing");
    SERVE_BAD("tokentap serve: --upstream: 'ftp://x': expected http://HOST:PORT or "
              "https://HOST:PORT; try 'tokentap serve --help'",
              "serve", "--upstream", "ftp://x");
    SERVE_BAD("tokentap serve: --log-level: expected error, warn, info or debug, got 'loud'; try "
              "'tokentap serve --help'",
              "serve", "--log-level", "loud");
    SERVE_BAD("tokentap serve: option '--redact' needs a value (HEADER); try 'tokentap serve "
              "--help'",
              "serve", "--redact");
    char *many[2 + 2 * SERVE_MAX_REDACT + 2] = {"serve"};
    int n = 1;
    for (int i = 0; i <= SERVE_MAX_REDACT; i++) {
        many[n++] = "--redact";
        many[n++] = "x-h";
    }
    serve_bad("tokentap serve: --redact: at most 32 headers; try 'tokentap serve --help'", n, many);
    SERVE_BAD("tokentap serve: /nonexistent.yaml: cannot open: No such file or directory", "serve",
              "-c", "/nonexistent.yaml");

    char path[128], want[300];
    snprintf(path, sizeof(path), "%s", write_file("bad.yaml", "listen: 127.0.0.1:1\nlimit: {}\n"));
    snprintf(want, sizeof(want),
             "tokentap serve: %s:2: unknown key 'limit' (expected one of: listen, tls, upstreams, "
             "routing, limits, timeouts, log, metrics, record, rewrite, admin)",
             path);
    SERVE_BAD(want, "serve", "-c", path);
    snprintf(path, sizeof(path), "%s", write_file("listen.yaml", "\nlisten: 8080\n"));
    snprintf(want, sizeof(want), "tokentap serve: %s:2: 'listen' must be a string", path);
    SERVE_BAD(want, "serve", "-c", path);
    snprintf(path, sizeof(path), "%s", write_file("listen2.yaml", "listen: localhost\n"));
    snprintf(want, sizeof(want),
             "tokentap serve: %s:1: 'listen' must be HOST:PORT like 127.0.0.1:8080", path);
    SERVE_BAD(want, "serve", "-c", path);
    snprintf(path, sizeof(path), "%s",
             write_file("rewrite.yaml", "rewrite:\n  rules:\n    - name: r\n      thinkin: off\n"));
    snprintf(want, sizeof(want), "tokentap serve: %s:4: unknown key 'thinkin'", path);
    struct serve_settings s;
    struct config_err err;
    CHECK_INT(PARSE(serve_settings_parse, &s, &err, "serve", "-c", path), -EINVAL);
    CHECK(strncmp(err.msg, want, strlen(want)) == 0);
    serve_settings_finish(&s);

    /* The shipped examples load (config/serve.yaml uses every section). */
    static const char *const shipped[] = {"serve.yaml", "claude-code.yaml"};
    for (size_t i = 0; i < 2; i++) {
        const char *dir = getenv("SCENARIOS");
        snprintf(path, sizeof(path), "%s/../%s", dir ? dir : "config/scenarios", shipped[i]);
        CHECK_INT(PARSE(serve_settings_parse, &s, &err, "serve", "-c", path), 0);
        if (err.msg[0])
            fprintf(stderr, "%s: %s\n", path, err.msg);
        serve_settings_finish(&s);
        err.msg[0] = '\0';
    }

    /* Who may use /tokentap/. */
    SERVE_BAD("tokentap serve: --admin-allow: an address or block like 10.0.0.0/8 or ::1 (at most "
              "16), got '10.0.0.0/33'; try 'tokentap serve --help'",
              "serve", "--admin-allow", "10.0.0.0/33");
    SERVE_BAD("tokentap serve: --admin-token-file /nonexistent: No such file or directory; try "
              "'tokentap serve --help'",
              "serve", "--admin-token-file", "/nonexistent");
    snprintf(path, sizeof(path), "%s",
             write_file("admin.yaml", "admin:\n  token: a\n  token_file: /etc/hostname\n"));
    snprintf(want, sizeof(want), "tokentap serve: %s:2: 'token' or 'token_file', not both", path);
    SERVE_BAD(want, "serve", "-c", path);
    snprintf(path, sizeof(path), "%s",
             write_file("admin2.yaml", "admin:\n  allow: [10.0.0.0/8, '::1', 1.2.3.4]\n  token: t0k\n"));
    CHECK_INT(PARSE(serve_settings_parse, &s, &err, "serve", "-c", path), 0);
    CHECK_INT(s.admin.n_allow, 3);
    CHECK_STR(s.admin.token, "t0k");
    CHECK(net_cidr_contains(&s.admin.allow[0], "10.200.1.1"));
    CHECK(!net_cidr_contains(&s.admin.allow[0], "11.0.0.1"));
    CHECK(net_cidr_contains(&s.admin.allow[0], "::ffff:10.0.0.9"));
    CHECK(net_cidr_contains(&s.admin.allow[1], "::1"));
    CHECK(!net_cidr_contains(&s.admin.allow[1], "127.0.0.1"));
    CHECK(net_cidr_contains(&s.admin.allow[2], "1.2.3.4") && !net_cidr_contains(&s.admin.allow[2], "1.2.3.5"));
    serve_settings_finish(&s);
    /* Flags replace the file's list; without either, loopback only. */
    CHECK_INT(PARSE(serve_settings_parse, &s, &err, "serve", "-c", path, "--admin-allow", "192.168.0.0/16"), 0);
    CHECK_INT(s.admin.n_allow, 1);
    serve_settings_finish(&s);
    CHECK_INT(PARSE(serve_settings_parse, &s, &err, "serve"), 0);
    CHECK_INT(s.admin.n_allow, 2);
    CHECK(net_cidr_contains(&s.admin.allow[0], "127.9.9.9") && s.admin.token == NULL);
    serve_settings_finish(&s);
}

/* HTTPS: the listener's certificate and key, and the certificate checks
 * of https upstreams, from flags and from the file. The files only need
 * to be readable here; their contents are checked when serve starts. */
static void test_serve_tls(void)
{
    struct serve_settings s;
    struct config_err err;
    char cert[128], key[128], ca[128], path[128], want[400];
    snprintf(cert, sizeof(cert), "%s", write_file("cert.pem", "x\n"));
    snprintf(key, sizeof(key), "%s", write_file("key.pem", "x\n"));
    snprintf(ca, sizeof(ca), "%s", write_file("ca.pem", "x\n"));

    CHECK_INT(PARSE(serve_settings_parse, &s, &err, "serve"), 0);
    CHECK(!s.tls_cert && !s.tls_key && !s.ups[0].tls.ca_file && !s.ups[0].tls.insecure);
    serve_settings_finish(&s);

    /* --ca-file and --insecure are the default upstream's, with --upstream. */
    CHECK_INT(PARSE(serve_settings_parse, &s, &err, "serve", "--tls-cert", cert, "--tls-key", key,
                    "--upstream", "https://127.0.0.1:8443", "--ca-file", ca, "--insecure"),
              0);
    CHECK_STR(s.tls_cert, cert);
    CHECK_STR(s.tls_key, key);
    CHECK_STR(s.ups[0].url, "https://127.0.0.1:8443");
    CHECK_STR(s.ups[0].tls.ca_file, ca);
    CHECK(s.ups[0].tls.insecure);
    serve_settings_finish(&s);

    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "tls: {cert: %s, key: %s}\n"
             "upstreams:\n"
             "  - {name: a, url: https://127.0.0.1:8443, ca_file: %s}\n"
             "  - {name: b, url: https://localhost:8444, insecure: true, default: true}\n",
             cert, key, ca);
    snprintf(path, sizeof(path), "%s", write_file("tls.yaml", yaml));
    CHECK_INT(PARSE(serve_settings_parse, &s, &err, "serve", "-c", path), 0);
    CHECK_STR(s.tls_cert, cert);
    CHECK_STR(s.tls_key, key);
    CHECK_STR(s.ups[0].tls.ca_file, ca);
    CHECK(!s.ups[0].tls.insecure && !s.ups[1].tls.ca_file && s.ups[1].tls.insecure);
    serve_settings_finish(&s);
    /* The flags go to the default upstream, over the file. */
    CHECK_INT(PARSE(serve_settings_parse, &s, &err, "serve", "-c", path, "--ca-file", ca), 0);
    CHECK(!s.ups[0].tls.insecure && s.ups[1].tls.insecure);
    CHECK_STR(s.ups[1].tls.ca_file, ca);
    serve_settings_finish(&s);

    SERVE_BAD("tokentap serve: HTTPS needs both a certificate and its key: --tls-cert FILE "
              "--tls-key FILE (or tls: {cert, key} in the config); try 'tokentap serve --help'",
              "serve", "--tls-cert", cert);
    SERVE_BAD("tokentap serve: HTTPS needs both a certificate and its key: --tls-cert FILE "
              "--tls-key FILE (or tls: {cert, key} in the config); try 'tokentap serve --help'",
              "serve", "--tls-key", key);
    SERVE_BAD("tokentap serve: --tls-cert: cannot read '/nonexistent.pem': No such file or "
              "directory; try 'tokentap serve --help'",
              "serve", "--tls-cert", "/nonexistent.pem", "--tls-key", key);
    SERVE_BAD("tokentap serve: --ca-file: cannot read '/nonexistent.pem': No such file or "
              "directory; try 'tokentap serve --help'",
              "serve", "--ca-file", "/nonexistent.pem");
    snprintf(yaml, sizeof(yaml), "tls:\n  cert: /x.pem\n  key: %s\n", key);
    snprintf(path, sizeof(path), "%s", write_file("tls1.yaml", yaml));
    snprintf(want, sizeof(want), "tokentap serve: %s:2: cannot read '/x.pem': No such file or "
             "directory", path);
    SERVE_BAD(want, "serve", "-c", path);
    snprintf(yaml, sizeof(yaml), "tls: {cert: %s}\n", cert);
    snprintf(path, sizeof(path), "%s", write_file("tls2.yaml", yaml));
    snprintf(want, sizeof(want), "tokentap serve: %s:1: missing required key 'key'", path);
    SERVE_BAD(want, "serve", "-c", path);
    snprintf(path, sizeof(path), "%s",
             write_file("tls3.yaml", "upstreams:\n  - url: https://127.0.0.1:1\n"
                                     "    ca_file: /no/ca.pem\n"));
    snprintf(want, sizeof(want), "tokentap serve: %s:3: cannot read ca_file '/no/ca.pem': No such "
             "file or directory", path);
    SERVE_BAD(want, "serve", "-c", path);
    snprintf(path, sizeof(path), "%s",
             write_file("tls4.yaml", "upstreams:\n  - {url: https://127.0.0.1:1, insecure: 1}\n"));
    snprintf(want, sizeof(want), "tokentap serve: %s:2: 'insecure' must be true or false", path);
    SERVE_BAD(want, "serve", "-c", path);
}

static void test_replay(void)
{
    struct replay_options o;
    struct config_err err;
    CHECK_INT(PARSE(replay_settings_parse, &o, &err, "replay", "t.jsonl"), 0);
    CHECK_STR(o.trace, "t.jsonl");
    CHECK_STR(o.target, "sim");
    CHECK_INT(o.sched.mode, ARRIVAL_ORIGINAL);
    CHECK(o.sched.speed == 1);
    CHECK_INT(o.sched.process, ARRIVAL_POISSON);
    CHECK_INT(o.sched.rng, 1);
    CHECK_INT(o.history, REPLAY_HISTORY_RECORDED);
    CHECK_INT(o.thinking, REWRITE_THINKING_UNSET);
    CHECK_INT(o.response_timeout, 600 * USEC_PER_SEC);
    CHECK_INT(o.stream_timeout, 300 * USEC_PER_SEC);
    CHECK_STR(o.sim.listen, "127.0.0.1:0");
    CHECK(o.sim.quiet);
    CHECK_INT(o.sim.slots, 3);
    CHECK(!o.stop_on_error && !o.quiet && !o.log_path && !o.out_path && !o.config);
    CHECK(!o.tls.ca_file && !o.tls.insecure);
    CHECK_INT(o.log_level, LOG_LEVEL_INFO);

    CHECK_INT(PARSE(replay_settings_parse, &o, &err, "replay", "-t", "http://127.0.0.1:9",
                    "--timing", "original", "--speed", "2.5", "--history", "live", "--thinking",
                    "OFF", "--config", "c.yaml", "--log", "l.jsonl", "--log-gaps", "-o", "s.json",
                    "-q", "--on-error", "stop", "--seed", "0", "--response-timeout", "1m",
                    "--stream-timeout", "10s", "--sim-slots", "8", "--sim-decode-tps", "99",
                    "--sim-prefill-tps", "5000", "--log-level", "error", "t.jsonl"),
              0);
    CHECK_STR(o.target, "http://127.0.0.1:9");
    CHECK(o.sched.speed == 2.5);
    CHECK_INT(o.history, REPLAY_HISTORY_LIVE);
    CHECK_INT(o.thinking, REWRITE_THINKING_OFF);
    CHECK_STR(o.config, "c.yaml");
    CHECK_STR(o.log_path, "l.jsonl");
    CHECK(o.log_gaps && o.quiet && o.stop_on_error);
    CHECK_STR(o.out_path, "s.json");
    CHECK_INT(o.sched.rng, 1); /* seed 0 is 1 */
    CHECK_INT(o.response_timeout, 60 * USEC_PER_SEC);
    CHECK_INT(o.stream_timeout, 10 * USEC_PER_SEC);
    CHECK_INT(o.sim.slots, 8);
    CHECK(o.sim.decode_tps == 99 && o.sim.prefill_tps == 5000);
    CHECK_INT(o.log_level, LOG_LEVEL_ERROR);

    CHECK_INT(PARSE(replay_settings_parse, &o, &err, "replay", "t", "-c", "4", "--concurrency", "4"),
              0);
    CHECK_INT(o.sched.mode, ARRIVAL_CONCURRENCY);
    CHECK_INT(o.sched.concurrency, 4);
    CHECK_INT(PARSE(replay_settings_parse, &o, &err, "replay", "t", "-r", "2.5", "--arrival",
                    "constant", "-d", "30s", "-n", "100", "--seed", "9", "--thinking", "pass"),
              0);
    CHECK_INT(o.sched.mode, ARRIVAL_RATE);
    CHECK(o.sched.rate == 2.5);
    CHECK_INT(o.sched.process, ARRIVAL_CONSTANT);
    CHECK_INT(o.duration, 30 * USEC_PER_SEC);
    CHECK_INT(o.requests, 100);
    CHECK_INT(o.sched.rng, 9);
    CHECK_INT(o.thinking, REWRITE_THINKING_PASS);
    /* An https target, its CAs, or no checks at all. */
    CHECK_INT(PARSE(replay_settings_parse, &o, &err, "replay", "t", "-t", "https://localhost:8443",
                    "--ca-file", "/dev/null", "--insecure"),
              0);
    CHECK_STR(o.target, "https://localhost:8443");
    CHECK_STR(o.tls.ca_file, "/dev/null");
    CHECK(o.tls.insecure);
    CHECK_BAD(replay_settings_parse, &o,
              "tokentap replay: --ca-file: cannot read '/no/ca.pem': No such file or directory; "
              "try 'tokentap replay --help'",
              "replay", "t", "--ca-file", "/no/ca.pem");
    CHECK_INT(PARSE(replay_settings_parse, &o, &err, "replay", "--help"), CLI_RUN_HELP);

    CHECK_BAD(replay_settings_parse, &o,
              "tokentap replay: which trace? (tokentap replay TRACE ...); try 'tokentap replay --help'",
              "replay", "-c", "2");
    CHECK_BAD(replay_settings_parse, &o,
              "tokentap replay: one trace only (got 'a' and 'b'); try 'tokentap replay --help'",
              "replay", "a", "b");
    CHECK_BAD(replay_settings_parse, &o,
              "tokentap replay: --timing: expected original, think or none, got 'fast'; try "
              "'tokentap replay --help'",
              "replay", "t", "--timing", "fast");
    CHECK_BAD(replay_settings_parse, &o,
              "tokentap replay: choose one of --timing original, --concurrency N, --rate R; try "
              "'tokentap replay --help'",
              "replay", "t", "--concurrency", "2", "--rate", "3");
    CHECK_BAD(replay_settings_parse, &o,
              "tokentap replay: choose one of --timing original, --concurrency N, --rate R; try "
              "'tokentap replay --help'",
              "replay", "t", "--rate", "3", "--timing", "original");
    CHECK_BAD(replay_settings_parse, &o,
              "tokentap replay: --duration and --requests go with --rate or --recycle; try "
              "'tokentap replay --help'",
              "replay", "t", "-c", "2", "--requests", "5");
    CHECK_BAD(replay_settings_parse, &o,
              "tokentap replay: --concurrency: expected an integer from 1 to 100000, got '0'; try "
              "'tokentap replay --help'",
              "replay", "t", "-c", "0");
    CHECK_BAD(replay_settings_parse, &o,
              "tokentap replay: --history: expected recorded or live, got 'LIVE'; try 'tokentap "
              "replay --help'",
              "replay", "t", "--history", "LIVE");
    CHECK_BAD(replay_settings_parse, &o,
              "tokentap replay: --thinking: expected on, off or pass, got 'maybe'; try 'tokentap "
              "replay --help'",
              "replay", "t", "--thinking", "maybe");
    CHECK_BAD(replay_settings_parse, &o,
              "tokentap replay: --on-error: expected skip or stop, got 'x'; try 'tokentap replay "
              "--help'",
              "replay", "t", "--on-error", "x");
    CHECK_BAD(replay_settings_parse, &o,
              "tokentap replay: --arrival: expected poisson or constant, got 'x'; try 'tokentap "
              "replay --help'",
              "replay", "t", "--arrival", "x");
    CHECK_BAD(replay_settings_parse, &o,
              "tokentap replay: --target: 'ftp://x': expected http://HOST:PORT or "
              "https://HOST:PORT; try 'tokentap replay --help'",
              "replay", "t", "--target", "ftp://x");
    CHECK_BAD(replay_settings_parse, &o,
              "tokentap replay: --speed: expected a number from 0.001 to 1e+06, got '0'; try "
              "'tokentap replay --help'",
              "replay", "t", "--speed", "0");
}

/* The options of agentic traces: defaults, values, and their usage errors. */
static void test_replay_agentic(void)
{
    struct replay_options o;
    struct config_err err;
    CHECK_INT(PARSE(replay_settings_parse, &o, &err, "replay", "dir"), 0);
    CHECK_INT(o.agentic.timing, AGENTIC_TIMING_ORIGINAL);
    CHECK(o.agentic.isl_scale == 1 && o.agentic.osl_scale == 1);
    CHECK(!o.agentic.used && !o.agentic.recycle && !o.agentic.model_map);
    CHECK_INT(o.agentic.users, 0);
    CHECK_INT(o.agentic.api, AGENTIC_API_ANTHROPIC);
    CHECK_INT(PARSE(replay_settings_parse, &o, &err, "replay", "dir", "--timing", "think", "--speed",
                    "20", "--max-gap", "30s", "-u", "4", "--ramp", "1m", "--recycle", "-d", "10m",
                    "--isl-scale", "0.05", "--osl-scale", "0.5", "--max-isl", "32000", "--api",
                    "openai", "--model-map", "*opus*=big,*haiku*=small"),
              0);
    CHECK_INT(o.agentic.timing, AGENTIC_TIMING_THINK);
    CHECK(o.sched.speed == 20);
    CHECK_INT(o.agentic.max_gap, 30 * USEC_PER_SEC);
    CHECK_INT(o.agentic.users, 4);
    CHECK_INT(o.agentic.ramp, 60 * USEC_PER_SEC);
    CHECK(o.agentic.recycle && o.agentic.used);
    CHECK_INT(o.duration, 600 * USEC_PER_SEC);
    CHECK(o.agentic.isl_scale == 0.05 && o.agentic.osl_scale == 0.5);
    CHECK_INT(o.agentic.max_isl, 32000);
    CHECK_INT(o.agentic.api, AGENTIC_API_OPENAI);
    CHECK_STR(o.agentic.model_map, "*opus*=big,*haiku*=small");
    CHECK_INT(PARSE(replay_settings_parse, &o, &err, "replay", "dir", "--timing", "none"), 0);
    CHECK_INT(o.agentic.timing, AGENTIC_TIMING_NONE);
    CHECK(o.agentic.used);
    CHECK_INT(PARSE(replay_settings_parse, &o, &err, "replay", "dir", "--recycle", "-n", "500"), 0);
    CHECK_INT(o.requests, 500);

    CHECK_BAD(replay_settings_parse, &o,
              "tokentap replay: --recycle runs until --duration D or --requests K: give one; try "
              "'tokentap replay --help'",
              "replay", "dir", "--recycle");
    CHECK_BAD(replay_settings_parse, &o,
              "tokentap replay: --concurrency and --rate do not go with agentic traces' options "
              "(their graph sets the concurrency; use --users and --timing); try 'tokentap replay "
              "--help'",
              "replay", "dir", "--users", "2", "-c", "3");
    CHECK_BAD(replay_settings_parse, &o,
              "tokentap replay: choose one of --timing original, --concurrency N, --rate R; try "
              "'tokentap replay --help'",
              "replay", "dir", "--timing", "think", "--rate", "3");
    CHECK_BAD(replay_settings_parse, &o,
              "tokentap replay: --isl-scale: expected a number from 0.0001 to 100, got '0'; try "
              "'tokentap replay --help'",
              "replay", "dir", "--isl-scale", "0");
    CHECK_BAD(replay_settings_parse, &o,
              "tokentap replay: --api: expected anthropic or openai, got 'gemini'; try 'tokentap "
              "replay --help'",
              "replay", "dir", "--api", "gemini");
    CHECK_BAD(replay_settings_parse, &o,
              "tokentap replay: --model-map: '*opus*' is not PATTERN=NAME; try 'tokentap replay "
              "--help'",
              "replay", "dir", "--model-map", "*opus*");
    CHECK_BAD(replay_settings_parse, &o,
              "tokentap replay: --users: expected an integer from 1 to 100000, got '0'; try "
              "'tokentap replay --help'",
              "replay", "dir", "--users", "0");
}

static void test_trace_export(void)
{
    struct trace_export_options o;
    struct config_err err;
    CHECK_INT(PARSE(trace_export_settings_parse, &o, &err, "export", "rec", "-o", "t.json"), 0);
    CHECK_STR(o.input, "rec");
    CHECK_STR(o.out_path, "t.json");
    CHECK(o.upstream == NULL);
    CHECK_STR(o.id, "export");
    CHECK_INT(o.block_size, 64);
    CHECK_INT(PARSE(trace_export_settings_parse, &o, &err, "export", "--format", "agentic", "rec",
                    "--out", "t.json", "--upstream", "http://127.0.0.1:8080", "--id", "mine",
                    "--block-size", "16"),
              0);
    CHECK_STR(o.upstream, "http://127.0.0.1:8080");
    CHECK_STR(o.id, "mine");
    CHECK_INT(o.block_size, 16);
    CHECK_INT(PARSE(trace_export_settings_parse, &o, &err, "export", "--help"), CLI_RUN_HELP);
    CHECK_BAD(trace_export_settings_parse, &o,
              "tokentap trace export: which recording? (tokentap trace export TRACE_DIR -o FILE); "
              "try 'tokentap trace export --help'",
              "export", "-o", "t.json");
    CHECK_BAD(trace_export_settings_parse, &o,
              "tokentap trace export: where to? (-o FILE); try 'tokentap trace export --help'",
              "export", "rec");
    CHECK_BAD(trace_export_settings_parse, &o,
              "tokentap trace export: --format: expected agentic, got 'csv'; try 'tokentap trace "
              "export --help'",
              "export", "rec", "-o", "t", "--format", "csv");
    CHECK_BAD(trace_export_settings_parse, &o,
              "tokentap trace export: --upstream: 'x': expected http://HOST:PORT or "
              "https://HOST:PORT; try 'tokentap trace export --help'",
              "export", "rec", "-o", "t", "--upstream", "x");
    CHECK_BAD(trace_export_settings_parse, &o,
              "tokentap trace export: one trace directory only (got 'a' and 'b'); try 'tokentap "
              "trace export --help'",
              "export", "a", "b", "-o", "t");
}

static void test_bench(void)
{
    struct bench_settings s;
    struct config_err err;
    CHECK_INT(PARSE(bench_settings_parse, &s, &err, "bench", "x.yaml"), 0);
    CHECK_STR(s.scenario, "x.yaml");
    CHECK(!s.out && !s.levels && !s.only && !s.quiet);
    CHECK_INT(s.n_targets, 0);
    CHECK_INT(s.repetitions, 0);
    CHECK_INT(s.thinking, -1);
    CHECK_INT(s.log_level, LOG_LEVEL_INFO);
    CHECK_INT(s.argc, 2);
    CHECK(!s.tls.ca_file && !s.tls.insecure);

    CHECK_INT(PARSE(bench_settings_parse, &s, &err, "bench", "-t", "a=http://127.0.0.1:1", "x.yaml",
                    "--target", "b=http://127.0.0.1:2", "-o", "out", "-n", "3", "-l", "1,3",
                    "--only", "a", "--thinking", "off", "-q", "--log-level", "debug"),
              0);
    CHECK_STR(s.scenario, "x.yaml");
    CHECK_INT(s.n_targets, 2);
    CHECK_STR(s.targets[1], "b=http://127.0.0.1:2");
    CHECK_STR(s.out, "out");
    CHECK_INT(s.repetitions, 3);
    CHECK_STR(s.levels, "1,3");
    CHECK_STR(s.only, "a");
    CHECK_INT(s.thinking, 0);
    CHECK(s.quiet);
    CHECK_INT(s.log_level, LOG_LEVEL_DEBUG);
    char *line[] = {"bench", "x.yaml", "-q", NULL};
    CHECK_INT(bench_settings_parse(&s, 3, line, &err), 0);
    CHECK(s.argv == line && s.argc == 3); /* the command line, for results.json */
    CHECK_INT(PARSE(bench_settings_parse, &s, &err, "bench", "-h"), CLI_RUN_HELP);
    CHECK_INT(PARSE(bench_settings_parse, &s, &err, "bench", "x.yaml", "-t",
                    "a=https://127.0.0.1:8443", "--ca-file", "/dev/null", "--insecure"),
              0);
    CHECK_STR(s.targets[0], "a=https://127.0.0.1:8443");
    CHECK_STR(s.tls.ca_file, "/dev/null");
    CHECK(s.tls.insecure);
    CHECK_BAD(bench_settings_parse, &s,
              "tokentap bench: --ca-file: cannot read '/no/ca.pem': No such file or directory; "
              "try 'tokentap bench --help'",
              "bench", "x.yaml", "--ca-file", "/no/ca.pem");

    CHECK_BAD(bench_settings_parse, &s,
              "tokentap bench: which scenario? e.g. tokentap bench "
              "config/scenarios/quant-comparison.yaml (--list shows them); try 'tokentap bench --help'",
              "bench", "-q");
    CHECK_BAD(bench_settings_parse, &s,
              "tokentap bench: one scenario at a time (got 'a' and 'b'); try 'tokentap bench "
              "--help'",
              "bench", "a", "b");
    CHECK_BAD(bench_settings_parse, &s,
              "tokentap bench: --repetitions: expected an integer from 1 to 1000, got '0'; try "
              "'tokentap bench --help'",
              "bench", "x", "-n", "0");
    CHECK_BAD(bench_settings_parse, &s,
              "tokentap bench: --thinking: expected 'on' or 'off', got 'maybe'; try 'tokentap "
              "bench --help'",
              "bench", "x", "--thinking", "maybe");
    char longdir[BENCH_MAX_OUT_DIR + 2];
    memset(longdir, 'd', sizeof(longdir) - 1);
    longdir[sizeof(longdir) - 1] = '\0';
    CHECK_BAD(bench_settings_parse, &s,
              "tokentap bench: --out: at most 511 bytes; try 'tokentap bench --help'", "bench",
              "x", "--out", longdir);
    longdir[BENCH_MAX_OUT_DIR] = '\0';
    CHECK_INT(PARSE(bench_settings_parse, &s, &err, "bench", "x", "--out", longdir), 0);
    char *many[3 + 2 * SCENARIO_MAX_TARGETS + 2] = {"bench", "x"};
    int n = 2;
    for (int i = 0; i <= SCENARIO_MAX_TARGETS; i++) {
        many[n++] = "--target";
        many[n++] = "t=http://127.0.0.1:1";
    }
    CHECK_INT(bench_settings_parse(&s, n, many, &err), -EINVAL);
    CHECK_STR(err.msg, "tokentap bench: --target: at most 32; try 'tokentap bench --help'");

    /* --capacity with its objective, limit and user level. */
    CHECK_INT(PARSE(bench_settings_parse, &s, &err, "bench", "x"), 0);
    CHECK(!s.capacity && !s.slo && s.max_users == 0);
    CHECK_INT(PARSE(bench_settings_parse, &s, &err, "bench", "x", "--capacity", "--slo",
                    "ttft_p95<2s,errors<1%", "--max-users", "32", "--levels", "2"),
              0);
    CHECK(s.capacity);
    CHECK_STR(s.slo, "ttft_p95<2s,errors<1%");
    CHECK_INT(s.max_users, 32);
    CHECK_BAD(bench_settings_parse, &s,
              "tokentap bench: --slo is an option of --capacity; try 'tokentap bench --help'",
              "bench", "x", "--slo", "ttft_p95<2s");
    CHECK_BAD(bench_settings_parse, &s,
              "tokentap bench: --slo: objective 'ttft_p95<2': the limit of ttft is a time like 2s "
              "or 500ms, not '2'; try 'tokentap bench --help'",
              "bench", "x", "--capacity", "--slo", "ttft_p95<2");
    CHECK_BAD(bench_settings_parse, &s,
              "tokentap bench: --capacity runs copies of one level's agents: name one level with "
              "--levels (e.g. --levels 1); try 'tokentap bench --help'",
              "bench", "x", "--capacity", "--levels", "1,2");
    CHECK_BAD(bench_settings_parse, &s,
              "tokentap bench: --max-users: expected an integer from 1 to 256, got '0'; try "
              "'tokentap bench --help'",
              "bench", "x", "--capacity", "--max-users", "0");
    /* --sweep KEY=V1,V2 (the values are checked against the scenario). */
    CHECK_INT(PARSE(bench_settings_parse, &s, &err, "bench", "x", "--sweep", "slots=2,3"), 0);
    CHECK_STR(s.sweep, "slots=2,3");
    CHECK_BAD(bench_settings_parse, &s,
              "tokentap bench: --sweep: expected KEY=V1,V2 (e.g. slots=2,3,4), got 'slots'; try "
              "'tokentap bench --help'",
              "bench", "x", "--sweep", "slots");
    CHECK_BAD(bench_settings_parse, &s,
              "tokentap bench: --thinking sets every request; --sweep thinking=... varies it: one "
              "or the other; try 'tokentap bench --help'",
              "bench", "x", "--sweep", "thinking=on,off", "--thinking", "on");
}

static void test_report(void)
{
    struct report_settings s;
    struct config_err err;
    CHECK_INT(PARSE(report_settings_parse, &s, &err, "report", "r/results.json"), 0);
    CHECK_STR(s.results, "r/results.json");
    CHECK(!s.out_dir);
    CHECK_INT(s.formats, REPORT_FORMAT_MD | REPORT_FORMAT_HTML);
    CHECK_INT(PARSE(report_settings_parse, &s, &err, "report", "--html", "-o", "d", "x.json"), 0);
    CHECK_STR(s.out_dir, "d");
    CHECK_INT(s.formats, REPORT_FORMAT_HTML);
    CHECK_INT(PARSE(report_settings_parse, &s, &err, "report", "x.json", "--md"), 0);
    CHECK_INT(s.formats, REPORT_FORMAT_MD);
    CHECK_INT(PARSE(report_settings_parse, &s, &err, "report", "--help", "a", "b"), CLI_RUN_HELP);
    CHECK_BAD(report_settings_parse, &s,
              "tokentap report: which results file? (e.g. tokentap report runs/x/results.json); "
              "try 'tokentap report --help'",
              "report", "--md");
    CHECK_BAD(report_settings_parse, &s,
              "tokentap report: one results file only (got 'a.json' and 'b.json'); try 'tokentap "
              "report --help'",
              "report", "a.json", "b.json");
    CHECK_BAD(report_settings_parse, &s,
              "tokentap report: unknown option '--bogus'; try 'tokentap report --help'", "report",
              "--bogus", "x.json");

    struct report_compare_settings c;
    CHECK_INT(PARSE(report_compare_settings_parse, &c, &err, "compare", "a.json", "b.json"), 0);
    CHECK_STR(c.paths[0], "a.json");
    CHECK_STR(c.paths[1], "b.json");
    CHECK(!c.out);
    CHECK_INT(c.format, REPORT_FORMAT_MD);
    CHECK_INT(PARSE(report_compare_settings_parse, &c, &err, "compare", "a", "--html", "b", "--out",
                    "c.html"),
              0);
    CHECK_INT(c.format, REPORT_FORMAT_HTML);
    CHECK_STR(c.out, "c.html");
    CHECK_BAD(report_compare_settings_parse, &c,
              "tokentap compare: needs two results files, A and B; try 'tokentap compare --help'",
              "compare", "a");
    CHECK_BAD(report_compare_settings_parse, &c,
              "tokentap compare: two results files only (a third: 'c'); try 'tokentap compare "
              "--help'",
              "compare", "a", "b", "c");
    CHECK_BAD(report_compare_settings_parse, &c,
              "tokentap compare: --md or --html, not both; try 'tokentap compare --help'",
              "compare", "--md", "--html", "a", "b");
}

int main(void)
{
    snprintf(tmp, sizeof(tmp), "/tmp/tokentap-cli-XXXXXX");
    if (!mkdtemp(tmp))
        return 99;
    test_next();
    test_values();
    test_exit();
    test_loop();
    test_sim();
    test_serve_defaults();
    test_serve_file();
    test_serve_tls();
    test_serve_bad();
    test_replay();
    test_replay_agentic();
    test_trace_export();
    test_bench();
    test_report();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "test_cli: cannot remove %s\n", tmp);
    return check_done("test_cli");
}
