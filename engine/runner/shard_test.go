package runner

import (
	"hash/maphash"
	"testing"

	"github.com/loyalty-connector/engine/internal/ids"
)

// Ids that share most of their digits (SessionM's generated users, v1
// uuids of one day) must still spread over the ordered workers.
func TestOrderKeysSpreadOverShards(t *testing.T) {
	seed := maphash.MakeSeed()
	const shards = 16
	count := make([]int, shards)
	for i := range 2000 {
		count[maphash.String(seed, ids.GeneratedSessionMID(i))%shards]++
	}
	for s, n := range count {
		if n < 2000/shards/2 || n > 2000/shards*2 {
			t.Fatalf("shard %d got %d of 2000 keys: %v", s, n, count)
		}
	}
}
