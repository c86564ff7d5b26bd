#!/bin/sh
# The demo's deploy command (deploy.command in the demo's inventory): what
# deploy-rs would do to HOST, reduced to moving its /run/current-system to
# a new generation.
echo "building nixos-system-$1 (lab)"
exec ./bin/hoctl run "$1" -- ln -sfn "/nix/store/$(date +%s%N)-nixos-system-$1" /run/current-system
