package policy

import (
	"net/url"
	"strings"
	"time"
)

var (
	serverKeys  = []string{"url", "type", "push", "instance-name", "auth", "connection-config"}
	serviceKeys = []string{"url", "instance-name", "auth", "connection-config"}
	authKeys    = []string{"server-cert", "client-key", "client-cert", "access-token", "access-token-reload-interval"}
	connKeys    = []string{"keepalive-time", "retry-limit", "retry-delay", "request-timeout"}
	reKeys      = []string{"execution-service", "storage-service", "action-cache-service"}
	sectionKeys = []string{"override-project-caches", "servers"}
)

// section decodes a user-config `artifacts` / `source-caches` mapping.
func (d *decoder) section(path string, v any) Section {
	var s Section
	if _, isList := v.([]any); isList {
		d.errorf(path, "expected a mapping with override-project-caches and servers, found a list (put the list under %s.servers)", path)
		return s
	}
	m, ok := d.mapping(path, v)
	if !ok {
		return s
	}
	if _, ok := m["url"]; ok {
		// BuildStream 1 wrote one server straight under the section.
		d.errorf(path, "expected a mapping with override-project-caches and servers, found a single server (BuildStream 1 syntax; put it in a list under %s.servers: servers: [{url: ...}])", path)
		return s
	}
	d.checkKeys(path, m, sectionKeys...)
	if x, ok := m["override-project-caches"]; ok && x != nil {
		s.OverrideProjectCaches, _ = d.boolean(childPath(path, "override-project-caches"), x)
	}
	s.Servers = d.servers(childPath(path, "servers"), "a list", m["servers"])
	return s
}

// servers decodes a list of server mappings; what names the expected shape
// in the error for a non-list.
func (d *decoder) servers(path, what string, v any) []Server {
	if _, isMap := v.(map[string]any); isMap {
		d.errorf(path, "expected %s, found a mapping", what)
		return nil
	}
	l, ok := d.list(path, what, v)
	if !ok {
		return nil
	}
	var out []Server
	for i, x := range l {
		if s, ok := d.server(indexPath(path, i), x); ok {
			out = append(out, s)
		}
	}
	return out
}

func (d *decoder) server(path string, v any) (Server, bool) {
	s := Server{Type: TypeAll}
	m, ok := d.mapping(path, v)
	if !ok {
		return s, false
	}
	before := len(d.errs)
	d.checkKeys(path, m, serverKeys...)
	s.URL = d.url(path, m)
	if x, ok := m["type"]; ok {
		s.Type = d.remoteType(childPath(path, "type"), x)
	}
	if x, ok := m["push"]; ok && x != nil {
		if b, ok := d.boolean(childPath(path, "push"), x); ok {
			s.Push = &b
		}
	}
	if x, ok := m["instance-name"]; ok && x != nil {
		s.InstanceName, _ = d.str(childPath(path, "instance-name"), x)
	}
	s.Auth = d.auth(childPath(path, "auth"), m["auth"])
	s.ConnectionConfig = d.connectionConfig(childPath(path, "connection-config"), m["connection-config"])
	return s, len(d.errs) == before
}

func (d *decoder) remoteType(path string, v any) RemoteType {
	s, _ := v.(string)
	switch s {
	case "index":
		return TypeIndex
	case "storage":
		return TypeStorage
	case "all", "both":
		return TypeAll
	}
	if _, ok := v.(string); ok {
		d.errorf(path, "expected one of index, storage, all (or both, read as all), found %q", s)
	} else {
		d.errorf(path, "expected one of index, storage, all (or both, read as all), found %s", kindOf(v))
	}
	return TypeAll
}

// url reads and checks the required url key of a server or service.
func (d *decoder) url(path string, m map[string]any) string {
	p := childPath(path, "url")
	x, ok := m["url"]
	if !ok || x == nil {
		d.errorf(path, "missing url; expected a URL such as https://cache.example.com:11001")
		return ""
	}
	s, ok := d.str(p, x)
	if !ok {
		return ""
	}
	if strings.TrimSpace(s) == "" {
		d.errorf(p, "expected a non-empty URL, found an empty string")
		return ""
	}
	if !validRemoteURL(s) {
		d.errorf(p, "expected a URL with scheme http, https, grpc, grpcs (and a host) or unix:PATH, found %q", s)
		return s
	}
	d.checkSelfLoop(p, s)
	return s
}

func validRemoteURL(s string) bool {
	if rest, ok := strings.CutPrefix(s, "unix:"); ok {
		return strings.TrimLeft(rest, "/") != ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "http", "https", "grpc", "grpcs":
		return u.Host != ""
	}
	return false
}

func (d *decoder) auth(path string, v any) Auth {
	var a Auth
	if v == nil {
		return a
	}
	m, ok := d.keyedMapping(path, v, authKeys...)
	if !ok {
		return a
	}
	files := []struct {
		key, what string
		dst       *string
	}{
		{"server-cert", "certificate file", &a.ServerCert},
		{"client-key", "client key file", &a.ClientKey},
		{"client-cert", "client certificate file", &a.ClientCert},
		{"access-token", "access token file", &a.AccessToken},
	}
	for _, f := range files {
		if x, ok := m[f.key]; ok && x != nil {
			p := childPath(path, f.key)
			*f.dst, _ = d.path(p, x)
			d.readableFile(p, f.what, *f.dst)
		}
	}
	if x, ok := m["access-token-reload-interval"]; ok && x != nil {
		n, _ := d.integer(childPath(path, "access-token-reload-interval"), x, 0)
		a.AccessTokenReloadInterval = time.Duration(n) * time.Minute
	}
	if a.ClientKey != "" && a.ClientCert == "" {
		d.keyErrorf(childPath(path, "client-key"), "client-key is set without client-cert; client authentication needs both")
	}
	if a.ClientCert != "" && a.ClientKey == "" {
		d.keyErrorf(childPath(path, "client-cert"), "client-cert is set without client-key; client authentication needs both")
	}
	return a
}

func (d *decoder) connectionConfig(path string, v any) ConnectionConfig {
	var c ConnectionConfig
	if v == nil {
		return c
	}
	m, ok := d.keyedMapping(path, v, connKeys...)
	if !ok {
		return c
	}
	get := func(key string) int64 {
		x, ok := m[key]
		if !ok || x == nil {
			return 0
		}
		n, _ := d.integer(childPath(path, key), x, 0)
		return n
	}
	c.KeepaliveTime = time.Duration(get("keepalive-time")) * time.Second
	if x, ok := m["retry-limit"]; ok && x != nil {
		n := int(get("retry-limit"))
		c.RetryLimit = &n
	}
	c.RetryDelay = time.Duration(get("retry-delay")) * time.Millisecond
	c.RequestTimeout = time.Duration(get("request-timeout")) * time.Second
	return c
}

// service decodes one service block; allowPush is set only for
// action-cache-service.
func (d *decoder) service(path string, v any, allowPush bool) *Service {
	m, ok := d.mapping(path, v)
	if !ok {
		return nil
	}
	keys := serviceKeys
	if allowPush {
		keys = append(keys[:len(keys):len(keys)], "push")
	} else if _, has := m["push"]; has {
		d.keyErrorf(childPath(path, "push"), "push is only valid on remote-execution.action-cache-service")
		delete(m, "push")
	}
	d.checkKeys(path, m, keys...)
	s := &Service{URL: d.url(path, m)}
	if x, ok := m["instance-name"]; ok && x != nil {
		s.InstanceName, _ = d.str(childPath(path, "instance-name"), x)
	}
	if x, ok := m["push"]; ok && x != nil && allowPush {
		if b, ok := d.boolean(childPath(path, "push"), x); ok {
			s.Push = &b
		}
	}
	s.Auth = d.auth(childPath(path, "auth"), m["auth"])
	s.ConnectionConfig = d.connectionConfig(childPath(path, "connection-config"), m["connection-config"])
	return s
}

// remoteExecution decodes a remote-execution block. haveCacheStorage says
// whether cache.storage-service is set, which makes storage-service optional.
func (d *decoder) remoteExecution(path string, v any, haveCacheStorage bool) *RemoteExecution {
	if v == nil {
		return nil
	}
	m, ok := d.keyedMapping(path, v, reKeys...)
	if !ok {
		return nil
	}
	re := &RemoteExecution{}
	if x, ok := m["execution-service"]; ok {
		re.ExecutionService = d.service(childPath(path, "execution-service"), x, false)
	}
	if x, ok := m["storage-service"]; ok {
		re.StorageService = d.service(childPath(path, "storage-service"), x, false)
	}
	if x, ok := m["action-cache-service"]; ok {
		re.ActionCacheService = d.service(childPath(path, "action-cache-service"), x, true)
	}
	_, hasExec := m["execution-service"]
	_, hasAC := m["action-cache-service"]
	if !hasExec && !hasAC {
		d.errorf(path, "expected execution-service or action-cache-service (or both); found neither")
	}
	if _, has := m["storage-service"]; !has && !haveCacheStorage {
		d.errorf(path, "missing storage-service; it is required unless cache.storage-service is set")
	}
	return re
}
