#!/usr/bin/env bash
# Run a command with the network closed: in a new network namespace that has
# only the loopback interface (Jupyter kernels talk to their client over
# 127.0.0.1). Used by `make book`, so the build proves it needs no download.
# Where namespaces are not allowed (no root, a container without the
# capability), the command runs as it is, and says so.
set -euo pipefail
if [ "${NNBOOK_OFFLINE:-1}" = 1 ] && unshare -n true 2>/dev/null && command -v ip >/dev/null; then
    exec unshare -n bash -c 'ip link set lo up && exec "$@"' offline "$@"
fi
echo "tools/offline.sh: cannot close the network here; running with it" >&2
exec "$@"
