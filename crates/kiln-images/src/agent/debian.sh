#!/bin/sh
# kiln-agent for the debian-12 image: announces readiness, then applies the instance's metadata
# as cloud-init does on EC2 (hostname, SSH keys for root and admin, user data once per
# instance). kiln-agent.service runs it after sshd is up, with stdout on /dev/console (the
# serial console), so everything printed here is in the console output.

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
imds=http://169.254.169.254
# Tests (and debugging) can point the agent elsewhere with kiln.imds=URL on the kernel command
# line; QEMU user networking would otherwise take 169.254.169.254 to the host's own network.
for arg in $(cat /proc/cmdline 2>/dev/null); do
    case "$arg" in kiln.imds=*) imds="${arg#kiln.imds=}" ;; esac
done
state=/var/lib/kiln
user=admin

# On a line of its own: the serial getty may just have printed its prompt.
printf '\n%s\n' "@READY@ version=$(cat /etc/kiln/image-version)"

# A root volume larger than the image gets the room (online; a no-op when already full size).
root_dev=$(findmnt -n -o SOURCE /)
case "$root_dev" in /dev/vd*) resize2fs "$root_dev" >/dev/null 2>&1 ;; esac

# IMDSv2 when the service offers it, IMDSv1 otherwise; a fresh token on every retry.
token=
fetch_token() {
    token=$(curl -sf --connect-timeout 2 -m 5 -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 300" \
        "$imds/latest/api/token" 2>/dev/null) || token=
}
get() {
    if [ -n "$token" ]; then
        curl -sf --connect-timeout 2 -m 10 -H "X-aws-ec2-metadata-token: $token" "$imds/latest/$1" 2>/dev/null
    else
        curl -sf --connect-timeout 2 -m 10 "$imds/latest/$1" 2>/dev/null
    fi
}

# An id shaped like EC2's, so a metadata service that is not Kiln's (or an error page) is
# never taken for an instance.
valid_id() {
    case "$1" in i-*[!0-9a-f]* | i-) return 1 ;; i-*) return 0 ;; *) return 1 ;; esac
}

host_keys() {
    echo "-----BEGIN SSH HOST KEY KEYS-----"
    cat /etc/ssh/ssh_host_*_key.pub 2>/dev/null
    echo "-----END SSH HOST KEY KEYS-----"
}

# systemd-networkd's DHCP may still be in progress: retry for up to a minute.
start=$(date +%s)
while fetch_token; ! id=$(get meta-data/instance-id) || ! valid_id "$id"; do
    if [ $(($(date +%s) - start)) -ge 60 ]; then
        host_keys
        echo "kiln-agent: no instance metadata"
        exit 0
    fi
    sleep 0.5
done

mkdir -p "$state"
chmod 700 "$state"
previous=$(cat "$state/instance-id" 2>/dev/null)

# A new instance of an image made from another instance must not share its host keys.
if [ -n "$previous" ] && [ "$previous" != "$id" ]; then
    echo "kiln-agent: new instance, regenerating SSH host keys"
    rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub
    ssh-keygen -A >/dev/null
    systemctl restart ssh.service
fi

if name=$(get meta-data/hostname) && [ -n "$name" ]; then
    case "$name" in
        *[!A-Za-z0-9.-]*) echo "kiln-agent: ignoring invalid hostname" ;;
        *)
            hostname "$name" && echo "$name" >/etc/hostname
            # sudo and others look the name up; Debian's convention is 127.0.1.1.
            sed -i '/^127\.0\.1\.1[[:space:]]/d' /etc/hosts
            printf '127.0.1.1\t%s %s\n' "$name" "${name%%.*}" >>/etc/hosts
            ;;
    esac
fi

# Keys are added, never removed, as cloud-init does: a key baked into an image keeps working.
add_keys() { # home owner keys
    mkdir -p "$1/.ssh"
    touch "$1/.ssh/authorized_keys"
    printf '%s\n' "$3" | while IFS= read -r key; do
        [ -n "$key" ] || continue
        grep -qxF -- "$key" "$1/.ssh/authorized_keys" || printf '%s\n' "$key" >>"$1/.ssh/authorized_keys"
    done
    chmod 700 "$1/.ssh"
    chmod 600 "$1/.ssh/authorized_keys"
    chown -R "$2" "$1/.ssh"
}
if keys=$(get meta-data/public-keys/0/openssh-key) && [ -n "$keys" ]; then
    add_keys /root root:root "$keys"
    if home=$(getent passwd "$user" | cut -d: -f6) && [ -n "$home" ]; then
        add_keys "$home" "$user:$(id -gn "$user")" "$keys"
    fi
fi

host_keys

# User data runs once per instance id: an image made from this instance runs its own user data
# again on each new instance, but a reboot does not.
if [ "$previous" != "$id" ]; then
    # Fetched before the id is stored, so a failed fetch is retried at the next boot.
    get user-data >"$state/user-data.new" || rm -f "$state/user-data.new"
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
