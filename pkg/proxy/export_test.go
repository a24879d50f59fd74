package proxy

// ExpireRegistrations runs one registration-ttl sweep now.
func ExpireRegistrations(s *Set) { s.expireRegistrations() }
