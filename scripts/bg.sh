# shellcheck shell=bash
# Background jobs for scripts/setup.sh and scripts/run-tests (sourced, not run): each job's output goes to its own
# log file, its end is reported in one line with its time, and a failure shows the log's tail and one line why.
#   bg_start NAME CMD...   start CMD in a session of its own, output to $bg_logs/NAME.log
#   bg_wait NAME           wait for it; 0 when it succeeded, else its tail and a one-line reason on stderr, 1
#   bg_stop                end the jobs still running (on exit: an interrupted or failed run leaves no build behind)
# The caller sets bg_logs (a folder) and a say function.

declare -A bg_pid=() bg_t0=()

bg_start() {
  local name=$1
  shift
  mkdir -p "$bg_logs"
  : >"$bg_logs/$name.log"
  setsid "$@" >"$bg_logs/$name.log" 2>&1 </dev/null &
  bg_pid[$name]=$!
  bg_t0[$name]=$SECONDS
  say "$name: started in the background (log: $bg_logs/$name.log)"
}

bg_wait() {
  local name=$1 rc=0 last
  wait "${bg_pid[$name]}" || rc=$?
  unset "bg_pid[$name]"
  if [ "$rc" = 0 ]; then
    say "$name: done in $((SECONDS - bg_t0[$name])) s"
    return 0
  fi
  printf '%s\n' "--- last lines of $bg_logs/$name.log:" >&2
  tail -n 25 "$bg_logs/$name.log" | sed 's/^/  | /' >&2
  last=$(grep -v '^[[:space:]]*$' "$bg_logs/$name.log" | tail -n 1)
  say "FAILED: $name (exit $rc after $((SECONDS - bg_t0[$name])) s): ${last:-no output} (whole log: $bg_logs/$name.log)"
  return 1
}

bg_stop() {
  local name
  for name in "${!bg_pid[@]}"; do
    # setsid made the job the leader of its own process group: end the whole group (make, QEMU, ...)
    kill -TERM -- "-${bg_pid[$name]}" 2>/dev/null || true
  done
}
