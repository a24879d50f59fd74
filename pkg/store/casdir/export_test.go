package casdir

// SetAfterScanHook sets the hook run between an eviction pass's scan and
// its removals (nil to clear it).
func SetAfterScanHook(f func()) { testHookAfterScan = f }
