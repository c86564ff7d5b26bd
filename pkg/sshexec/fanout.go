package sshexec

import (
	"context"
	"sync"
)

// ForEach calls fn for every item with at most limit calls running at once,
// and returns when all have returned. Items not yet started when ctx ends
// are still passed to fn, which sees the cancelled context and returns at
// once, reporting them as not run: nothing is silently dropped.
func ForEach[T any](ctx context.Context, limit int, items []T, fn func(ctx context.Context, i int, item T)) {
	if limit <= 0 {
		limit = 1
	}
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i, it := range items {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(ctx, i, it)
		}()
	}
	wg.Wait()
}
