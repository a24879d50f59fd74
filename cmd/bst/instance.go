package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/castd/castd/pkg/store"
)

// target is the REAPI instance a command works in: --instance as given, or
// the one castd hands out for --project DIR.
type target struct {
	instance string
	project  string
}

// addTargetFlags adds --instance and --project to cmd.
func addTargetFlags(cmd *cobra.Command, t *target) {
	cmd.Flags().StringVar(&t.instance, "instance", "", "REAPI instance name (default \"\": castd's global user remotes)")
	cmd.Flags().StringVar(&t.project, "project", "", "project directory: register its project.conf and use its instance name")
}

// resolve returns the instance name, registering the project if one was
// given; --instance and --project together are a usage error.
func (a *app) resolve(ctx context.Context, t target) (string, error) {
	if t.project == "" {
		return t.instance, nil
	}
	if t.instance != "" {
		return "", usagef("--instance and --project exclude each other")
	}
	resp, err := a.registerProject(ctx, t.project)
	if err != nil {
		return "", err
	}
	return resp.GetInstanceName(), nil
}

// casFor connects and returns the CAS of t's instance and the name.
func (a *app) casFor(ctx context.Context, t target) (store.CAS, string, error) {
	instance, err := a.resolve(ctx, t)
	if err != nil {
		return nil, "", err
	}
	c, err := a.connect()
	if err != nil {
		return nil, "", err
	}
	cas, err := c.cas(ctx, instance)
	return cas, instance, err
}
