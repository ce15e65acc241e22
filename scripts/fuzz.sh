#!/usr/bin/env bash
# Runs every Fuzz target in the module for FUZZTIME (default 20s) each.
#
# The seed corpora live in <pkg>/testdata/fuzz/<FuzzTarget>/ (Go's native
# format; `make fuzz-seeds` rewrites the seed-* files from the targets'
# seeds). A crasher is written there by `go test -fuzz` itself and, once
# committed, `go test` (so `make test`) runs it as a regression input.
#
#   FUZZTIME=30s        time per target
#   FUZZ_PARALLEL=1     fuzzing workers per target (default: GOMAXPROCS)
#   FUZZ_KEEP=1         also copy the inputs the engine found interesting
#                       (its cache corpus) into testdata/fuzz/<FuzzTarget>/
#   FUZZ_ONLY=regexp    only targets whose package dir or name match
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-20s}
par=()
[ -n "${FUZZ_PARALLEL:-}" ] && par=(-parallel "$FUZZ_PARALLEL")
cache=$(go env GOCACHE)/fuzz
status=0
failed=()
summary=()
while IFS= read -r file; do
  dir=$(dirname "$file")
  for fn in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)\(' "$file" | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/'); do
    if [ -n "${FUZZ_ONLY:-}" ] && ! [[ "$dir/$fn" =~ $FUZZ_ONLY ]]; then
      continue
    fi
    echo "== $dir $fn ($FUZZTIME)"
    corpus="$dir/testdata/fuzz/$fn"
    before=$(ls "$corpus" 2>/dev/null | wc -l)
    log=$(mktemp)
    if go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$FUZZTIME" "${par[@]}" "./$dir" 2>&1 | tee "$log"; then
      :
    else
      status=1
      failed+=("$dir $fn")
      # go test -fuzz saved the crasher in $corpus: commit it, fix the
      # decoder; `go test ./$dir` reruns it from then on.
      grep -E 'Failing input written to|go test -run=' "$log" || true
    fi
    execs=$(grep -oE 'execs: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo 0)
    rm -f "$log"
    if [ "${FUZZ_KEEP:-0}" = 1 ]; then
      pkg=$(go list "./$dir")
      if [ -d "$cache/$pkg/$fn" ]; then
        mkdir -p "$corpus"
        cp -n "$cache/$pkg/$fn"/* "$corpus"/ 2>/dev/null || true
      fi
    fi
    after=$(ls "$corpus" 2>/dev/null | wc -l)
    summary+=("$(printf '%-22s %-26s execs %-10s corpus %s -> %s' "$dir" "$fn" "$execs" "$before" "$after")")
  done
done < <(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' | sort)
echo
echo "== summary"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "== FAILED (crashers saved under <pkg>/testdata/fuzz/<target>/):"
  printf '  %s\n' "${failed[@]}"
fi
exit $status
