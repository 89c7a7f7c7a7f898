package runner

import (
	"maps"
	"sync"
)

// byPipeline holds one T per pipeline name, made on first use and kept
// across the pipeline's versions (reloads), safe for concurrent use.
type byPipeline[T any] struct {
	mu sync.Mutex
	m  map[string]*T
}

// get returns name's T, made by fresh the first time.
func (b *byPipeline[T]) get(name string, fresh func() *T) *T {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[string]*T{}
	}
	v := b.m[name]
	if v == nil {
		v = fresh()
		b.m[name] = v
	}
	return v
}

// lookup returns name's T, or nil when none was made.
func (b *byPipeline[T]) lookup(name string) *T {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.m[name]
}

// all returns every T by name, in a map of its own.
func (b *byPipeline[T]) all() map[string]*T {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.m)
}
