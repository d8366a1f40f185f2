# Shared by scripts/up and scripts/test: make sure PostgreSQL and Redis run on this machine.
# Installs them from the distribution's packages when absent (needs root or sudo and apt-get).

PG_HOST=127.0.0.1
PG_PORT=5432
REDIS_PORT=6379

log() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root to run: $*"
    fi
}

apt_install() {
    command -v apt-get >/dev/null || die "apt-get not found; install $* yourself"
    log "installing $* from the distribution's packages"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

pg_ready() {
    if command -v pg_isready >/dev/null; then
        pg_isready -q -h "$PG_HOST" -p "$PG_PORT"
    else
        (exec 3<>"/dev/tcp/$PG_HOST/$PG_PORT") 2>/dev/null
    fi
}

ensure_postgres() {
    if pg_ready; then return 0; fi
    if [ ! -d /etc/postgresql ] || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
        apt_install postgresql postgresql-client
    fi
    local version
    version=$(ls /etc/postgresql | sort -V | tail -1)
    log "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 60); do pg_ready && break; sleep 0.5; done
    pg_ready || die "PostgreSQL did not start on $PG_HOST:$PG_PORT"
    # Local development runs connect over TCP as `postgres` without a password.
    if ! psql -h "$PG_HOST" -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
        local hba="/etc/postgresql/$version/main/pg_hba.conf"
        log "allowing local TCP connections without password in $hba"
        as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
        sleep 1
    fi
}

redis_ready() {
    if command -v redis-cli >/dev/null; then
        [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null
    fi
}

ensure_redis() {
    if redis_ready; then return 0; fi
    command -v redis-server >/dev/null || apt_install redis-server redis-tools
    log "starting Redis"
    as_root mkdir -p /var/lib/redis /var/log/redis
    as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
    for _ in $(seq 1 40); do redis_ready && break; sleep 0.25; done
    redis_ready || die "Redis did not start on 127.0.0.1:$REDIS_PORT"
}

ensure_rust() {
    command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs)"
}

ensure_node() {
    command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
    [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ] || die "Node.js 20 or newer is needed (found $(node --version))"
}

# s3s-fs serves a local directory over the S3 API: the real S3-compatible server the tests of the
# S3 blob store run against. Installed from crates.io on first use, into the user's cache
# directory (kept across checkouts); exports
# S3S_FS_BIN for the tests. 0.14 is the newest release that builds with our rust-version (1.95).
S3S_FS_VERSION=0.14.1
ensure_s3s() {
    if [ -n "${S3S_FS_BIN:-}" ] && [ -x "$S3S_FS_BIN" ]; then return 0; fi
    local root="${XDG_CACHE_HOME:-$HOME/.cache}/boxes-tools/s3s-fs-$S3S_FS_VERSION"
    if [ ! -x "$root/bin/s3s-fs" ]; then
        log "installing s3s-fs $S3S_FS_VERSION from crates.io (first use)"
        cargo install --locked --quiet s3s-fs --version "$S3S_FS_VERSION" --features binary --root "$root" ||
            die "installing s3s-fs failed"
    fi
    export S3S_FS_BIN="$root/bin/s3s-fs"
}
