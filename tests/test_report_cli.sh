#!/bin/sh
# tokentap report / compare from the command line: files written where they
# should be, exit codes (0 ok, 1 runtime error, 2 usage error) and one-line
# errors that name the problem. Needs TOKENTAP and FIXTURES.
set -u
: "${TOKENTAP:?}" "${FIXTURES:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
checks=0

fail() {
    echo "test_report_cli: FAIL: $*" >&2
    failures=$((failures + 1))
}

# expect STATUS CMD...: runs CMD with stdout/stderr in $tmp/out, $tmp/err.
expect() {
    want=$1
    shift
    checks=$((checks + 1))
    "$@" >"$tmp/out" 2>"$tmp/err"
    got=$?
    [ "$got" -eq "$want" ] || fail "exit $got (wanted $want): $*: $(head -c 300 "$tmp/err")"
}

# has FILE TEXT: FILE contains TEXT (fixed string).
has() {
    checks=$((checks + 1))
    grep -qF -- "$2" "$1" || fail "$1 lacks: $2"
}

lacks() {
    checks=$((checks + 1))
    ! grep -qF -- "$2" "$1" || fail "$1 has: $2"
}

one_line() {
    checks=$((checks + 1))
    [ "$(wc -l <"$1")" -eq 1 ] || fail "$1: not one error line: $(cat "$1")"
}

# --help and usage errors.
expect 0 "$TOKENTAP" report --help
has "$tmp/out" "tokentap report RESULTS.json [--out DIR] [--md|--html]"
expect 0 "$TOKENTAP" compare --help
has "$tmp/out" "tokentap compare A/results.json B/results.json [--md|--html] [--out FILE]"
expect 2 "$TOKENTAP" report
has "$tmp/err" "tokentap report: which results file?"
expect 2 "$TOKENTAP" report a.json b.json
has "$tmp/err" "one results file only"
expect 2 "$TOKENTAP" report --bogus x.json
has "$tmp/err" "tokentap report: unknown option '--bogus'; try 'tokentap report --help'"
one_line "$tmp/err"
expect 2 "$TOKENTAP" compare "$FIXTURES/results-quant.json"
has "$tmp/err" "needs two results files"
expect 2 "$TOKENTAP" compare a b c
expect 2 "$TOKENTAP" compare --md --html a b
has "$tmp/err" "--md or --html, not both"
one_line "$tmp/err"

# Runtime errors: exit 1, one line naming the file and the reason.
expect 1 "$TOKENTAP" report "$tmp/missing.json"
has "$tmp/err" "tokentap report: cannot read $tmp/missing.json: No such file or directory"
one_line "$tmp/err"
echo '{"hello": "world"}' >"$tmp/other.json"
expect 1 "$TOKENTAP" report "$tmp/other.json"
has "$tmp/err" "$tmp/other.json: not a tokentap results file"
one_line "$tmp/err"
echo '{"format": "tokentap-bench", "version": 7, "cells": []}' >"$tmp/v7.json"
expect 1 "$TOKENTAP" report "$tmp/v7.json"
has "$tmp/err" "results format version 7 is not supported (this tokentap reads version 1)"
one_line "$tmp/err"
printf '{"format": "tokentap-bench", "vers' >"$tmp/torn.json"
expect 1 "$TOKENTAP" compare "$FIXTURES/results-quant.json" "$tmp/torn.json"
has "$tmp/err" "tokentap compare: $tmp/torn.json: not valid JSON"
expect 1 "$TOKENTAP" report "$tmp"
has "$tmp/err" "Is a directory"
expect 1 "$TOKENTAP" compare "$FIXTURES/results-quant.json" "$FIXTURES/results-single-a.json"
has "$tmp/err" "tokentap compare: no target of the first run"

# report: both files next to the results by default.
mkdir "$tmp/run"
cp "$FIXTURES/results-quant.json" "$tmp/run/results.json"
expect 0 "$TOKENTAP" report "$tmp/run/results.json"
has "$tmp/out" "$tmp/run/report.md"
has "$tmp/out" "$tmp/run/report.html"
has "$tmp/run/report.md" "## Comparison: Q3_K_XL vs Q4_K_XL"
has "$tmp/run/report.html" "<canvas id=\"chart-radar\">"
checks=$((checks + 1))
[ -z "$(find "$tmp/run" -name '*.tmp.*')" ] || fail "temporary files left behind"

# --out DIR, --md only, --html only.
mkdir "$tmp/md" "$tmp/html"
expect 0 "$TOKENTAP" report "$FIXTURES/results-quant.json" --out "$tmp/md" --md
checks=$((checks + 1))
[ -f "$tmp/md/report.md" ] && [ ! -e "$tmp/md/report.html" ] || fail "--md wrote the wrong files"
expect 0 "$TOKENTAP" report --html -o "$tmp/html" "$FIXTURES/results-quant.json"
checks=$((checks + 1))
[ -f "$tmp/html/report.html" ] && [ ! -e "$tmp/html/report.md" ] || fail "--html wrote the wrong files"
# A directory that does not exist yet is made, with its parents (as bench
# --out does); one that cannot be is an error naming it.
expect 0 "$TOKENTAP" report "$FIXTURES/results-quant.json" --out "$tmp/nowhere/deeper"
checks=$((checks + 1))
[ -f "$tmp/nowhere/deeper/report.md" ] && [ -f "$tmp/nowhere/deeper/report.html" ] || fail "--out DIR was not made"
touch "$tmp/afile"
expect 1 "$TOKENTAP" report "$FIXTURES/results-quant.json" --out "$tmp/afile/deeper"
has "$tmp/err" "cannot create $tmp/afile/deeper"

# Regenerating gives the same bytes (fixed bootstrap seed).
expect 0 "$TOKENTAP" report "$FIXTURES/results-quant.json" --out "$tmp/html" --md
checks=$((checks + 1))
cmp -s "$tmp/md/report.md" "$tmp/html/report.md" || fail "report.md differs between two runs"

# compare: Markdown to stdout, or HTML into a file.
expect 0 "$TOKENTAP" compare "$FIXTURES/results-quant.json" "$FIXTURES/results-quant-b.json"
has "$tmp/out" "# tokentap compare: $FIXTURES/results-quant.json vs $FIXTURES/results-quant-b.json"
has "$tmp/out" "## Comparison: B: Q3_K_XL vs A: Q3_K_XL"
has "$tmp/out" "> **Run B is incomplete"
expect 0 "$TOKENTAP" compare "$FIXTURES/results-single-a.json" "$FIXTURES/results-single-b.json" \
    --html --out "$tmp/compare.html"
checks=$((checks + 1))
[ ! -s "$tmp/out" ] || fail "compare --out also wrote to stdout"
has "$tmp/compare.html" "<!DOCTYPE html>"
has "$tmp/compare.html" "Each run has one target: A&#39;s <code>base</code> is compared with B&#39;s <code>new</code>."
lacks "$tmp/compare.html" "<script src"

echo "test_report_cli: $checks checks, $failures failed" >&2
[ "$failures" -eq 0 ]
