// Package systemd holds castd's systemd units (castd.service and
// castd.socket for a workstation user service; castd-sidecar.service and
// castd-sidecar.socket for a CI runner's shared sidecar) and the test that
// checks them with systemd-analyze. It has no Go API.
package systemd
