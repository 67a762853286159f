#!/bin/sh
# kiln-agent for the minimal image: applies the instance's metadata at boot as cloud-init does
# on EC2 (hostname, SSH key, user data once per instance). Init runs it after the ready marker
# with stdout on the serial console, so everything printed here is in the console output.
# Busybox only: wget, no curl, and IMDSv1 GETs.

imds=http://169.254.169.254
# Tests (and debugging) can point the agent elsewhere with kiln.imds=URL on the kernel command
# line; QEMU user networking would otherwise take 169.254.169.254 to the host's own network.
for arg in $(cat /proc/cmdline 2>/dev/null); do
    case "$arg" in kiln.imds=*) imds="${arg#kiln.imds=}" ;; esac
done
state=/var/lib/kiln

# `timeout` rather than wget's -T: Debian's busybox is built without it and crashes on it.
get() { timeout 2 wget -q -O - "$imds/latest/$1" 2>/dev/null; }

# An id shaped like EC2's, so a metadata service that is not Kiln's (or an error page) is
# never taken for an instance.
valid_id() {
    case "$1" in i-*[!0-9a-f]* | i-) return 1 ;; i-*) return 0 ;; *) return 1 ;; esac
}

# DHCP runs in the background, so the first requests may fail: retry for up to five minutes
# (a host starting many emulated VMs at once can be that slow).
start=$(date +%s)
while ! id=$(get meta-data/instance-id) || ! valid_id "$id"; do
    if [ $(($(date +%s) - start)) -ge 300 ]; then
        echo "kiln-agent: no instance metadata"
        exit 0
    fi
    usleep 500000
done

if name=$(get meta-data/hostname) && [ -n "$name" ]; then
    case "$name" in
        *[!A-Za-z0-9.-]*) echo "kiln-agent: ignoring invalid hostname" ;;
        *) hostname "$name" && echo "$name" >/etc/hostname ;;
    esac
fi

# Keys are added, never removed, as cloud-init does: a key baked into an image keeps working.
if keys=$(get meta-data/public-keys/0/openssh-key) && [ -n "$keys" ]; then
    mkdir -p /root/.ssh
    chmod 700 /root/.ssh
    touch /root/.ssh/authorized_keys
    chmod 600 /root/.ssh/authorized_keys
    printf '%s\n' "$keys" | while IFS= read -r key; do
        [ -n "$key" ] || continue
        grep -qxF -- "$key" /root/.ssh/authorized_keys || printf '%s\n' "$key" >>/root/.ssh/authorized_keys
    done
fi

# User data runs once per instance id: an image made from this instance runs its own user data
# again on each new instance, but a reboot does not.
mkdir -p "$state"
chmod 700 "$state"
if [ "$(cat "$state/instance-id" 2>/dev/null)" != "$id" ]; then
    # Fetched before the id is stored, so a failed fetch is retried at the next boot.
    timeout 10 wget -q -O "$state/user-data.new" "$imds/latest/user-data" 2>/dev/null || rm -f "$state/user-data.new"
    printf '%s\n' "$id" >"$state/instance-id.new" && mv "$state/instance-id.new" "$state/instance-id"
    # A crash or hard reset right after must not run the user data a second time.
    sync
    if [ -f "$state/user-data.new" ] && [ "$(head -c 2 "$state/user-data.new")" = "#!" ]; then
        mv "$state/user-data.new" "$state/user-data"
        chmod 700 "$state/user-data"
        echo "kiln-agent: running user data"
        "$state/user-data" </dev/null
        echo "kiln-agent: user-data exited $?"
    else
        rm -f "$state/user-data.new"
    fi
fi

echo "@DONE@ instance-id=$id"
