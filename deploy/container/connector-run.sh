#!/bin/sh
# The Connector image's default command: make the organization's identity once (a second
# start finds it in CONNECTOR_DATA_DIR and changes nothing), then serve in the foreground.
set -eu
connector init --if-missing
exec connector serve
