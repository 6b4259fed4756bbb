#!/bin/sh
# Install (or remove) repconsole's desktop integration for the current user:
# the desktop entry, the icons and the AppStream metadata, under
# ${XDG_DATA_HOME:-~/.local/share}, following the freedesktop specifications.
#
#   packaging/install-desktop.sh                 # launch the best repconsole found
#   packaging/install-desktop.sh --exec PATH     # launch this executable
#   packaging/install-desktop.sh --uninstall
#
# Without --exec the entry launches, in order of preference: the PyInstaller
# bundle dist/repconsole/repconsole, the project's .venv/bin/repconsole, or
# the repconsole on PATH.  The entry's Exec and TryExec get the absolute path,
# because a desktop session's PATH rarely contains a virtualenv or a bundle.
set -eu

APP_ID=io.github.repconsole.RepConsole
SIZES="16 24 32 48 64 128 256 512"
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
DATA=${XDG_DATA_HOME:-$HOME/.local/share}

usage() {
    # The comment block at the top of this file is the help text.
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit "$1"
}

die() {
    echo "install-desktop: $*" >&2
    exit 1
}

exec_path=
uninstall=no
while [ $# -gt 0 ]; do
    case $1 in
        --exec) [ $# -ge 2 ] || die "--exec needs a path"; exec_path=$2; shift 2 ;;
        --exec=*) exec_path=${1#--exec=}; shift ;;
        --uninstall) uninstall=yes; shift ;;
        -h|--help) usage 0 ;;
        *) echo "install-desktop: unknown argument: $1" >&2; usage 2 >&2 ;;
    esac
done

desktop_file=$DATA/applications/$APP_ID.desktop
metainfo_file=$DATA/metainfo/$APP_ID.metainfo.xml
icon_dir=$DATA/icons/hicolor

# Caches are refreshed where the tools exist; desktops that lack them rescan
# the directories on their own.
refresh_caches() {
    if command -v update-desktop-database >/dev/null 2>&1; then
        update-desktop-database -q "$DATA/applications" || true
    fi
    if command -v gtk-update-icon-cache >/dev/null 2>&1 && [ -f "$icon_dir/index.theme" ]; then
        gtk-update-icon-cache -q -t -f "$icon_dir" || true
    fi
}

if [ "$uninstall" = yes ]; then
    rm -f "$desktop_file" "$metainfo_file" "$icon_dir/scalable/apps/$APP_ID.svg"
    for size in $SIZES; do
        rm -f "$icon_dir/${size}x${size}/apps/$APP_ID.png"
    done
    refresh_caches
    echo "install-desktop: removed $APP_ID from $DATA"
    exit 0
fi

if [ -z "$exec_path" ]; then
    for candidate in "$ROOT/dist/repconsole/repconsole" "$ROOT/.venv/bin/repconsole"; do
        if [ -x "$candidate" ]; then
            exec_path=$candidate
            break
        fi
    done
fi
if [ -z "$exec_path" ]; then
    exec_path=$(command -v repconsole 2>/dev/null) \
        || die "no repconsole found: run 'make dist' or 'make run' first, or pass --exec PATH"
fi
if [ ! -x "$exec_path" ] || [ -d "$exec_path" ]; then
    die "not an executable file: $exec_path"
fi
exec_path=$(cd "$(dirname "$exec_path")" && pwd)/$(basename "$exec_path")

# The desktop entry specification quotes Exec arguments with double quotes,
# inside which ", `, $ and \ need escaping twice over (once for the quoting,
# once for the string value).  Paths that need that are refused instead of
# being escaped: nobody installs a program under such a name on purpose.
case $exec_path in
    *[\"\`\$\\]*) die "the path contains a character the Exec key cannot carry safely: $exec_path" ;;
esac
case $exec_path in
    *[!A-Za-z0-9_./+@:,-]*) exec_value="\"$exec_path\"" ;;
    *) exec_value=$exec_path ;;
esac

mkdir -p "$DATA/applications" "$DATA/metainfo" "$icon_dir/scalable/apps"
# Written next to its destination and renamed, so a desktop watching the
# directory never reads half a file.
tmp=$(mktemp "$DATA/applications/.$APP_ID.XXXXXX")
trap 'rm -f "$tmp"' EXIT
# Only the program of Exec= is replaced; arguments and field codes stay.
# "|" is sed's delimiter here and "&" means "the match": escape both.
sed_exec=$(printf '%s' "$exec_value" | sed 's/[|&]/\\&/g')
sed_path=$(printf '%s' "$exec_path" | sed 's/[|&]/\\&/g')
sed -e "s|^Exec=repconsole\$|Exec=$sed_exec|" \
    -e "s|^Exec=repconsole |Exec=$sed_exec |" \
    -e "s|^TryExec=.*|TryExec=$sed_path|" \
    "$HERE/$APP_ID.desktop" >"$tmp"
grep -qF "Exec=$exec_value" "$tmp" || die "$HERE/$APP_ID.desktop: its Exec line does not run 'repconsole'"
chmod 644 "$tmp"
mv "$tmp" "$desktop_file"
trap - EXIT

cp "$HERE/$APP_ID.metainfo.xml" "$metainfo_file"
cp "$ROOT/resources/repconsole.svg" "$icon_dir/scalable/apps/$APP_ID.svg"
for size in $SIZES; do
    mkdir -p "$icon_dir/${size}x${size}/apps"
    cp "$ROOT/resources/icons/repconsole-$size.png" "$icon_dir/${size}x${size}/apps/$APP_ID.png"
done
refresh_caches

echo "install-desktop: installed $APP_ID into $DATA, launching $exec_path"
