#!/bin/sh
# A walkthrough of the gdp gateway's HTTP API with curl (docs/GATEWAY.md).
# Run it against a running gateway:
#   SOCK=$XDG_RUNTIME_DIR/gdp/gateway.sock OWNER=alice SERVERS='"S1","S2"' sh examples/curl.sh
# Every answer is JSON; every error is {"error": ..., "reason": ...} with a
# 4xx/5xx status, and a refused request wrote nothing.
set -eu
SOCK=${SOCK:-${XDG_RUNTIME_DIR:-$HOME/.gdp}/gdp/gateway.sock}
OWNER=${OWNER:-alice}
: "${SERVERS:?set SERVERS to the replica names, quoted and comma-separated: '\"S1\",\"S2\"'}"
gw() { curl -sS --fail-with-body --unix-socket "$SOCK" "$@"; echo; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

echo "# who am I, and which router carries me"
gw http://gdp/v1/status

echo "# a capsule of records: create, append one, append a batch (NDJSON), read"
C=$(gw -X POST http://gdp/v1/capsules -H 'Content-Type: application/json' \
      -d "{\"owner\":\"$OWNER\",\"servers\":[$SERVERS],\"description\":\"curl walkthrough\"}" | field capsule)
echo "capsule $C"
gw -X POST "http://gdp/v1/capsules/$C/records" -H 'Content-Type: application/json' -d '{"data":"hello"}'
printf '{"data":"two"}\n{"data":"three"}\n{"data_base64":"AAEC"}\n' |
  gw -X POST "http://gdp/v1/capsules/$C/records" -H 'Content-Type: application/x-ndjson' --data-binary @-
gw "http://gdp/v1/capsules/$C/records?from=1&to=4"
gw "http://gdp/v1/capsules/$C/records/2"
gw "http://gdp/v1/capsules/$C"

echo "# a key-value store with time travel"
K=$(gw -X POST http://gdp/v1/capsules -H 'Content-Type: application/json' \
      -d "{\"owner\":\"$OWNER\",\"servers\":[$SERVERS],\"description\":\"kv\"}" | field capsule)
S=$(gw -X PUT "http://gdp/v1/kv/$K/keys/colour" -H 'Content-Type: application/json' -d '{"value":"red"}' | field seqno)
gw -X PUT "http://gdp/v1/kv/$K/keys/colour" -H 'Content-Type: application/json' -d '{"value":"green"}'
gw "http://gdp/v1/kv/$K/keys/colour"              # green
gw "http://gdp/v1/kv/$K/keys/colour?seqno=$S"     # red: as of the first put
gw "http://gdp/v1/kv/$K/history/colour"

echo "# a file with versions"
F=$(gw -X POST http://gdp/v1/capsules -H 'Content-Type: application/json' \
      -d "{\"owner\":\"$OWNER\",\"servers\":[$SERVERS],\"description\":\"files\"}" | field capsule)
V=$(echo "first" | gw -X PUT "http://gdp/v1/files/$F/content/notes.txt" --data-binary @- | field seqno)
echo "second" | gw -X PUT "http://gdp/v1/files/$F/content/notes.txt" --data-binary @-
gw "http://gdp/v1/files/$F/content/notes.txt"            # second
gw "http://gdp/v1/files/$F/content/notes.txt?seqno=$V"   # first
gw "http://gdp/v1/files/$F/versions/notes.txt"

echo "# an encrypted capsule: this gateway seals, the servers hold ciphertext only"
E=$(gw -X POST http://gdp/v1/capsules -H 'Content-Type: application/json' \
      -d "{\"owner\":\"$OWNER\",\"servers\":[$SERVERS],\"description\":\"diary\",\"sealed\":true}" | field capsule)
gw -X POST "http://gdp/v1/sealed/$E/records" -H 'Content-Type: application/json' -d '{"data":"dear diary"}'
gw "http://gdp/v1/sealed/$E/records/2"      # opened: "dear diary" (record 1 is the key record)
gw "http://gdp/v1/capsules/$E/records/2"    # what the servers hold: the sealed envelope
gw "http://gdp/v1/sealed/$E/readers"        # the epoch and its readers' public keys

echo "# bad input: a clear 4xx, nothing written"
curl -sS --unix-socket "$SOCK" -X POST "http://gdp/v1/capsules/$C/records" -H 'Content-Type: application/json' -d '{"data": '; echo

echo "# a subscription is a WebSocket (curl 7.86+ speaks it; examples/gateway.py has a client):"
echo "#   curl --unix-socket $SOCK --no-buffer -H 'Connection: Upgrade' -H 'Upgrade: websocket' \\"
echo "#        -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' \\"
echo "#        'http://gdp/v1/capsules/$C/subscribe?from=1'"
