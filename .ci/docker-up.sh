# Start a private Docker engine for the test suite (sourced by .ci/run, usable by hand).
# Recipe from shared/research/vllm-patch.md §1.1: socket in a temporary folder, no bridge,
# no iptables changes, stopped by its PID. Nothing is ever pulled: tests build local images.
DOCKER_TEST_ROOT="${DOCKER_TEST_ROOT:-/tmp/mlops-docker}"

docker_up() {
  mkdir -p "$DOCKER_TEST_ROOT"
  export DOCKER_HOST="unix://$DOCKER_TEST_ROOT/docker.sock"
  if docker info >/dev/null 2>&1; then echo "docker engine already running at $DOCKER_HOST"; return 0; fi
  dockerd --data-root="$DOCKER_TEST_ROOT/data" --exec-root="$DOCKER_TEST_ROOT/exec" \
    --pidfile="$DOCKER_TEST_ROOT/dockerd.pid" --host="$DOCKER_HOST" --storage-driver=overlay2 \
    --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
    >"$DOCKER_TEST_ROOT/dockerd.log" 2>&1 &
  for _ in $(seq 150); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
  if ! docker info >/dev/null 2>&1; then
    echo "error: dockerd did not start; its log:" >&2; tail -20 "$DOCKER_TEST_ROOT/dockerd.log" >&2; return 1
  fi
  echo "docker engine up at $DOCKER_HOST"
}

docker_down() {
  if [ -f "$DOCKER_TEST_ROOT/dockerd.pid" ]; then
    kill "$(cat "$DOCKER_TEST_ROOT/dockerd.pid")" 2>/dev/null || true
    for _ in $(seq 50); do [ -f "$DOCKER_TEST_ROOT/dockerd.pid" ] || break; sleep 0.2; done
  fi
}
