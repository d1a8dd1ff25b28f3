#!/usr/bin/env bash
# End-to-end TLS / mTLS check of the reference agents with clients that are not ours:
# openssl makes a CA, a server certificate for 127.0.0.1 and a client certificate; the agents
# serve with --tls-cert/--tls-key/--tls-client-ca; curl and openssl s_client talk to them.
# Usage: bash .ci/tls-e2e.sh [TARGET_DIR]   (expects debug agentd-http and agentd-grpc built)
set -euo pipefail
target="${1:-${CARGO_TARGET_DIR:-target}}"
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"

# --- PKI ---
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=solti e2e CA" -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
  -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
  -extfile server.ext -out server.crt 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=e2e-client" \
  -keyout client.key -out client.csr 2>/dev/null
printf 'extendedKeyUsage=clientAuth\n' > client.ext
openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
  -extfile client.ext -out client.crt 2>/dev/null
# A second CA whose client certificate must be refused.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=other CA" -keyout other.key -out other.crt 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=intruder" \
  -keyout intruder.key -out intruder.csr 2>/dev/null
openssl x509 -req -in intruder.csr -CA other.crt -CAkey other.key -CAcreateserial -days 2 \
  -extfile client.ext -out intruder.crt 2>/dev/null

start_agent() { # bin name, extra args...; sets $addr
  local bin="$1" name="$2"; shift 2
  "$target/debug/$bin" --listen 127.0.0.1:0 --metrics-listen off --state-dir "$work/$name" \
    --tls-cert server.crt --tls-key server.key "$@" > "$name.out" 2> "$name.err" &
  pids+=("$!")
  for _ in $(seq 1 100); do
    if grep -q ' ready: ' "$name.out"; then break; fi
    sleep 0.1
  done
  addr="$(sed -n 's/.* api=[a-z]*:\/\/\([^ ]*\) .*/\1/p' "$name.out")"
  [ -n "$addr" ] || { cat "$name.err"; echo "FAIL: $bin did not start"; exit 1; }
}
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; exit 1; }

# --- HTTPS, server TLS only ---
start_agent agentd-http tls
code=$(curl -s -o body.json -w '%{http_code}' --cacert ca.crt "https://$addr/api/v1/tasks")
[ "$code" = 200 ] && ok "https (TLS) GET /api/v1/tasks -> 200 $(cat body.json)" || fail "https TLS got $code"
curl -s -o /dev/null "http://$addr/api/v1/tasks" && fail "plain http accepted on a TLS port" || ok "plain http on the TLS port refused"

# --- HTTPS with mTLS ---
start_agent agentd-http mtls --tls-client-ca ca.crt
code=$(curl -s -o body.json -w '%{http_code}' --cacert ca.crt --cert client.crt --key client.key \
  -X POST "https://$addr/api/v1/tasks" -H 'Content-Type: application/json' \
  -d '{"spec":{"slot":"tls","kind":{"subprocess":{"command":{"command":"echo","args":["over mtls"]},"failOnNonZero":true}},"timeoutMs":"5000","restart":"RESTART_STRATEGY_NEVER","admission":"ADMISSION_STRATEGY_DROP_IF_RUNNING"}}')
[ "$code" = 201 ] && ok "https (mTLS) POST /api/v1/tasks with client cert -> 201 $(cat body.json)" || fail "mTLS submit got $code"
if curl -s -o /dev/null --cacert ca.crt "https://$addr/api/v1/tasks"; then fail "mTLS: client without certificate served"; else ok "mTLS: client without certificate refused"; fi
if curl -s -o /dev/null --cacert ca.crt --cert intruder.crt --key intruder.key "https://$addr/api/v1/tasks"; then
  fail "mTLS: certificate from another CA served"; else ok "mTLS: certificate from another CA refused"; fi
echo | openssl s_client -connect "$addr" -CAfile ca.crt -cert client.crt -key client.key \
  -verify_return_error -brief 2> sclient.txt > /dev/null || true
grep -q "Verification: OK" sclient.txt && ok "openssl s_client mTLS handshake verified ($(grep -m1 'Protocol version' sclient.txt))" \
  || { cat sclient.txt; fail "openssl s_client handshake"; }

# --- gRPC with mTLS: the handshake negotiates h2 ---
start_agent agentd-grpc grpc --tls-client-ca ca.crt
echo | openssl s_client -connect "$addr" -CAfile ca.crt -cert client.crt -key client.key -alpn h2 \
  -verify_return_error > grpc.txt 2>&1 || true
grep -q "Verify return code: 0 (ok)" grpc.txt && grep -q "ALPN protocol: h2" grpc.txt \
  && ok "gRPC port: mTLS handshake verified, ALPN h2" || { cat grpc.txt; fail "gRPC TLS handshake"; }
echo "all TLS end-to-end checks passed"
