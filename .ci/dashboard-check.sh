#!/usr/bin/env bash
# Manual check (not part of .ci/run: it needs a `prometheus` binary and network access):
# evaluates every PromQL expression of the published Grafana dashboard "Solti agent overview"
# with a real Prometheus against a real agentd-http after a mixed workload, and checks that
# the agent selector lists agentd-http. The dashboard JSON is fetched at run time.
#
#   cargo build -p agentd-http && bash .ci/dashboard-check.sh [target-dir]
#
# Offline: DASHBOARD_JSON=/path/to/agent-overview.json bash .ci/dashboard-check.sh
set -euo pipefail
TARGET=${1:-${CARGO_TARGET_DIR:-target}}
BIN=$TARGET/debug/agentd-http
URL=${DASHBOARD_URL:-https://raw.githubusercontent.com/soltiHQ/dashboards/main/solti/agent-overview.json}
command -v prometheus >/dev/null || { echo "prometheus is not installed" >&2; exit 2; }
[ -x "$BIN" ] || { echo "build agentd-http first ($BIN)" >&2; exit 2; }
D=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$D"; }
trap cleanup EXIT
if [ -n "${DASHBOARD_JSON:-}" ]; then cp "$DASHBOARD_JSON" "$D/dashboard.json"; else curl -fsSL "$URL" -o "$D/dashboard.json"; fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
API=$(free_port); METRICS=$(free_port); CP=$(free_port); PROM=$(free_port)

# A Podium double that accepts every sync.
python3 - "$CP" <<'EOF' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = b'{"success":true}'
        self.send_response(200); self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
PIDS+=($!)
"$BIN" --listen 127.0.0.1:$API --metrics-listen 127.0.0.1:$METRICS --control-plane http://127.0.0.1:$CP \
    --heartbeat-ms 1000 --state-dir "$D/state" >"$D/agent.out" 2>"$D/agent.err" &
PIDS+=($!)
cat >"$D/prometheus.yml" <<EOF
global: { scrape_interval: 2s }
scrape_configs:
  - job_name: solti-agent
    static_configs: [ { targets: ["127.0.0.1:$METRICS"] } ]
EOF
prometheus --config.file="$D/prometheus.yml" --storage.tsdb.path="$D/data" \
    --web.listen-address=127.0.0.1:$PROM >"$D/prometheus.log" 2>&1 &
PIDS+=($!)
sleep 3

tasks=http://127.0.0.1:$API/api/v1/tasks
spec() { # slot script timeout-ms restart admission [extra json]
  printf '{"spec":{"slot":"%s","kind":{"subprocess":{"command":{"command":"sh","args":["-c","%s"]},"failOnNonZero":true}},"timeoutMs":%s,"restart":"%s","admission":"%s"%s}}' "$@"
}
post() { curl -s -o /dev/null -X POST "$tasks" -H 'Content-Type: application/json' -d "$1"; }
for round in 1 2 3; do
  for i in 1 2 3 4 5; do post "$(spec ok-$round-$i 'echo hi; sleep 0.1' 10000 RESTART_STRATEGY_NEVER ADMISSION_STRATEGY_DROP_IF_RUNNING)"; done
  post "$(spec fail-$round 'exit 3' 10000 RESTART_STRATEGY_ON_FAILURE ADMISSION_STRATEGY_DROP_IF_RUNNING ',"maxRetries":2,"backoff":{"jitter":"JITTER_STRATEGY_NONE","firstMs":200,"maxMs":200,"factor":1}')"
  post "$(spec slow-$round 'sleep 5' 300 RESTART_STRATEGY_NEVER ADMISSION_STRATEGY_DROP_IF_RUNNING)"
  for i in 1 2 3; do post "$(spec queue-$round 'sleep 1' 10000 RESTART_STRATEGY_NEVER ADMISSION_STRATEGY_QUEUE)"; done
  post "$(spec busy-$round 'sleep 2' 10000 RESTART_STRATEGY_NEVER ADMISSION_STRATEGY_DROP_IF_RUNNING)"
  post "$(spec busy-$round 'true' 10000 RESTART_STRATEGY_NEVER ADMISSION_STRATEGY_DROP_IF_RUNNING)"
  post '{"spec":{"slot":"x","timeoutMs":1000}}'              # 400
  curl -s -o /dev/null "$tasks/tsk_unknown"                    # 404
  sleep 8
done
sleep 20

python3 - "$D/dashboard.json" "http://127.0.0.1:$PROM" <<'EOF'
import json, sys, urllib.parse, urllib.request
dash, base = json.load(open(sys.argv[1])), sys.argv[2]
def get(path, **params):
    return json.load(urllib.request.urlopen(f"{base}{path}?{urllib.parse.urlencode(params)}"))
agents = get("/api/v1/label/agent/values", **{"match[]": "solti_build_info"})["data"]
print(f"agent selector: {agents}")
exprs = [(p.get("title", "?"), t["expr"]) for p in dash["panels"] for t in p.get("targets", []) if "expr" in t]
empty = 0
for title, expr in exprs:
    q = expr.replace("$agent", "agentd-http").replace("$__rate_interval", "1m")
    res = get("/api/v1/query", query=q)["data"]["result"]
    print(f"{'ok   ' if res else 'EMPTY'} {len(res):3} series  {title}")
    empty += not res
print(f"{len(exprs) - empty}/{len(exprs)} expressions returned data")
sys.exit(0 if empty == 0 and "agentd-http" in agents else 1)
EOF
