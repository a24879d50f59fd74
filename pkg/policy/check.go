package policy

import "errors"

// Check loads the user config file as the daemon would (file, CASTD_*
// environment; "" means the default location) and each project's
// project.conf in projectDirs, and returns what `castd config check`
// reports: the resolved Report when everything is valid, else a Report
// with Valid false that lists every error, across the user config and
// each project. It reads files and the environment; it prints nothing.
func Check(file string, projectDirs []string) Report {
	var errs Errors
	cfg, err := Load(LoadOptions{File: file})
	errs = appendErrors(errs, err)
	var projects []*Project
	for _, dir := range projectDirs {
		p, err := LoadProject(dir)
		errs = appendErrors(errs, err)
		if p != nil {
			projects = append(projects, p)
		}
	}
	if cfg != nil && len(errs) == 0 {
		return BuildReport(cfg, projects)
	}
	return Report{ConfigFile: file, Errors: []Error(errs.sorted()), BuildStreamSettings: []Error{}, Projects: []ProjectReport{}}
}

func appendErrors(errs Errors, err error) Errors {
	if err == nil {
		return errs
	}
	var es Errors
	if errors.As(err, &es) {
		return append(errs, es...)
	}
	return append(errs, Error{Msg: err.Error()})
}
