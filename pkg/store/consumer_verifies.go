package store

import "context"

type consumerVerifiesKey struct{}

// WithConsumerVerifies marks ctx for a Get whose reader goes straight into
// something that hashes every byte against the digest itself (a local
// Put, which stores nothing unverified): a CAS that hashes a stream only
// to check it, as the upstream client does, may then leave the check to
// that consumer and save the second SHA-256 of the blob. It changes no
// other behaviour; a CAS is free to ignore it.
func WithConsumerVerifies(ctx context.Context) context.Context {
	return context.WithValue(ctx, consumerVerifiesKey{}, true)
}

// ConsumerVerifies reports whether ctx carries WithConsumerVerifies.
func ConsumerVerifies(ctx context.Context) bool {
	v, _ := ctx.Value(consumerVerifiesKey{}).(bool)
	return v
}
