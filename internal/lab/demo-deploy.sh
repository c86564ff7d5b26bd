#!/bin/sh
# The demo's deploy command (deploy.command in the demo's inventory): what
# deploy-rs does to HOST, reduced to adding a NixOS-like system generation
# there and switching to it (hoctl-lab generation prints the script).
echo "building nixos-system-$1 (lab)"
exec ./bin/hoctl run "$1" -- "$(./bin/hoctl-lab generation "$1")"
