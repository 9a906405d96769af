#!/usr/bin/python3
"""Helpers for bench/loadgen (not a user-facing tool).

  trace N MAX_TOKENS FILE      N tokentap trace v1 lines: streamed chat requests
                               with X-Request-Id and session "lg-<i>"
  responses TOKENS FILE        a sim --responses file: one canned answer of
                               TOKENS+20 pieces for every request ("bench:")
  run --out F [--timeout S] [--watch PID] -- CMD...
                               runs CMD and writes its own CPU (user, sys) and
                               peak RSS from wait4(), its wall time, the CPU the
                               watched process (the sim) used meanwhile, and the
                               CPU the rest of the machine used; forwards
                               SIGINT/SIGTERM; kills CMD after S seconds
  tterr LOG STAMPS OUT         timestamp error of a `tokentap replay --log
                               --log-gaps` run against `tokentap sim --stamp-log`
  result RESULTS SCENARIO STREAMS RATE TOKENS ROUND CLIENT RUSAGE SUMMARY [TTERR]
                               appends one client run to RESULTS (JSONL)
  table RESULTS                the Markdown table from bench/loadgen's results
"""
import json
import os
import signal
import statistics
import subprocess
import sys
import time


def percentile(sorted_values, q):
    """Nearest rank on a sorted list; the aiohttp client uses the same rule."""
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, int(round(q / 100.0 * (len(sorted_values) - 1)))))
    return sorted_values[k]


# --- inputs ---

def cmd_trace(n, max_tokens, path):
    with open(path, "w", encoding="utf-8") as f:
        for i in range(1, int(n) + 1):
            rid = f"lg-{i}"
            body = {"model": "tokentap-sim",
                    "messages": [{"role": "user", "content": f"bench: request {i}"}],
                    "max_tokens": int(max_tokens), "stream": True}
            line = {"v": 1, "id": i, "t_wall_us": 0, "t_mono_us": 0, "session": rid,
                    "client": None, "method": "POST", "path": "/v1/chat/completions",
                    "headers": [["Content-Type", "application/json"], ["X-Request-Id", rid]],
                    "body": body, "status": None,
                    "response": {"content": "", "reasoning": "", "tools": "",
                                 "finish_reason": None, "usage": None, "timings": None}}
            f.write(json.dumps(line, separators=(",", ":")) + "\n")


def cmd_responses(tokens, path):
    # " tok" is one sim piece (one token event).
    text = "bench" + " tok" * (int(tokens) + 20)
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"responses": [{"match": "bench:", "text": text}]}, f)


# --- run one client, measure it ---

def proc_cpu_s(pid):
    """utime + stime of a live process, seconds; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def machine_busy_s():
    """CPU seconds busy on the whole machine so far (all cores)."""
    with open("/proc/stat", encoding="ascii") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def cmd_run(argv):
    out, timeout, watch = None, 600.0, None
    while argv and argv[0] != "--":
        opt, val = argv[0], argv[1]
        argv = argv[2:]
        if opt == "--out":
            out = val
        elif opt == "--timeout":
            timeout = float(val)
        elif opt == "--watch":
            watch = int(val)
        else:
            sys.exit(f"loadgen_util run: unknown option {opt}")
    cmd = argv[1:]
    if not out or not cmd:
        sys.exit("loadgen_util run: --out FILE -- CMD... needed")

    watch0 = proc_cpu_s(watch) if watch else None
    busy0 = machine_busy_s()
    t0 = time.monotonic()
    child = subprocess.Popen(cmd)
    state = {"timed_out": False, "signalled": False}

    def forward(signum, frame):
        state["signalled"] = True
        try:
            child.send_signal(signal.SIGTERM)
        except OSError:
            pass

    def on_alarm(signum, frame):
        if not state["timed_out"]:
            state["timed_out"] = True
            child.send_signal(signal.SIGTERM)
            signal.alarm(5)
        else:
            child.kill()

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(max(1, int(timeout)))
    _, status, ru = os.wait4(child.pid, 0)
    signal.alarm(0)
    wall = time.monotonic() - t0
    busy = machine_busy_s() - busy0
    watch1 = proc_cpu_s(watch) if watch else None
    client_cpu = ru.ru_utime + ru.ru_stime
    res = {
        "exit": os.waitstatus_to_exitcode(status),
        "timed_out": state["timed_out"],
        "wall_s": wall,
        "user_s": ru.ru_utime,
        "sys_s": ru.ru_stime,
        "maxrss_kb": ru.ru_maxrss,
        "watch_cpu_s": (watch1 - watch0) if watch0 is not None and watch1 is not None else None,
    }
    other = busy - client_cpu - (res["watch_cpu_s"] or 0)
    res["other_cores"] = max(0.0, other / wall) if wall > 0 else 0.0
    with open(out, "w", encoding="utf-8") as f:
        json.dump(res, f)
        f.write("\n")
    if state["signalled"]:
        sys.exit(130)
    sys.exit(res["exit"] if res["exit"] >= 0 else 1)


# --- timestamp error of tokentap replay ---

def cmd_tterr(log_path, stamps_path, out_path):
    stamps = {}
    with open(stamps_path, encoding="utf-8") as f:
        for line in f:
            s = json.loads(line)
            if s.get("request_id"):
                stamps[s["request_id"]] = s["stamps_us"]
    errs = []
    matched = unmatched = 0
    with open(log_path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            st = stamps.get(r.get("session"))
            t = r.get("t") or {}
            gaps = r.get("gaps_us")
            if st is None or t.get("first_token") is None or gaps is None \
                    or len(gaps) + 1 != len(st) or r.get("token_events") != len(st):
                unmatched += 1
                continue
            matched += 1
            # Receive times as replay took them: first token (ms after t_start,
            # printed exactly to the µs), then the recorded gaps.
            recv = t["start_us"] + round(t["first_token"] * 1000.0)
            errs.append(recv - st[0])
            for g, s in zip(gaps, st[1:]):
                recv += g
                errs.append(recv - s)
    errs.sort()
    res = {"requests_matched": matched, "requests_unmatched": unmatched,
           "count": len(errs), "p50": percentile(errs, 50), "p99": percentile(errs, 99),
           "max": errs[-1] if errs else None}
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(res, f)
        f.write("\n")


# --- one result line per client run ---

def cmd_result(args):
    out, scenario, streams, rate, tokens, rnd, client, rusage_path, summary_path = args[:9]
    ru = json.load(open(rusage_path, encoding="utf-8"))
    sm = json.load(open(summary_path, encoding="utf-8"))
    r = {"scenario": scenario, "streams": int(streams), "rate": float(rate), "tokens": int(tokens),
         "round": int(rnd), "client": client, "user_s": ru["user_s"], "sys_s": ru["sys_s"],
         "maxrss_kb": ru["maxrss_kb"], "wall_s": ru["wall_s"], "sim_cpu_s": ru["watch_cpu_s"],
         "other_cores": ru["other_cores"], "exit": ru["exit"], "timed_out": ru["timed_out"]}
    if client == "tokentap":
        ov = sm["stats"]["overall"]
        r["events"] = ov["token_events"]
        r["duration_s"] = sm["duration_s"]
        r["failed"] = sm["requests_planned"] - ov["outcomes"].get("ok", 0)
        te = json.load(open(args[9], encoding="utf-8"))
        r["err_p50_us"], r["err_p99_us"], r["err_count"] = te["p50"], te["p99"], te["count"]
        r["err_unmatched_requests"] = te["requests_unmatched"]
    else:
        r["events"] = sm["token_events"]
        r["duration_s"] = sm["duration_s"]
        r["failed"] = sm["requests_failed"]
        e = sm["stamp_error_us"]
        r["err_p50_us"], r["err_p99_us"], r["err_count"] = e["p50"], e["p99"], e["count"]
    with open(out, "a", encoding="utf-8") as f:
        f.write(json.dumps(r) + "\n")
    return r


# --- the table ---

def fmt(v, nd=0):
    if v is None:
        return "—"
    if nd == 0:
        return f"{v:,.0f}"
    return f"{v:,.{nd}f}"


def ratio(a, b, nd=2):
    if a is None or b is None or b <= 0:
        return "—"
    return f"{a / b:.{nd}f}×"


def cmd_table(path):
    runs = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    order, by = [], {}
    for r in runs:
        key = r["scenario"]
        if key not in by:
            order.append(key)
            by[key] = {"tokentap": [], "aiohttp": []}
        by[key][r["client"]].append(r)

    def med(rs, f):
        vals = [f(r) for r in rs]
        vals = [v for v in vals if v is not None]
        return statistics.median(vals) if vals else None

    print("| scenario | streams | client | events/s (asked) | client CPU-s | events per CPU-s "
          "| ts error p50 / p99 (ms) | peak RSS (MiB) | sim CPU (cores) | other load (cores) |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    ratios = []
    for key in order:
        m = {}
        for client in ("tokentap", "aiohttp"):
            rs = by[key][client]
            if not rs:
                continue
            s = rs[0]
            m[client] = {
                "eps": med(rs, lambda r: r["events"] / r["duration_s"] if r["duration_s"] else None),
                "cpu": med(rs, lambda r: r["user_s"] + r["sys_s"]),
                "epc": med(rs, lambda r: r["events"] / (r["user_s"] + r["sys_s"])
                           if r["user_s"] + r["sys_s"] > 0 else None),
                "p50": med(rs, lambda r: r["err_p50_us"]),
                "p99": med(rs, lambda r: r["err_p99_us"]),
                "rss": med(rs, lambda r: r["maxrss_kb"] / 1024.0),
                "sim": med(rs, lambda r: r["sim_cpu_s"] / r["wall_s"]
                           if r.get("sim_cpu_s") is not None and r["wall_s"] else None),
                "other": med(rs, lambda r: r["other_cores"]),
                "failed": sum(r["failed"] for r in rs),
                "events": sum(r["events"] for r in rs),
                "rounds": len(rs),
            }
            x = m[client]
            err = (f"{fmt(x['p50'] / 1000.0, 2)} / {fmt(x['p99'] / 1000.0, 2)}"
                   if x["p50"] is not None else "—")
            fail = f" ({x['failed']} failed)" if x["failed"] else ""
            print(f"| {key} | {s['streams']:,} | {client}{fail} | {fmt(x['eps'])} "
                  f"({fmt(s['streams'] * s['rate'])}) | {fmt(x['cpu'], 2)} | {fmt(x['epc'])} | {err} "
                  f"| {fmt(x['rss'], 1)} | {fmt(x['sim'], 2)} | {fmt(x['other'], 2)} |")
        if "tokentap" in m and "aiohttp" in m:
            t, a = m["tokentap"], m["aiohttp"]
            ratios.append((key, by[key]["tokentap"][0]["streams"], t, a))
    print()
    print("Ratios, tokentap / aiohttp (events per CPU-s: higher is better for tokentap; "
          "timestamp error and RSS: lower is better):")
    print()
    print("| scenario | streams | events/s | events per CPU-s | ts error p50 | ts error p99 | peak RSS |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for key, streams, t, a in ratios:
        print(f"| {key} | {streams:,} | {ratio(t['eps'], a['eps'])} | {ratio(t['epc'], a['epc'])} "
              f"| {ratio(t['p50'], a['p50'], 3)} | {ratio(t['p99'], a['p99'], 3)} "
              f"| {ratio(t['rss'], a['rss'])} |")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "trace" and len(args) == 3:
        cmd_trace(*args)
    elif cmd == "responses" and len(args) == 2:
        cmd_responses(*args)
    elif cmd == "run":
        cmd_run(args)
    elif cmd == "tterr" and len(args) == 3:
        cmd_tterr(*args)
    elif cmd == "result" and len(args) in (9, 10):
        r = cmd_result(args)
        eps = r["events"] / r["duration_s"] if r["duration_s"] else 0
        cpu = r["user_s"] + r["sys_s"]
        p50 = r["err_p50_us"] / 1000 if r["err_p50_us"] is not None else float("nan")
        p99 = r["err_p99_us"] / 1000 if r["err_p99_us"] is not None else float("nan")
        print(f"{r['events']} events in {r['duration_s']:.1f} s ({eps:,.0f}/s), "
              f"CPU {cpu:.2f} s ({r['events'] / cpu if cpu else 0:,.0f} events/CPU-s), "
              f"ts error p50 {p50:.2f} ms p99 {p99:.2f} ms, RSS {r['maxrss_kb'] / 1024:.0f} MiB, "
              f"sim {r['sim_cpu_s'] or 0:.2f} CPU-s, failed {r['failed']}")
    elif cmd == "table" and len(args) == 1:
        cmd_table(args[0])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
