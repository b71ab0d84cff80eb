#!/usr/bin/env bash
# Install, upgrade or remove Compound Gateway on Debian 12 / Raspberry Pi OS (bookworm).
#
#   sudo packaging/install.sh --source .                       # from this source tree
#   sudo packaging/install.sh --wheel dist/compound_gateway-0.1.0-py3-none-any.whl \
#        --wheelhouse /media/usb/wheelhouse                    # offline: no network at all
#   sudo packaging/install.sh --port bus0=serial:A10K1234      # name an RS-485 adapter
#   packaging/install.sh --root /tmp/stage --source .          # stage into a folder (tests, images)
#   sudo packaging/install.sh --uninstall [--purge]
#
# Idempotent: run it again to upgrade. It never overwrites /etc/compound-gw/gateway.toml, never
# sets a password, never enables or starts the daemon on a fresh install (the hardware is not
# configured yet: run `compound-gw setup`, then `systemctl enable --now compound-gw`). On an
# upgrade, a daemon that is already running is restarted onto the new code. The only network
# use is pip fetching dependencies when no --wheelhouse is given. See docs/install.md.
set -euo pipefail

readonly APP=compound-gw
readonly PREFIX=/opt/compound-gw
readonly ETC_DIR=/etc/compound-gw
readonly DATA_DIR=/var/lib/compound-gw
readonly UNIT_PATH=/etc/systemd/system/compound-gw.service
readonly UPDATE_UNIT_PATH=/etc/systemd/system/compound-gw-update.service
readonly UPDATE_TIMER_PATH=/etc/systemd/system/compound-gw-update.timer
readonly UDEV_RULES=/etc/udev/rules.d/70-compound-gw.rules
readonly UDEV_PORTS=/etc/udev/rules.d/71-compound-gw-ports.rules
readonly JOURNALD_DROPIN=/etc/systemd/journald.conf.d/compound-gw.conf
readonly MANIFEST=$PREFIX/install-manifest.txt

ASSETS="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT=""
SOURCE=""
WHEEL=""
WHEELHOUSE=""
PYTHON=python3
NO_DEPS=0
SKIP_USER=0
UNINSTALL=0
PURGE=0
PORTS=()

log() { printf 'install: %s\n' "$*" >&2; }
die() { printf 'install: error: %s\n' "$*" >&2; exit 1; }

usage() {
    cat <<'EOF'
usage: install.sh (--source DIR | --wheel FILE) [options]
       install.sh --port NAME=[serial:|id:|path:]VALUE ...     (only add port names)
       install.sh --uninstall [--purge]

  --source DIR       install the project from a source tree (pip builds it)
  --wheel FILE       install the project from a built wheel
  --wheelhouse DIR   take every dependency from DIR, never from the network (pip --no-index)
  --python PATH      interpreter for the venv (default: python3; needs python3-venv)
  --port NAME=MATCH  give an adapter the stable name /dev/compound-gw/NAME; MATCH is
                     serial:SERIAL (ID_SERIAL_SHORT, the default), id:ID (ID_SERIAL, as in
                     /dev/serial/by-id) or path:PATH (ID_PATH: the physical USB socket). Repeatable.
  --root DIR         install into DIR instead of / (staging, images, tests): nothing outside DIR
                     is touched, systemd and udev are not reloaded
  --skip-user        do not create the user or change file owners (unprivileged staging)
  --no-deps          install only the project itself (its dependencies are already in the venv)
  --uninstall        remove the program, unit, udev rules and journald drop-in; keep config/data
  --purge            with --uninstall: also remove config, data, port names and the user
EOF
}

while (($#)); do
    case "$1" in
        --root) ROOT="${2:?--root needs a folder}"; shift 2 ;;
        --source) SOURCE="${2:?--source needs a folder}"; shift 2 ;;
        --wheel) WHEEL="${2:?--wheel needs a file}"; shift 2 ;;
        --wheelhouse) WHEELHOUSE="${2:?--wheelhouse needs a folder}"; shift 2 ;;
        --python) PYTHON="${2:?--python needs a path}"; shift 2 ;;
        --port) PORTS+=("${2:?--port needs NAME=MATCH}"); shift 2 ;;
        --skip-user) SKIP_USER=1; shift ;;
        --no-deps) NO_DEPS=1; shift ;;
        --uninstall) UNINSTALL=1; shift ;;
        --purge) PURGE=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

if [[ -n "$ROOT" ]]; then
    [[ -d "$ROOT" ]] || die "--root $ROOT is not a folder"
    ROOT="$(cd "$ROOT" && pwd)"
    [[ "$ROOT" == / ]] && ROOT=""
fi
if [[ -n "$SOURCE" && -n "$WHEEL" ]]; then die "give --source or --wheel, not both"; fi
if ((PURGE && !UNINSTALL)); then die "--purge goes with --uninstall"; fi
if ((EUID != 0 && !SKIP_USER)); then
    die "run as root (or stage unprivileged with --root DIR --skip-user)"
fi

# Every path we write goes through here, so --root can never escape into the real system.
r() { printf '%s%s' "$ROOT" "$1"; }

# Ids looked up in the target's own files: with --root, the host's users mean nothing.
id_of() { # id_of passwd|group NAME
    awk -F: -v n="$2" '$1 == n { print $3; exit }' "$(r "/etc/$1")" 2>/dev/null || true
}

live_system() { [[ -z "$ROOT" && -d /run/systemd/system ]]; }

shadow_args=()
[[ -n "$ROOT" ]] && shadow_args=(--prefix "$ROOT")

# --------------------------------------------------------------------------- user and groups

ensure_group() {
    local name=$1
    if [[ -z "$(id_of group "$name")" ]]; then
        groupadd --system "${shadow_args[@]}" "$name"
        log "created system group $name"
    fi
}

ensure_user() {
    ensure_group dialout
    ensure_group gpio # Raspberry Pi OS has it; plain Debian does not
    if [[ -z "$(id_of passwd "$APP")" ]]; then
        useradd --system --user-group --no-create-home --home-dir "$DATA_DIR" \
            --shell /usr/sbin/nologin --comment "Compound Gateway daemon" \
            --groups dialout,gpio "${shadow_args[@]}" "$APP"
        log "created system user $APP (groups dialout, gpio; no password, no login shell)"
    else
        usermod --append --groups dialout,gpio "${shadow_args[@]}" "$APP"
    fi
}

# own OWNER GROUP MODE PATH: chown by numeric id of the target system, then chmod.
own() {
    local uid=0 gid=0
    if ((!SKIP_USER)); then
        [[ "$1" == root ]] || uid="$(id_of passwd "$1")"
        [[ "$2" == root ]] || gid="$(id_of group "$2")"
        [[ -n "$uid" && -n "$gid" ]] || die "no id for $1:$2 in $(r /etc/passwd)"
        chown "$uid:$gid" "$4"
    fi
    chmod "$3" "$4"
}

# --------------------------------------------------------------------------- program

install_venv() {
    local venv target
    venv="$(r "$PREFIX/venv")"
    target="${WHEEL:-$SOURCE}"
    [[ -e "$target" ]] || die "$target does not exist"
    if [[ ! -x "$venv/bin/python" ]]; then
        "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null ||
            die "$PYTHON cannot make a venv: apt-get install python3-venv"
        install -d -m 0755 "$(r "$PREFIX")"
        "$PYTHON" -m venv "$venv"
        log "created venv $PREFIX/venv"
    fi
    local pip=("$venv/bin/python" -m pip --no-input --disable-pip-version-check --no-cache-dir
        install --quiet)
    [[ -n "$WHEELHOUSE" ]] && pip+=(--no-index --find-links "$WHEELHOUSE")
    if ((!NO_DEPS)); then
        "${pip[@]}" "$target"
    fi
    # Same version number, new code (a source upgrade): reinstall the project alone.
    "${pip[@]}" --no-deps --force-reinstall "$target"
    if [[ -n "$ROOT" ]]; then
        # The venv was built at $ROOT/opt/...; it will run at /opt/...: fix its recorded paths.
        local f
        for f in "$venv"/bin/* "$venv/pyvenv.cfg"; do
            [[ -f "$f" && ! -L "$f" ]] || continue
            if grep -IqF -- "$venv" "$f"; then
                sed -i "s|$venv|$PREFIX/venv|g" "$f"
            fi
        done
    fi
    log "installed $(basename "$target") into $PREFIX/venv"
}

# --------------------------------------------------------------------------- files

install_file() { # install_file SRC DEST MODE
    install -d -m 0755 "$(dirname "$(r "$2")")"
    install -m "$3" "$1" "$(r "$2")"
    printf '%s\n' "$2" >>"$(r "$MANIFEST").new"
}

install_files() {
    install -d -m 0755 "$(r "$PREFIX")"
    : >"$(r "$MANIFEST").new"
    local doc
    for doc in "$ASSETS"/docs/*.md; do
        install_file "$doc" "$PREFIX/docs/$(basename "$doc")" 0644
    done
    install_file "$ASSETS/config/systemd/compound-gw.service" "$UNIT_PATH" 0644
    install_file "$ASSETS/config/systemd/compound-gw-update.service" "$UPDATE_UNIT_PATH" 0644
    install_file "$ASSETS/config/systemd/compound-gw-update.timer" "$UPDATE_TIMER_PATH" 0644
    install_file "$ASSETS/config/udev/70-compound-gw.rules" "$UDEV_RULES" 0644
    install_file "$ASSETS/config/journald/compound-gw.conf" "$JOURNALD_DROPIN" 0644
    mv "$(r "$MANIFEST").new" "$(r "$MANIFEST")"

    # Config: root writes it, the daemon's group reads it, nobody else sees it.
    install -d "$(r "$ETC_DIR")"
    own root "$APP" 0750 "$(r "$ETC_DIR")"
    install -m 0640 "$ASSETS/config/gateway.example.toml" "$(r "$ETC_DIR/gateway.example.toml")"
    own root "$APP" 0640 "$(r "$ETC_DIR/gateway.example.toml")"
    local cfg
    cfg="$(r "$ETC_DIR/gateway.toml")"
    if [[ -e "$cfg" ]]; then
        # Never rewritten; only made readable by the daemon's group and by nobody else.
        if ((!SKIP_USER)); then chgrp "$(id_of group "$APP")" "$cfg"; fi
        chmod g+r,g-wx,o-rwx "$cfg"
        log "kept the existing $ETC_DIR/gateway.toml"
    else
        install -m 0640 "$ASSETS/config/gateway.example.toml" "$cfg"
        own root "$APP" 0640 "$cfg"
        log "wrote $ETC_DIR/gateway.toml from the example: run 'compound-gw setup' next"
    fi

    # State: the daemon's own (systemd's StateDirectory= would create it too, but the setup
    # wizard writes keys here before the first start).
    install -d "$(r "$DATA_DIR")"
    own "$APP" "$APP" 0750 "$(r "$DATA_DIR")"
}

valid_port() { [[ "$1" =~ ^[a-z0-9][a-z0-9_-]{0,31}=((serial|id|path):)?[A-Za-z0-9_.:+-]{1,128}$ ]]; }

add_ports() {
    local file spec name match key value tmp
    file="$(r "$UDEV_PORTS")"
    install -d -m 0755 "$(dirname "$file")"
    if [[ ! -e "$file" ]]; then
        cat >"$file" <<'EOF'
# Compound Gateway: stable names for this gateway's RS-485 adapters (/dev/compound-gw/NAME).
# One line per adapter; written by `install.sh --port NAME=MATCH`, safe to edit by hand.
# Reload with: udevadm control --reload-rules && udevadm trigger --subsystem-match=tty
EOF
        chmod 0644 "$file"
    fi
    for spec in "${PORTS[@]}"; do
        valid_port "$spec" || die "--port $spec: want NAME=[serial:|id:|path:]VALUE"
        name="${spec%%=*}"
        match="${spec#*=}"
        case "$match" in
            path:*) key=ID_PATH; value="${match#path:}" ;;
            id:*) key=ID_SERIAL; value="${match#id:}" ;;
            *) key=ID_SERIAL_SHORT; value="${match#serial:}" ;;
        esac
        tmp="$file.tmp"
        grep -vF "SYMLINK+=\"compound-gw/$name\"" "$file" >"$tmp" || true
        printf 'SUBSYSTEM=="tty", ENV{%s}=="%s", SYMLINK+="compound-gw/%s"\n' \
            "$key" "$value" "$name" >>"$tmp"
        chmod 0644 "$tmp"
        mv "$tmp" "$file"
        log "port $name: /dev/compound-gw/$name is the adapter with $key=$value"
    done
}

reload_system() {
    if ! live_system; then
        log "not a live systemd root: skipped daemon-reload and udev reload"
        return
    fi
    systemctl daemon-reload
    if command -v udevadm >/dev/null; then
        udevadm control --reload-rules
        udevadm trigger --subsystem-match=tty --action=change || true
    fi
    if systemctl is-active --quiet "$APP"; then
        systemctl restart "$APP"
        log "restarted the running $APP onto the new version"
    else
        log "$APP is not running and was not started (run 'compound-gw setup' first)"
    fi
    log "the journald size cap applies at the next boot (or: systemctl restart systemd-journald)"
}

# --------------------------------------------------------------------------- uninstall

uninstall() {
    if live_system; then
        systemctl disable --now "$APP-update.timer" "$APP" 2>/dev/null || true
    fi
    local f
    for f in "$UNIT_PATH" "$UPDATE_UNIT_PATH" "$UPDATE_TIMER_PATH" "$UDEV_RULES" "$JOURNALD_DROPIN"; do
        rm -f -- "$(r "$f")"
    done
    rm -rf -- "$(r "$PREFIX")"
    log "removed $PREFIX, the units, the udev rules and the journald drop-in"
    if ((PURGE)); then
        rm -rf -- "$(r "$ETC_DIR")" "$(r "$DATA_DIR")"
        rm -f -- "$(r "$UDEV_PORTS")"
        if ((!SKIP_USER)) && [[ -n "$(id_of passwd "$APP")" ]]; then
            userdel "${shadow_args[@]}" "$APP"
        fi
        log "purged $ETC_DIR, $DATA_DIR (journal included), port names and the $APP user"
    else
        log "kept $ETC_DIR and $DATA_DIR (the journal); --purge removes them"
    fi
    if live_system; then
        systemctl daemon-reload
        if command -v udevadm >/dev/null; then udevadm control --reload-rules; fi
    fi
}

# --------------------------------------------------------------------------- main

if ((UNINSTALL)); then
    uninstall
    exit 0
fi
if [[ -z "$SOURCE" && -z "$WHEEL" ]]; then
    ((${#PORTS[@]})) || die "give --source DIR or --wheel FILE (see --help)"
    add_ports
    reload_system
    exit 0
fi

for asset in config/systemd/compound-gw.service config/systemd/compound-gw-update.service \
    config/systemd/compound-gw-update.timer config/udev/70-compound-gw.rules \
    config/journald/compound-gw.conf config/gateway.example.toml docs/install.md; do
    [[ -f "$ASSETS/$asset" ]] || die "missing $ASSETS/$asset: run the script from a full checkout"
done
((SKIP_USER)) || ensure_user
install_venv
install_files
if ((${#PORTS[@]})); then add_ports; fi
reload_system
log "done. Next: edit or generate $ETC_DIR/gateway.toml ('compound-gw setup'),"
log "      then: systemctl enable --now $APP"
