package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// newLogger returns a text logger writing to w at the named level (debug,
// info, warn or error; empty means info).
func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if level != "" {
		if err := l.UnmarshalText([]byte(strings.ToLower(level))); err != nil {
			return nil, fmt.Errorf("log-level %q: expected debug, info, warn or error", level)
		}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
