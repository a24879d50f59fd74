package compression

// Chunker collects what is written to it into messages of at most size
// bytes and hands each full one to send; Flush sends what is left. It
// frames a compressed stream, whose encoder writes in pieces of its own
// sizes, into ByteStream messages. send may keep nothing of the slice
// it is given (the buffer is reused). Not safe for concurrent use.
type Chunker struct {
	buf  []byte
	send func([]byte) error
}

// NewChunker returns a Chunker of messages of at most size bytes.
func NewChunker(size int, send func([]byte) error) *Chunker {
	return &Chunker{buf: make([]byte, 0, size), send: send}
}

// Write implements io.Writer.
func (c *Chunker) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := copy(c.buf[len(c.buf):cap(c.buf)], p)
		c.buf, p = c.buf[:len(c.buf)+k], p[k:]
		if len(c.buf) == cap(c.buf) {
			if err := c.Flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

// Flush sends what is collected, if anything.
func (c *Chunker) Flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	err := c.send(c.buf)
	c.buf = c.buf[:0]
	return err
}
