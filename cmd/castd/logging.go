package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// newLogger returns a text logger writing to w at the named level (debug,
// info, warn or error; empty means info), and the level, which a reload
// sets.
func newLogger(level string, w io.Writer) (*slog.Logger, *slog.LevelVar, error) {
	l, err := parseLevel(level)
	if err != nil {
		return nil, nil, err
	}
	v := &slog.LevelVar{}
	v.Set(l)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: v})), v, nil
}

// parseLevel reads a log-level setting.
func parseLevel(level string) (slog.Level, error) {
	var l slog.Level
	if level != "" {
		if err := l.UnmarshalText([]byte(strings.ToLower(level))); err != nil {
			return 0, fmt.Errorf("log-level %q: expected debug, info, warn or error", level)
		}
	}
	return l, nil
}
