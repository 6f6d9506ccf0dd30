#!/usr/bin/env bash
# A lab of three hosts on one machine (root only), for claim 1's two-computer case:
#   tl<ID>-pri 10.<N>.0.2 / 10.<N>.1.2   primary     (live net + sync net)
#   tl<ID>-sec 10.<N>.0.3 / 10.<N>.1.3   secondary   (live net + sync net)
#   tl<ID>-view 10.<N>.0.4               viewer      (live net only)
# live net = bridge tl<ID>-live, sync net ("the second network") = bridge tl<ID>-sync.
# Multicast 224.0.0.0/4 is routed onto the live interface in each namespace.
#
#   tools/netns-lab.sh up ID      create (ID: 1-3 chars, e.g. a test's short name; N derived from it)
#   tools/netns-lab.sh down ID    remove everything it created (idempotent)
#   tools/netns-lab.sh addr ID HOST NET   print an address, e.g. addr t1 pri live
# Traffic stays inside the namespaces: nothing is routed to the outside.
set -euo pipefail
cmd=${1:-}; id=${2:-}
[ -n "$cmd" ] && [ -n "$id" ] || { sed -n '2,14p' "$0"; exit 2; }
[[ "$id" =~ ^[a-z0-9]{1,3}$ ]] || { echo "netns-lab: ID must be 1-3 lowercase letters/digits" >&2; exit 2; }
# Second octet from the id: 200-249, so labs with different ids do not overlap.
n=$(( 200 + $(printf '%s' "$id" | cksum | cut -d' ' -f1) % 50 ))
p="tl$id"

addr() { # host net
  local host=$1 net=$2 last
  case $host in pri) last=2;; sec) last=3;; view) last=4;; *) exit 2;; esac
  case $net in live) echo "10.$n.0.$last";; sync) echo "10.$n.1.$last";; *) exit 2;; esac
}

down() {
  for h in pri sec view; do ip netns del "$p-$h" 2>/dev/null || true; done
  ip link del "$p-live" 2>/dev/null || true
  ip link del "$p-sync" 2>/dev/null || true
}

up() {
  [ "$(id -u)" = 0 ] || { echo "netns-lab: must run as root" >&2; exit 1; }
  down
  trap 'down' ERR
  ip link add "$p-live" type bridge mcast_snooping 0 && ip link set "$p-live" up
  ip link add "$p-sync" type bridge mcast_snooping 0 && ip link set "$p-sync" up
  for h in pri sec view; do
    ip netns add "$p-$h"
    ip -n "$p-$h" link set lo up
    ip link add "$p$h-l" type veth peer name "$p$h-lb"
    ip link set "$p$h-lb" master "$p-live" && ip link set "$p$h-lb" up
    ip link set "$p$h-l" netns "$p-$h"
    ip -n "$p-$h" addr add "$(addr $h live)/24" dev "$p$h-l"
    ip -n "$p-$h" link set "$p$h-l" up
    ip -n "$p-$h" route add 224.0.0.0/4 dev "$p$h-l"
  done
  for h in pri sec; do
    ip link add "$p$h-s" type veth peer name "$p$h-sb"
    ip link set "$p$h-sb" master "$p-sync" && ip link set "$p$h-sb" up
    ip link set "$p$h-s" netns "$p-$h"
    ip -n "$p-$h" addr add "$(addr $h sync)/24" dev "$p$h-s"
    ip -n "$p-$h" link set "$p$h-s" up
  done
  trap - ERR
}

case $cmd in
  up) up ;;
  down) down ;;
  addr) addr "$3" "$4" ;;
  *) echo "netns-lab: unknown command $cmd" >&2; exit 2 ;;
esac
