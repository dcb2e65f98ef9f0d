#!/usr/bin/env bash
# The demo: the launch post's image classifier, for real. A fresh registry (a temporary
# WASMHOST_HOME) gets the catalog's ImageNet classifier as image-classifier/classifier;
# `wasmhost serve` serves it; examples/image-classifier/app.py (the Worker's analogue)
# calls the service with a run token of its own; each photo in images/ is POSTed to the
# app with curl (python if curl is missing) and its top 5 printed. Everything listens on
# 127.0.0.1 on free ports and is stopped on exit.
set -euo pipefail
py=${PYTHON:-python3}
cd "$(dirname "$0")/.."
work=$(mktemp -d)
export WASMHOST_HOME="$work/home"
unset WASMHOST_REGISTRY WASMHOST_BLOBS
pids=()

stop() {  # the app, then the server: TERM, then KILL after 10 s
    trap '' INT TERM
    local i n pid
    for ((n = ${#pids[@]} - 1; n >= 0; n--)); do
        pid=${pids[n]}
        kill -TERM "$pid" 2>/dev/null || continue
        for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap stop EXIT
trap 'exit 130' INT TERM

wasmhost() { "$py" -m wasmhost.cli "$@"; }
free_port() {
    "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
have_curl() { command -v curl >/dev/null 2>&1; }
get() {  # succeeds when URL answers 2xx
    if have_curl; then
        curl -sf -o /dev/null --max-time 2 "$1"
    else
        "$py" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1" 2>/dev/null
    fi
}
classify() {  # POST file $2 to URL $1 as multipart field `file`; prints the JSON answer
    if have_curl; then
        curl -sS --max-time 60 -F "file=@$2" "$1"
    else
        "$py" -c 'import sys, httpx
with open(sys.argv[2], "rb") as f:
    print(httpx.post(sys.argv[1], files={"file": f}, timeout=60).text)' "$1" "$2"
    fi
}
wait_until_up() {  # URL, pid, log: at most 60 s
    local i
    for i in $(seq 600); do
        get "$1" && return 0
        if ! kill -0 "$2" 2>/dev/null; then
            echo "it exited:" >&2
            cat "$3" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "no answer from $1 in 60 s:" >&2
    cat "$3" >&2
    exit 1
}

echo "\$ wasmhost project create image-classifier"
wasmhost project create image-classifier
echo "\$ wasmhost model upload image-classifier classifier catalog/imagenet-efficientnet-lite0"
wasmhost model upload image-classifier classifier catalog/imagenet-efficientnet-lite0
echo "\$ wasmhost token create classifier-app --role run --project image-classifier"
created=$(wasmhost token create classifier-app --role run --project image-classifier)
token=${created##* }
echo "${created% *} wh_…"

serve_port=$(free_port)
server="http://127.0.0.1:$serve_port"
echo
echo "\$ wasmhost serve --port $serve_port &"
"$py" -m wasmhost.cli serve --host 127.0.0.1 --port "$serve_port" >"$work/serve.log" 2>&1 &
pids+=($!)
wait_until_up "$server/v2/health/ready" "${pids[-1]}" "$work/serve.log"

app_port=$(free_port)
app="http://127.0.0.1:$app_port/"
echo "\$ python examples/image-classifier/app.py --port $app_port --server $server --token \$TOKEN &"
"$py" examples/image-classifier/app.py --host 127.0.0.1 --port "$app_port" \
    --server "$server" --token "$token" >"$work/app.log" 2>&1 &
pids+=($!)
wait_until_up "$app" "${pids[-1]}" "$work/app.log"
cat "$work/app.log"

for photo in images/*.png images/*.jpg images/*.jpeg; do
    [ -f "$photo" ] || continue
    echo
    if have_curl; then
        echo "\$ curl -F file=@$photo $app"
    else
        echo "\$ curl -F file=@$photo $app    # (no curl here: python posts it)"
    fi
    answer=$(classify "$app" "$photo")
    echo "$answer"
    "$py" -c 'import json, sys
doc = json.loads(sys.argv[1])
if "top5" not in doc:
    sys.exit(f"no classes: {doc}")
for c in doc["top5"]:
    print("  %6.4f  %s" % (c["probability"], c["name"]))' "$answer"
done
echo
echo "(stopping the app and the server)"
