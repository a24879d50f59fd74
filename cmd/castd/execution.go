package main

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/castd/castd/pkg/execution"
	"github.com/castd/castd/pkg/localexec"
	"github.com/castd/castd/pkg/policy"
	"github.com/castd/castd/pkg/proxy"

	"github.com/castd/castd/pkg/store/disk"
)

// openExecution builds the Execution/Operations service: a local runner
// over the local store (staging under local-execution.workdir, else
// STORE/exec) and the per-action decision fed by the remotes' plans. Close
// it after the gRPC server stopped and before the store.
func openExecution(cfg *policy.Config, storeDir string, local *disk.Store, set *proxy.Set, reg prometheus.Registerer, log *slog.Logger) (*execution.Server, error) {
	le := cfg.LocalExecution
	workdir := le.Workdir
	if workdir == "" {
		workdir = filepath.Join(storeDir, "exec")
	}
	runner, err := localexec.New(local, localexec.Options{
		Jobs: le.Jobs, Sandbox: le.Sandbox, WorkDir: workdir,
		DefaultTimeout: le.DefaultTimeout, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("local-execution: %w", err)
	}
	srv, err := execution.New(execution.Config{
		Resolve: set.ExecutionPlan, Runner: runner, Logger: log, Registerer: reg,
		OutputPathsOnly: le.OutputPathsOnly, DigestFunctions: digestFunctions(cfg),
	})
	if err != nil {
		return nil, fmt.Errorf("execution: %w", err)
	}
	return srv, nil
}
