/* End to end: rewrite rules inside tokentap serve, with the sim (started
 * thinking by default) as upstream and a recording of what went upstream. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "itest.h"

static int count(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s ? strstr(s, needle) : NULL; p; p = strstr(p + 1, needle))
        n++;
    return n;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    char dir[] = "/tmp/tokentap-rw-XXXXXX";
    if (!mkdtemp(dir))
        return 99;
    char cfg[128], rec[128];
    snprintf(cfg, sizeof(cfg), "%s/serve.yaml", dir);
    snprintf(rec, sizeof(rec), "%s/rec", dir);

    struct itest_proc q4, q3, serve;
    const char *a4[] = {"sim", "--listen", "127.0.0.1:0", "--thinking", "on", "--decode-tps", "2000",
                        "--model", "sim-q4", NULL};
    const char *a3[] = {"sim", "--listen", "127.0.0.1:0", "--thinking", "on", "--decode-tps", "2000",
                        "--model", "sim-q3", NULL};
    itest_spawn(&q4, a4);
    itest_spawn(&q3, a3);
    FILE *f = fopen(cfg, "w");
    fprintf(f,
            "upstreams:\n"
            "  - {name: q4, url: \"http://127.0.0.1:%d\", default: true, models: [local-q4]}\n"
            "  - {name: q3, url: \"http://127.0.0.1:%d\", models: [local-q3]}\n"
            "rewrite:\n"
            "  rules:\n"
            "    - name: agents-off\n"
            "      match: {headers: {user-agent: \"agent/*\"}}\n"
            "      thinking: off\n"
            "    - name: claude-to-q3\n"
            "      match: {model: \"claude-*\"}\n"
            "      model: local-q3\n"
            "      headers: {set: {X-Routed: by-tokentap}, remove: [X-Secret-Debug]}\n"
            "    - name: bad-set\n"
            "      match: {route: /v1/completions}\n"
            "      set: {\"/prompt/x\": 1}\n",
            q4.port, q3.port);
    fclose(f);
    const char *args[] = {"serve", "--listen", "127.0.0.1:0", "-c", cfg, "--record", rec, NULL};
    itest_spawn(&serve, args);

    const char *chat = "{\"model\":\"local-q4\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                       "\"stream\":true,\"max_tokens\":150,\"chat_template_kwargs\":{\"foo\":1}}";
    struct itest_resp r;
    /* An agent: thinking turned off, other kwargs kept. */
    itest_request(serve.port, "POST", "/v1/chat/completions", "User-Agent: agent/1.0\r\n", chat,
                  strlen(chat), &r);
    CHECK_INT(r.status, 200);
    CHECK_INT(count(r.body, "reasoning_content"), 0);
    itest_resp_free(&r);
    /* Another client: untouched, the sim thinks. */
    itest_request(serve.port, "POST", "/v1/chat/completions", "User-Agent: other/1.0\r\n", chat,
                  strlen(chat), &r);
    CHECK(count(r.body, "reasoning_content") > 0);
    itest_resp_free(&r);
    /* The override header wins over the rule. */
    itest_request(serve.port, "POST", "/v1/chat/completions",
                  "User-Agent: agent/1.0\r\nX-Tokentap-Thinking: on\r\n", chat, strlen(chat), &r);
    CHECK(count(r.body, "reasoning_content") > 0);
    itest_resp_free(&r);
    itest_request(serve.port, "POST", "/v1/chat/completions", "X-Tokentap-Thinking: maybe\r\n", chat,
                  strlen(chat), &r);
    CHECK_INT(r.status, 400);
    itest_resp_free(&r);
    /* Model aliasing routes by the new name, with header edits. */
    const char *claude = "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":20,\"stream\":true,"
                         "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    itest_request(serve.port, "POST", "/v1/messages?beta=true",
                  "Content-Type: application/json\r\nX-Secret-Debug: 1\r\n", claude, strlen(claude), &r);
    CHECK_INT(r.status, 200);
    CHECK(strstr(r.body, "\"model\":\"sim-q3\"") != NULL);
    itest_resp_free(&r);
    /* Skips: invalid JSON and a rule that cannot apply are counted; the
     * bodies go through. */
    const char *broken = "{\"messages\":[";
    itest_request(serve.port, "POST", "/v1/chat/completions", "User-Agent: agent/1.0\r\n", broken,
                  strlen(broken), &r);
    CHECK_INT(r.status, 500); /* the sim's own parse error: forwarded as sent */
    itest_resp_free(&r);
    const char *comp = "{\"prompt\":\"Once upon\",\"max_tokens\":5,\"stream\":true}";
    itest_request(serve.port, "POST", "/v1/completions", NULL, comp, strlen(comp), &r);
    CHECK_INT(r.status, 200);
    itest_resp_free(&r);
    itest_request(serve.port, "GET", "/tokentap/metrics", NULL, NULL, 0, &r);
    CHECK(strstr(r.body, "tokentap_rewrite_skipped_total{reason=\"invalid-json\"} 1") != NULL);
    CHECK(strstr(r.body, "tokentap_rewrite_skipped_total{reason=\"rule-failed\"} 1") != NULL);
    itest_resp_free(&r);
    /* Records carry the rules and the thinking state. */
    itest_request(serve.port, "GET", "/tokentap/requests?limit=20", NULL, NULL, 0, &r);
    cJSON *reqs = cJSON_Parse(r.body);
    itest_resp_free(&r);
    const cJSON *e;
    int agents_off = 0, aliased = 0;
    cJSON_ArrayForEach(e, reqs)
    {
        const char *rules = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "rules"));
        const cJSON *th = cJSON_GetObjectItemCaseSensitive(e, "thinking");
        if (rules && strcmp(rules, "agents-off") == 0 && cJSON_IsFalse(th))
            agents_off++;
        if (rules && strstr(rules, "claude-to-q3")) {
            aliased++;
            CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "model")), "local-q3");
            CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "upstream")), "q3");
        }
    }
    CHECK_INT(agents_off, 1);
    CHECK_INT(aliased, 1);
    cJSON_Delete(reqs);
    CHECK_INT(itest_stop(&serve), 0);

    /* What went upstream: the agent's body with only the flag added. */
    DIR *d = opendir(rec);
    struct dirent *de;
    char trace[300] = "";
    while (d && (de = readdir(d)))
        if (strstr(de->d_name, ".jsonl"))
            snprintf(trace, sizeof(trace), "%.120s/%.120s", rec, de->d_name);
    if (d)
        closedir(d);
    size_t len;
    char *text = itest_read_file(trace, &len);
    const char *want = "\"body\":{\"model\":\"local-q4\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                       "\"stream\":true,\"max_tokens\":150,\"chat_template_kwargs\":{\"foo\":1,"
                       "\"enable_thinking\":false}}";
    CHECK(strstr(text, want) != NULL);
    /* Traces keep the headers as the client sent them. */
    CHECK(strstr(text, "X-Tokentap-Thinking") != NULL);
    free(text);
    itest_stop(&q3);
    itest_stop(&q4);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 99;
    return check_done("test_rewrite_serve");
}
